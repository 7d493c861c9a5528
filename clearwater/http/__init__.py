"""HTTP for clearwater's network functions (ARCHITECTURE.md §1 ``clearwater/http/``, §6).

:mod:`clearwater.http.management` serves the management port every function has: ``GET /ping``
and ``GET /metrics`` (Prometheus text format), with room for the function's own API resources
(spec §6) on the same :class:`~twisted.web.server.Site`.
"""

from __future__ import annotations

from clearwater.http.management import (
    HealthCheck,
    ManagementResource,
    QuietSite,
    management_resource,
    management_site,
)

__all__ = [
    "HealthCheck",
    "ManagementResource",
    "QuietSite",
    "management_resource",
    "management_site",
]
