"""``twistd homestead``: Clearwater's homestead in HSS-less mode (spec §6.1, §6.6)."""
