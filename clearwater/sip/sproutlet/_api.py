"""The Sproutlet API: Clearwater's way to write a SIP service on the proxy (spec §2.1).

A :class:`Sproutlet` is one service, created once at start-up (by a plugin, see
:mod:`._plugins`): its name, the port it owns (0: none), its URI and aliases, and the network
function it belongs to. For every transaction routed to it the proxy calls :meth:`get_tsx`,
which returns the object that handles that transaction or None to decline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from typing_extensions import override

from clearwater.sip import Request

__all__ = ["Sproutlet"]


class Sproutlet:
    """One service on the sproutlet proxy (Clearwater's ``Sproutlet``).

    ``service_name`` names it (and is matched against the ``service`` URI parameter, the first
    host label and the user part, spec §2.4); ``port`` is the port whose requests it takes (0:
    none); ``uri`` routes to it (default ``sip:<service_name>.<sprout hostname>;transport=tcp``,
    filled in by the proxy when empty); ``aliases`` are other names it answers to;
    ``network_function`` (default: the service name) groups chained sproutlets, a change of it
    being a network-function boundary.
    """

    def __init__(
        self,
        service_name: str,
        port: int = 0,
        uri: str = "",
        *,
        service_host: str = "",
        aliases: Sequence[str] = (),
        network_function: Optional[str] = None,
    ) -> None:
        if not service_name:
            raise ValueError("a sproutlet needs a service name")
        if not 0 <= port <= 65535:
            raise ValueError("sproutlet " + service_name + ": port out of range: " + str(port))
        self.service_name = service_name
        self.port = port
        self.uri = uri
        self.service_host = service_host
        self.aliases = tuple(aliases)
        self.network_function = network_function or service_name

    def get_tsx(self, helper: Any, alias: str, request: Request) -> Optional[Any]:
        """A new transaction handler (``SproutletTsx``) for ``request``, or None to decline.

        ``alias`` is the name the request matched (the service name or one of the aliases);
        ``helper`` is the proxy's ``SproutletHelper``.
        """
        raise NotImplementedError(type(self).__name__ + ".get_tsx")

    @override
    def __repr__(self) -> str:
        return (
            type(self).__name__
            + "("
            + repr(self.service_name)
            + ", port="
            + str(self.port)
            + ", network_function="
            + repr(self.network_function)
            + ")"
        )
