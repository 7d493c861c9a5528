"""Operator command-line tools (console scripts).

:mod:`clearwater.tools.provision` is ``clearwater-provision``: subscribers over homestead-prov's
API (spec §6.6).
"""

from __future__ import annotations

__all__: list[str] = []
