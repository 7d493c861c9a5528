"""Conformance suites: one set of tests run against every implementation of an interface.

The suites use plain ``assert`` statements (trial's assertion methods are untyped); pytest
rewrites them as it does in test modules (``tests/conftest.py`` registers them before they are
imported), so failures show the compared values.
"""
