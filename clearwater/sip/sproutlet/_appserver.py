"""The AppServer API: Clearwater's simpler API for application servers (spec §2.8).

An application server author writes an :class:`AppServer` (created once, at start-up) whose
:meth:`AppServer.get_app_tsx` returns an :class:`AppServerTsx` per transaction, or None to
decline. The tsx gets Clearwater's AppServer callbacks (``on_initial_request``,
``on_in_dialog_request``, ``on_response``, ``on_cancel``, ``on_timer_expiry``) and acts through
an :class:`AppServerTsxHelper`, a subset of the sproutlet helper (spec §2.3) plus
``add_to_dialog`` / ``dialog_id``.

:class:`SproutletAppServerShim` hosts an AppServer on the sproutlet proxy, as Clearwater's
``src/sproutletappserver.cpp`` does:

- The AS never handles Route headers. When its transaction starts the shim takes the onward
  route set (the Route headers left once the proxy removed the top Route that brought the
  request here, which stays readable as ``route_hdr()``) and hands the AS the request without
  them. Every ``send_request`` drops all Route headers from the request and adds that route
  set back in order, so the request always returns to the S-CSCF over the ODI route.
- ``add_to_dialog(dialog_id)`` makes every later ``send_request`` of the transaction add a
  Record-Route (on top) to this sproutlet's reflexive URI with ``lr`` and, if an id is given,
  the URI parameter ``dialog_id=<id>``. An in-dialog request whose removed top Route carries
  ``dialog_id`` gets that id back from ``dialog_id()`` and, as in Clearwater, is
  record-routed again with it.
- ``on_rx_response`` is ``on_response``, ``on_rx_cancel`` is ``on_cancel`` and
  ``on_timer_expiry`` passes through; ``on_tx_request`` / ``on_tx_response`` are not offered
  to the AS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Optional, Protocol

from typing_extensions import override

from clearwater.sip import NameAddr, Request, Response, SipUri
from clearwater.sip.headers import RECORD_ROUTE, ROUTE
from clearwater.sip.sproutlet._api import Sproutlet, SproutletTsx, SproutletTsxHelper

__all__ = [
    "DIALOG_ID_PARAM",
    "AppServer",
    "AppServerTsx",
    "AppServerTsxHelper",
    "SproutletAppServerShim",
    "SproutletAppServerShimTsx",
    "SproutletAppServerTsxHelper",
]

#: The Record-Route / Route URI parameter carrying an AS's dialog id (Clearwater's
#: ``STR_DIALOG_ID``).
DIALOG_ID_PARAM = "dialog_id"


class AppServer:
    """One application server (Clearwater's ``AppServer``, spec §2.8).

    ``service_name`` names it (the sproutlet it is hosted as takes that name, and an iFC's
    ServerName ``sip:<service_name>.<home domain>`` reaches it); ``aliases`` and
    ``network_function`` (default: the service name) are passed on to that sproutlet.
    """

    def __init__(
        self,
        service_name: str,
        *,
        aliases: Sequence[str] = (),
        network_function: Optional[str] = None,
    ) -> None:
        if not service_name:
            raise ValueError("an application server needs a service name")
        self.service_name = service_name
        self.aliases = tuple(aliases)
        self.network_function = network_function or service_name

    def get_app_tsx(self, helper: AppServerTsxHelper, request: Request) -> Optional[AppServerTsx]:
        """A new :class:`AppServerTsx` for ``request`` (usually ``MyTsx(helper)``), or None to
        decline. ``request`` is the request as the sproutlet received it."""
        raise NotImplementedError(type(self).__name__ + ".get_app_tsx")

    @override
    def __repr__(self) -> str:
        return (
            type(self).__name__
            + "("
            + repr(self.service_name)
            + ", network_function="
            + repr(self.network_function)
            + ")"
        )


class AppServerTsxHelper(Protocol):
    """The actions an :class:`AppServerTsx` takes (Clearwater's ``AppServerTsxHelper``).

    :class:`SproutletAppServerTsxHelper` provides it on the sproutlet proxy; tests provide
    fakes.
    """

    def original_request(self) -> Request:
        """A fresh copy of the request this transaction received (without Route headers)."""

    def route_hdr(self) -> Optional[NameAddr]:
        """The top Route that routed the request here (removed before the AS saw it)."""

    def add_to_dialog(self, dialog_id: str = "") -> None:
        """Stay in the dialog: requests sent from now on are record-routed to this AS, with
        ``dialog_id`` (a URI parameter value) if one is given."""

    def dialog_id(self) -> str:
        """The dialog id given to :meth:`add_to_dialog` in this transaction or, in a later
        transaction of the dialog, the one the request came back with; else ``""``."""

    def clone_request(self, request: Request) -> Request:
        """An independent copy of ``request`` (to fork it)."""

    def create_response(self, request: Request, status: int, reason: str = "") -> Response:
        """A response to ``request`` (held, or sent with :meth:`send_response`)."""

    def cancel_fork(self, fork_id: int, status: int = 0, reason: str = "") -> None:
        """CANCEL fork ``fork_id`` (or end it, for a non-INVITE); a ``status`` adds a Reason
        header."""

    def cancel_pending_forks(self, status: int = 0, reason: str = "") -> None:
        """:meth:`cancel_fork` for every fork still waiting for a final response."""

    def send_request(self, request: Request) -> int:
        """Send ``request`` on (back to the S-CSCF); returns the fork id. Calling it again
        forks; it may also be called from ``on_response`` (a late fork)."""

    def send_response(self, response: Response) -> None:
        """Send ``response`` upstream; final responses are aggregated across forks."""

    def schedule_timer(self, context: object, duration: float) -> int:
        """Call ``on_timer_expiry(context)`` in ``duration`` seconds; returns the timer's id."""

    def cancel_timer(self, timer_id: int) -> None:
        """Stop a timer (no effect if it is not running)."""

    def timer_running(self, timer_id: int) -> bool:
        """True while the timer has neither fired nor been cancelled."""


class AppServerTsx:
    """One transaction at an application server (Clearwater's ``AppServerTsx``, spec §2.8).

    Override the callbacks; any of them may be ``async def``. The defaults forward: a request
    is sent on, a response goes upstream. The helper's actions are available as methods of
    the same names.
    """

    def __init__(self, helper: AppServerTsxHelper) -> None:
        self.helper = helper

    # ---- callbacks

    def on_initial_request(self, request: Request) -> Optional[Awaitable[None]]:
        """A dialog-creating or out-of-dialog request: send it on (any number of times: forks)
        or answer it with a final response."""
        self.send_request(request)
        return None

    def on_in_dialog_request(self, request: Request) -> Optional[Awaitable[None]]:
        """A request inside a dialog this AS joined: send it on or answer it, once."""
        self.send_request(request)
        return None

    def on_response(self, response: Response, fork_id: int) -> Optional[Awaitable[None]]:
        """A response on fork ``fork_id`` (a timeout or transport error arrives as a 408):
        send it upstream, or fork again."""
        self.send_response(response)
        return None

    def on_cancel(self, status: int, cancel: Optional[Request]) -> Optional[Awaitable[None]]:
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

    def add_to_dialog(self, dialog_id: str = "") -> None:
        self.helper.add_to_dialog(dialog_id)

    def dialog_id(self) -> str:
        return self.helper.dialog_id()

    def clone_request(self, request: Request) -> Request:
        return self.helper.clone_request(request)

    def create_response(self, request: Request, status: int, reason: str = "") -> Response:
        return self.helper.create_response(request, status, reason)

    def cancel_fork(self, fork_id: int, status: int = 0, reason: str = "") -> None:
        self.helper.cancel_fork(fork_id, status, reason)

    def cancel_pending_forks(self, status: int = 0, reason: str = "") -> None:
        self.helper.cancel_pending_forks(status, reason)

    def send_request(self, request: Request) -> int:
        return self.helper.send_request(request)

    def send_response(self, response: Response) -> None:
        self.helper.send_response(response)

    def schedule_timer(self, context: object, duration: float) -> int:
        return self.helper.schedule_timer(context, duration)

    def cancel_timer(self, timer_id: int) -> None:
        self.helper.cancel_timer(timer_id)

    def timer_running(self, timer_id: int) -> bool:
        return self.helper.timer_running(timer_id)


class SproutletAppServerTsxHelper:
    """The :class:`AppServerTsxHelper` on top of a :class:`SproutletTsxHelper`
    (Clearwater's ``SproutletAppServerTsxHelper``): keeps the onward route set and the
    dialog's Record-Route, and applies them to every request the AS sends."""

    def __init__(self, helper: SproutletTsxHelper) -> None:
        self._helper = helper
        self._route_set: tuple[NameAddr, ...] = ()
        self._record_route: Optional[NameAddr] = None
        self._dialog_id = ""

    # ---- for the shim

    def take_onward_route(self, request: Request) -> None:
        """Keep ``request``'s Route headers as the onward route set and remove them from it."""
        self._route_set = tuple(request.headers.parsed(ROUTE))
        request.headers.remove(ROUTE.name)

    def restore_dialog_id(self) -> None:
        """Rejoin the dialog if the top Route that brought the request here carries a
        ``dialog_id`` URI parameter."""
        route = self._helper.route_hdr()
        if route is not None and isinstance(route.uri, SipUri):
            dialog_id = route.uri.param(DIALOG_ID_PARAM)
            if dialog_id is not None:
                self.add_to_dialog(dialog_id)

    # ---- AppServerTsxHelper

    def original_request(self) -> Request:
        request = self._helper.original_request()
        request.headers.remove(ROUTE.name)
        return request

    def route_hdr(self) -> Optional[NameAddr]:
        return self._helper.route_hdr()

    def add_to_dialog(self, dialog_id: str = "") -> None:
        """Raises ValueError if ``dialog_id`` is not a valid URI parameter value."""
        uri = self._helper.get_reflexive_uri()
        if not uri.lr:
            uri = uri.with_param("lr")
        if dialog_id:
            uri = uri.with_param(DIALOG_ID_PARAM, dialog_id)
        self._record_route = NameAddr(uri)
        self._dialog_id = dialog_id

    def dialog_id(self) -> str:
        return self._dialog_id

    def clone_request(self, request: Request) -> Request:
        return self._helper.clone_request(request)

    def create_response(self, request: Request, status: int, reason: str = "") -> Response:
        return self._helper.create_response(request, status, reason)

    def cancel_fork(self, fork_id: int, status: int = 0, reason: str = "") -> None:
        self._helper.cancel_fork(fork_id, status, reason)

    def cancel_pending_forks(self, status: int = 0, reason: str = "") -> None:
        self._helper.cancel_pending_forks(status, reason)

    def send_request(self, request: Request) -> int:
        """Replace ``request``'s Route headers with the onward route set, add the dialog's
        Record-Route if the AS joined it, and send it."""
        headers = request.headers
        headers.remove(ROUTE.name)
        for route in self._route_set:
            headers.add(ROUTE.name, route)
        if self._record_route is not None:
            headers.prepend(RECORD_ROUTE.name, self._record_route)
        return self._helper.send_request(request)

    def send_response(self, response: Response) -> None:
        self._helper.send_response(response)

    def schedule_timer(self, context: object, duration: float) -> int:
        return self._helper.schedule_timer(context, duration)

    def cancel_timer(self, timer_id: int) -> None:
        self._helper.cancel_timer(timer_id)

    def timer_running(self, timer_id: int) -> bool:
        return self._helper.timer_running(timer_id)


class SproutletAppServerShimTsx(SproutletTsx):
    """The :class:`SproutletTsx` that runs an :class:`AppServerTsx`
    (Clearwater's ``SproutletAppServerShimTsx``)."""

    def __init__(
        self,
        helper: SproutletTsxHelper,
        app_tsx: AppServerTsx,
        app_helper: SproutletAppServerTsxHelper,
    ) -> None:
        super().__init__(helper)
        self.app_tsx = app_tsx
        self.app_helper = app_helper

    @override
    def on_rx_initial_request(self, request: Request) -> Optional[Awaitable[None]]:
        self.app_helper.take_onward_route(request)
        return self.app_tsx.on_initial_request(request)

    @override
    def on_rx_in_dialog_request(self, request: Request) -> Optional[Awaitable[None]]:
        self.app_helper.take_onward_route(request)
        self.app_helper.restore_dialog_id()
        return self.app_tsx.on_in_dialog_request(request)

    @override
    def on_rx_response(self, response: Response, fork_id: int) -> Optional[Awaitable[None]]:
        return self.app_tsx.on_response(response, fork_id)

    @override
    def on_rx_cancel(self, status: int, cancel: Optional[Request]) -> Optional[Awaitable[None]]:
        return self.app_tsx.on_cancel(status, cancel)

    @override
    def on_timer_expiry(self, context: object) -> Optional[Awaitable[None]]:
        return self.app_tsx.on_timer_expiry(context)


class SproutletAppServerShim(Sproutlet):
    """A :class:`Sproutlet` hosting an :class:`AppServer` (Clearwater's
    ``SproutletAppServerShim``): it takes the AS's service name, aliases and network function;
    ``port``, ``uri`` and ``service_host`` are the sproutlet's."""

    def __init__(
        self,
        app_server: AppServer,
        port: int = 0,
        uri: str = "",
        *,
        service_host: str = "",
    ) -> None:
        super().__init__(
            app_server.service_name,
            port,
            uri,
            service_host=service_host,
            aliases=app_server.aliases,
            network_function=app_server.network_function,
        )
        self.app_server = app_server

    @override
    def get_tsx(
        self, helper: SproutletTsxHelper, alias: str, request: Request
    ) -> Optional[SproutletTsx]:
        app_helper = SproutletAppServerTsxHelper(helper)
        app_tsx = self.app_server.get_app_tsx(app_helper, request)
        if app_tsx is None:
            return None
        return SproutletAppServerShimTsx(helper, app_tsx, app_helper)
