"""The Sproutlet API: Clearwater's way to write a SIP service on the proxy (spec §2.1).

A :class:`Sproutlet` is one service, created once at start-up (by a plugin, see
:mod:`._plugins`): its name, the port it owns (0: none), its URI and aliases, and the network
function it belongs to. For every transaction routed to it the proxy calls
:meth:`Sproutlet.get_tsx`, which returns the :class:`SproutletTsx` that handles that transaction
or None to decline. A :class:`SproutletTsx` gets the transaction's events as callbacks (spec
§2.2) and acts through its :class:`SproutletTsxHelper` (spec §2.3), whose methods it also
offers under the same names.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Sequence
from typing import Optional, Protocol

import attrs
from typing_extensions import override

from clearwater.sip import NameAddr, Request, Response, SipUri, Uri
from clearwater.sip.proxy import ForkState

__all__ = [
    "ErrorState",
    "ForkStatus",
    "Sproutlet",
    "SproutletTsx",
    "SproutletTsxHelper",
]


class Sproutlet:
    """One service on the sproutlet proxy (Clearwater's ``Sproutlet``).

    ``service_name`` names it (and is matched against the ``service`` URI parameter, the first
    host label and the user part, spec §2.4); ``port`` is the port whose requests it takes (0:
    none); ``uri`` routes to it (default ``sip:<service_name>.<sprout hostname>;transport=tcp``,
    filled in by the proxy when empty); ``aliases`` are other names it answers to;
    ``network_function`` (default: the service name) groups chained sproutlets, a change of it
    being a network-function boundary. ``next_service`` names the local sproutlet that gets
    the requests this one declines (Clearwater's ``next_hop`` out-parameter of ``get_tsx``,
    which chains the S-CSCF's stages): handed over in process, not a hop; empty, a declined
    request is routed on as if this sproutlet were not there.
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
        next_service: str = "",
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
        self.next_service = next_service

    def get_tsx(
        self, helper: SproutletTsxHelper, alias: str, request: Request
    ) -> Optional[SproutletTsx]:
        """A new :class:`SproutletTsx` for ``request`` (usually ``MyTsx(helper)``), or None to
        decline (the proxy then gives the request to ``next_service``, or with none routes it
        on as if this sproutlet were not there).

        ``alias`` is the name the request matched (the service name or one of the aliases).
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


class ErrorState(enum.Enum):
    """How a fork failed (Clearwater's ``ForkErrorState``)."""

    NONE = "none"
    TIMEOUT = "timeout"
    TRANSPORT_ERROR = "transport error"
    NO_ADDRESSES = "no addresses"


@attrs.frozen
class ForkStatus:
    """``fork_state(fork_id)``: the fork's transaction state and how it failed, if it did."""

    tsx_state: ForkState
    error_state: ErrorState = ErrorState.NONE


class SproutletTsxHelper(Protocol):
    """The actions a :class:`SproutletTsx` takes (Clearwater's ``SproutletTsxHelper``, spec §2.3).

    The proxy provides it; tests provide fakes.
    """

    def original_request(self) -> Request:
        """A fresh copy of the request this transaction received."""

    def route_hdr(self) -> Optional[NameAddr]:
        """The top Route the proxy removed before the sproutlet saw the request, if any."""

    def get_reflexive_uri(self) -> SipUri:
        """A URI that routes back to this sproutlet (for Record-Route, Path, Service-Route)."""

    def is_uri_reflexive(self, uri: Uri) -> bool:
        """True if ``uri`` routes to this sproutlet."""

    def create_request(self) -> Request:
        """A blank request for traffic the sproutlet originates."""

    def clone_request(self, request: Request) -> Request:
        """An independent copy of ``request`` (to fork it)."""

    def create_response(self, request: Request, status: int, reason: str = "") -> Response:
        """A response to ``request`` (held, or sent with :meth:`send_response`)."""

    def send_request(self, request: Request) -> int:
        """Forward ``request`` by its top Route, else its Request-URI; returns the fork id.
        Calling it again forks."""

    def send_response(self, response: Response) -> None:
        """Send ``response`` upstream; final responses are aggregated across forks (§2.6)."""

    def cancel_fork(self, fork_id: int, status: int = 0, reason: str = "") -> None:
        """CANCEL fork ``fork_id`` (an INVITE, once it has had a provisional response) or end
        it (another method); a ``status`` adds a Reason header."""

    def cancel_pending_forks(self, status: int = 0, reason: str = "") -> None:
        """:meth:`cancel_fork` for every fork still waiting for a final response."""

    def mark_pending_forks_as_abandoned(self) -> None:
        """Forget the pending forks: their responses no longer count."""

    def fork_state(self, fork_id: int) -> ForkStatus:
        """The state of fork ``fork_id``."""

    def schedule_timer(self, context: object, duration: float) -> int:
        """Call ``on_timer_expiry(context)`` in ``duration`` seconds; returns the timer's id.
        A running timer keeps the transaction alive."""

    def cancel_timer(self, timer_id: int) -> None:
        """Stop a timer (no effect if it is not running)."""

    def timer_running(self, timer_id: int) -> bool:
        """True while the timer has neither fired nor been cancelled."""

    def get_routing_uri(self, request: Request) -> Uri:
        """The URI that routed ``request`` here: its top Route, else its Request-URI."""

    def next_hop_uri(self, service: str, base_uri: SipUri) -> SipUri:
        """A URI routing to the local service ``service``: ``base_uri`` with this node's
        hostname, no port, ``lr`` and ``service=<service>``."""

    def get_local_hostname(self, uri: SipUri) -> str:
        """``uri``'s host without a matched service label (``scscf.sprout.example.com`` ->
        ``sprout.example.com``)."""


class SproutletTsx:
    """One transaction at a sproutlet (Clearwater's ``SproutletTsx``, spec §2.2).

    Override the callbacks; any of them may be ``async def`` (the proxy waits for it before
    it delivers the transaction's next event). The defaults forward: an initial or in-dialog
    request is sent on by its Route / Request-URI, a response goes upstream. The helper's
    actions are available as methods of the same names.
    """

    def __init__(self, helper: SproutletTsxHelper) -> None:
        self.helper = helper

    # ---- callbacks

    def on_rx_initial_request(self, request: Request) -> Optional[Awaitable[None]]:
        """A dialog-creating or out-of-dialog request: send it on (any number of times: forks)
        or answer it with a final response."""
        self.send_request(request)
        return None

    def on_rx_in_dialog_request(self, request: Request) -> Optional[Awaitable[None]]:
        """A request inside a dialog this sproutlet record-routed: send it on at most once."""
        self.send_request(request)
        return None

    def on_tx_request(self, request: Request, fork_id: int) -> Optional[Awaitable[None]]:
        """``request`` is about to leave on fork ``fork_id`` (observe only)."""
        return None

    def on_rx_response(self, response: Response, fork_id: int) -> Optional[Awaitable[None]]:
        """A response on fork ``fork_id`` (a timeout or transport error arrives as a 408): send
        it upstream, or fork again."""
        self.send_response(response)
        return None

    def on_tx_response(self, response: Response) -> Optional[Awaitable[None]]:
        """``response`` is about to go upstream (observe only)."""
        return None

    def on_rx_cancel(self, status: int, cancel: Optional[Request]) -> Optional[Awaitable[None]]:
        """The caller cancelled (487, with its CANCEL) or went away (408, ``cancel`` None);
        every pending fork is cancelled when this returns."""
        return None

    def on_timer_expiry(self, context: object) -> Optional[Awaitable[None]]:
        """A timer set with :meth:`schedule_timer` fired."""
        return None

    # ---- actions (the helper's)

    def original_request(self) -> Request:
        return self.helper.original_request()

    def route_hdr(self) -> Optional[NameAddr]:
        return self.helper.route_hdr()

    def get_reflexive_uri(self) -> SipUri:
        return self.helper.get_reflexive_uri()

    def is_uri_reflexive(self, uri: Uri) -> bool:
        return self.helper.is_uri_reflexive(uri)

    def create_request(self) -> Request:
        return self.helper.create_request()

    def clone_request(self, request: Request) -> Request:
        return self.helper.clone_request(request)

    def create_response(self, request: Request, status: int, reason: str = "") -> Response:
        return self.helper.create_response(request, status, reason)

    def send_request(self, request: Request) -> int:
        return self.helper.send_request(request)

    def send_response(self, response: Response) -> None:
        self.helper.send_response(response)

    def cancel_fork(self, fork_id: int, status: int = 0, reason: str = "") -> None:
        self.helper.cancel_fork(fork_id, status, reason)

    def cancel_pending_forks(self, status: int = 0, reason: str = "") -> None:
        self.helper.cancel_pending_forks(status, reason)

    def mark_pending_forks_as_abandoned(self) -> None:
        self.helper.mark_pending_forks_as_abandoned()

    def fork_state(self, fork_id: int) -> ForkStatus:
        return self.helper.fork_state(fork_id)

    def schedule_timer(self, context: object, duration: float) -> int:
        return self.helper.schedule_timer(context, duration)

    def cancel_timer(self, timer_id: int) -> None:
        self.helper.cancel_timer(timer_id)

    def timer_running(self, timer_id: int) -> bool:
        return self.helper.timer_running(timer_id)

    def get_routing_uri(self, request: Request) -> Uri:
        return self.helper.get_routing_uri(request)

    def next_hop_uri(self, service: str, base_uri: SipUri) -> SipUri:
        return self.helper.next_hop_uri(service, base_uri)

    def get_local_hostname(self, uri: SipUri) -> str:
        return self.helper.get_local_hostname(uri)
