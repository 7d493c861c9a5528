"""Test-wide settings: one deterministic Hypothesis profile (STYLE.md §5).

``HYPOTHESIS_PROFILE=dev`` opts into a wider, randomised local search.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# The conformance mixins assert with plain ``assert``; rewrite them as test modules are.
pytest.register_assert_rewrite("tests.conformance")

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
