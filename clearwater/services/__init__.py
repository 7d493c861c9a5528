"""twistd services, one package per network function."""
