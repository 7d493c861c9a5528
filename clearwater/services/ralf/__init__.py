"""``twistd ralf``: billing events over HTTP to CDFs over Diameter Rf (spec §6.4, §7.2)."""
