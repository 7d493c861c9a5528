"""``twistd clearwater``: the all-in-one IMS core (issue #6)."""
