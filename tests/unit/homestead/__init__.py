"""Tests of :mod:`clearwater.homestead` (HSS-less homestead, spec §6.1)."""
