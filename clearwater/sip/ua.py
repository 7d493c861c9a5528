"""A SIP user agent core: UAC and UAS with dialogs (RFC 3261 §8, §12-§15, §9 and §22).

:class:`UserAgent` is the transaction user of a :class:`~clearwater.sip.stack.SipStack` and the
API a library user writes a SIP application with:

- UAC (§8.1): :meth:`UserAgent.request` sends a request outside a dialog and returns a Deferred
  that fires with its final response; :meth:`UserAgent.invite` places a call and returns an
  :class:`OutgoingCall` whose ``answered`` Deferred fires with the :class:`Dialog` once a 2xx
  arrived and was ACKed (§13.2.2.4). ``OutgoingCall.cancel`` sends a CANCEL (§9.1). A 401 or 407
  is answered once per challenge with the configured digest credentials (§22.2, §22.3).
  Next hops are located with RFC 3263; on a timeout, a transport error or a 503 the request goes
  to the next target and the failed one is blacklisted for a while (RFC 3263 §4.3).
- UAS (§8.2): every new request is handed to the application's handler as an
  :class:`IncomingRequest`, answered with :meth:`IncomingRequest.respond`. A 2xx to an INVITE
  creates a dialog and is retransmitted until the ACK arrives (§13.3.1.4); if none arrives in
  64*T1 the call is ended with a BYE. A CANCEL for a pending INVITE is answered 200 and the INVITE
  487 (§9.2). Requests inside an unknown dialog get 481 (§12.2.2); a lower CSeq gets 500; an
  unsupported ``Require`` gets 420 (§8.2.2.3).
- Dialogs (§12): :meth:`Dialog.request` sends a request inside the dialog (route set, remote
  target, CSeq), :meth:`Dialog.bye` ends it; a BYE from the peer is answered 200 and fires
  ``Dialog.terminated``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from typing import Callable, Optional, TypeVar, Union

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from clearwater._types import ISipReactor
from clearwater.errors import ClearwaterError, ParseError, RequestTimedOut, TransportError
from clearwater.sip._message import Headers, Request, Response
from clearwater.sip._random import random_hex
from clearwater.sip._status import reason_phrase
from clearwater.sip._uri import SipUri, Uri, parse_uri
from clearwater.sip._values import NameAddr, Via
from clearwater.sip.auth import DigestClient
from clearwater.sip.headers import (
    AUTHORIZATION,
    CONTACT,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    RECORD_ROUTE,
    REQUIRE,
    ROUTE,
    VIA,
    WWW_AUTHENTICATE,
)
from clearwater.sip.resolver import NoDns, SipResolver
from clearwater.sip.stack import SipStack
from clearwater.sip.transaction.client import build_cancel
from clearwater.sip.transaction.keys import BRANCH_COOKIE
from clearwater.sip.transaction.layer import ClientTransaction, ServerTransaction
from clearwater.sip.transaction.server import build_response
from clearwater.sip.transaction.timers import TimerSettings
from clearwater.sip.transport._layer import ListenSpec, TransportSettings
from clearwater.sip.transport._types import TRANSPORTS, Flow, Target

__all__ = [
    "CallFailedError",
    "Dialog",
    "IncomingRequest",
    "OutgoingCall",
    "UserAgent",
    "make_response",
    "new_branch",
    "new_tag",
]

_log = Logger()
T = TypeVar("T")

#: Challenges answered for one request before the UA gives up (§22.2).
_MAX_AUTH_ATTEMPTS = 4

#: The Allow list of the default answer to OPTIONS when the UA has no handler.
ALLOWED = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE", "MESSAGE", "NOTIFY")


def new_branch() -> str:
    """A fresh RFC 3261 branch (§8.1.1.7): the magic cookie and 64 random bits."""
    return BRANCH_COOKIE + random_hex(8)


def new_tag() -> str:
    """A fresh From/To tag (§19.3): 32 random bits."""
    return secrets.token_hex(4)


def make_response(
    request: Request,
    status: int,
    reason: Optional[str] = None,
    *,
    to_tag: Optional[str] = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: Optional[str] = None,
) -> Response:
    """A response to ``request`` (§8.2.6): Via, From, To, Call-ID and CSeq copied; the To tag
    set to ``to_tag`` when the request's To has none (and the status is above 100)."""
    response = build_response(request, status, reason or reason_phrase(status))
    if to_tag is not None and status > 100 and request.to.tag is None:
        response.headers.set("To", request.to.with_param("tag", to_tag))
    for name, value in headers:
        response.headers.add(name, value)
    if content_type is not None:
        response.headers.add("Content-Type", content_type)
    response.body = body
    return response


class CallFailedError(ClearwaterError):
    """An INVITE (or another request) ended with a non-2xx final response."""

    def __init__(self, response: Response) -> None:
        super().__init__(str(response.status) + " " + response.reason)
        self.response = response


class Dialog:
    """A dialog (§12): identifiers, route set, remote target and CSeq numbers."""

    def __init__(
        self,
        ua: UserAgent,
        *,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: NameAddr,
        remote_uri: NameAddr,
        remote_target: Uri,
        route_set: Sequence[NameAddr],
        local_cseq: int,
        remote_cseq: Optional[int],
        transport: Optional[str] = None,
        flow: Optional[Flow] = None,
    ) -> None:
        self.ua = ua
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri.without_param("tag")
        self.remote_uri = remote_uri.without_param("tag")
        self.remote_target = remote_target
        self.route_set = list(route_set)
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.transport = transport
        #: For a dialog created by a request that came over a connection (TCP, TLS, WS): that
        #: connection, which our requests reuse (RFC 5626 §5.3, RFC 7118 §5: a WebSocket
        #: client's Contact is not reachable any other way).
        self.flow = flow if flow is not None and flow.reliable else None
        #: Fires (with None) when the dialog ends: BYE sent or received, or ACK never came.
        self.terminated: Deferred[None] = Deferred()
        #: Handler for requests the peer sends inside this dialog (other than BYE and ACK).
        self.on_request: Optional[Callable[[IncomingRequest], None]] = None

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @property
    def is_terminated(self) -> bool:
        return self.terminated.called

    def create_request(self, method: str, *, cseq: Optional[int] = None) -> Request:
        """A request inside the dialog (§12.2.1.1); takes the next local CSeq unless given."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        routes = list(self.route_set)
        uri: Uri = self.remote_target
        if routes and isinstance(routes[0].uri, SipUri) and not routes[0].uri.lr:
            # Strict routing (§12.2.1.1): the first route becomes the Request-URI.
            first = routes.pop(0).uri
            uri = first.replace(headers=()) if isinstance(first, SipUri) else first
            routes.append(NameAddr(self.remote_target))
        request = self.ua._build_request(
            method,
            uri,
            from_=self.local_uri.with_param("tag", self.local_tag),
            to=self.remote_uri.with_param("tag", self.remote_tag),
            call_id=self.call_id,
            cseq=cseq,
            transport=self.transport,
        )
        for route in routes:
            request.headers.add("Route", route)
        return request

    def request(
        self,
        method: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: Optional[str] = None,
    ) -> Deferred[Response]:
        """Send a request inside the dialog; fires with its final response.

        A re-INVITE's 2xx is ACKed by the UA core, like the first one.
        """
        request = self.create_request(method)
        _add_content(request, headers, body, content_type)
        if method == "INVITE":
            return self.ua._reinvite(self, request)
        return self.ua.send(request, dialog=self)

    def bye(self) -> Deferred[Response]:
        """End the dialog with a BYE (§15.1.1)."""
        d = self.request("BYE")
        self.ua._end_dialog(self)
        return d


class IncomingRequest:
    """A request the application must answer (§8.2)."""

    def __init__(
        self,
        ua: UserAgent,
        transaction: ServerTransaction,
        request: Request,
        dialog: Optional[Dialog],
    ) -> None:
        self.ua = ua
        self.transaction = transaction
        self.request = request
        #: The dialog the request belongs to; for an INVITE, the dialog its 2xx created.
        self.dialog = dialog
        self.to_tag = (dialog.local_tag if dialog else None) or new_tag()
        #: INVITE only: fires with the ACK for our 2xx, fails with RequestTimedOut without one.
        self.acked: Deferred[Request] = Deferred()
        #: INVITE only: fires with the CANCEL request if the caller cancels before a final answer.
        self.cancelled: Deferred[Request] = Deferred()
        self.final_response: Optional[Response] = None

    @property
    def flow(self) -> Flow:
        return self.transaction.flow

    def respond(
        self,
        status: int,
        reason: Optional[str] = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: Optional[str] = None,
    ) -> Response:
        """Answer the request. A 2xx to an INVITE creates the dialog (``self.dialog``)."""
        if self.final_response is not None:
            raise ValueError("request already answered " + str(self.final_response.status))
        request = self.request
        response = make_response(
            request,
            status,
            reason,
            to_tag=self.to_tag,
            headers=headers,
            body=body,
            content_type=content_type,
        )
        creates_dialog = request.method == "INVITE" and 101 <= status < 300
        if creates_dialog:
            for record_route in request.headers.get_all("Record-Route"):
                response.headers.add("Record-Route", record_route)
            if CONTACT.key not in {n.lower() for n, _ in headers}:
                response.headers.add("Contact", self.ua._contact(self.flow.transport))
        if status >= 200:
            self.final_response = response
            self.ua._pending_invites.pop(self.transaction, None)
        self.transaction.respond(response)
        if request.method == "INVITE" and 200 <= status < 300:
            self.dialog = self.dialog or self.ua._uas_dialog(request, self.to_tag, self.flow)
            self.ua._retransmit_2xx(self, response)
        return response


class OutgoingCall:
    """An INVITE we sent, until it is answered, rejected or cancelled (§13.2)."""

    def __init__(self, ua: UserAgent, invite: Request, dialog: Optional[Dialog] = None) -> None:
        self.ua = ua
        self.invite = invite
        #: Fires with the dialog once a 2xx arrived and was ACKed; fails with CallFailedError,
        #: RequestTimedOut or TransportError.
        self.answered: Deferred[Dialog] = Deferred()
        #: Called with every provisional response.
        self.on_provisional: Optional[Callable[[Response], None]] = None
        #: The dialog: set by the first 2xx, or given for a re-INVITE.
        self.dialog = dialog
        self._transaction: Optional[ClientTransaction] = None
        #: The INVITE that transaction sent (with credentials after a challenge): the
        #: transaction forgets it at its final response, the ACKs for 2xx still need it.
        self._sent = invite
        self._provisional_seen = False
        self._cancel_requested = False
        self._cancel_sent = False

    def cancel(self) -> None:
        """Cancel the call (§9.1); the CANCEL waits for a provisional response if none came."""
        if self.answered.called or self._cancel_requested:
            return
        self._cancel_requested = True
        if self._provisional_seen:
            self._send_cancel()

    def _send_cancel(self) -> None:
        tsx = self._transaction
        if tsx is None or self._cancel_sent or tsx.result.called:
            return
        self._cancel_sent = True
        cancel = build_cancel(self._sent)
        self.ua.stack.transactions.send_request(cancel, tsx.target).result.addErrback(
            lambda f: _log.info("CANCEL failed: {reason}", reason=f.value)
        )
        # §9.1: give up on the INVITE if no final response follows within 64*T1.
        delay = 64 * self.ua.stack.transactions.settings.t1
        self.ua._call_later(delay, self._cancel_timeout, tsx)

    def _cancel_timeout(self, tsx: ClientTransaction) -> None:
        if not tsx.result.called:
            tsx.result.errback(RequestTimedOut("no final response after CANCEL"))

    def _transaction_started(self, tsx: ClientTransaction) -> None:
        self._transaction = tsx
        if tsx.request is not None:  # None only if a final response came already
            self._sent = tsx.request
        self._cancel_sent = False
        self._provisional_seen = False

    def _response(self, response: Response) -> None:
        if response.status < 200:
            self._provisional_seen = True
            if self._cancel_requested:
                self._send_cancel()
            if self.on_provisional is not None:
                self.on_provisional(response)
        elif response.status < 300:
            self.ua._invite_2xx(self, response)


class UserAgent:
    """A UA core over a SIP stack: send requests and calls, answer them (RFC 3261 §8)."""

    def __init__(
        self,
        reactor: ISipReactor,
        *,
        handler: Optional[Callable[[IncomingRequest], object]] = None,
        resolver: Optional[SipResolver] = None,
        credentials: Optional[DigestClient] = None,
        user: str = "clearwater",
        user_agent: str = "clearwater",
        outbound_proxy: Optional[Union[Uri, str]] = None,
        transport_settings: Optional[TransportSettings] = None,
        timer_settings: Optional[TimerSettings] = None,
        supported: Sequence[str] = (),
    ) -> None:
        self.reactor = reactor
        self.handler = handler
        self.credentials = credentials
        self.user = user
        self.user_agent = user_agent
        if isinstance(outbound_proxy, str):
            outbound_proxy = parse_uri(outbound_proxy)
        self.outbound_proxy = outbound_proxy
        self.supported = frozenset(s.lower() for s in supported)
        self.stack = SipStack(
            reactor,
            self,
            resolver=resolver or SipResolver(NoDns(), reactor, transports=TRANSPORTS),
            transport_settings=transport_settings,
            timer_settings=timer_settings,
        )
        self._dialogs: dict[tuple[str, str, str], Dialog] = {}
        #: INVITEs not answered finally yet (a CANCEL may still find them).
        self._pending_invites: dict[ServerTransaction, IncomingRequest] = {}
        #: Answered 2xx whose ACK has not arrived, by dialog id.
        self._awaiting_ack: dict[tuple[str, str, str], IncomingRequest] = {}
        self._acks: dict[tuple[str, int, str], tuple[Request, Target]] = {}
        self._delayed: set[IDelayedCall] = set()

    # ---- setup

    def listen(self, spec: Union[ListenSpec, str]) -> ListenSpec:
        """Listen on ``transport:host:port`` (e.g. ``udp:127.0.0.1:5060``)."""
        return self.stack.listen(spec)

    def stop(self) -> Deferred[None]:
        """Stop listening and cancel every timer the UA and its stack run."""
        for call in self._delayed:
            if call.active():
                call.cancel()
        self._delayed.clear()
        return self.stack.stop()

    def _call_later(self, delay: float, f: Callable[..., object], *args: object) -> IDelayedCall:
        """``reactor.callLater`` that :meth:`stop` can cancel.

        No reference cycle is left behind once the call has run or been cancelled, so a
        finished call's objects are freed at once rather than by the cyclic GC.
        """
        pending: list[IDelayedCall] = []

        def run() -> None:
            self._delayed.discard(pending.pop())
            f(*args)

        call = self.reactor.callLater(delay, run)
        pending.append(call)
        self._delayed.add(call)
        return call

    # ---- building requests (§8.1.1)

    def _contact(self, transport: str) -> str:
        address = self.stack.transport.local_address(transport)
        if address is None:
            address = self.stack.transport.local_address("UDP") or ("127.0.0.1", 5060)
        host, port = address
        host = "[" + host + "]" if ":" in host else host
        uri = "sip:" + self.user + "@" + host + ":" + str(port)
        if transport.upper() != "UDP":
            uri += ";transport=" + transport.lower()
        return "<" + uri + ">"

    def _build_request(
        self,
        method: str,
        uri: Uri,
        *,
        from_: NameAddr,
        to: NameAddr,
        call_id: str,
        cseq: int,
        transport: Optional[str] = None,
    ) -> Request:
        headers = Headers()
        headers.add("Via", Via("UDP", "0.0.0.0", None, (("branch", new_branch()),)))
        headers.add("Max-Forwards", "70")
        headers.add("From", from_)
        headers.add("To", to)
        headers.add("Call-ID", call_id)
        headers.add("CSeq", str(cseq) + " " + method)
        if method in ("INVITE", "SUBSCRIBE", "REFER", "UPDATE", "REGISTER"):
            headers.add("Contact", self._contact(transport or _uri_transport(uri)))
        if self.user_agent:
            headers.add("User-Agent", self.user_agent)
        return Request(method, uri, headers)

    def create_request(
        self,
        method: str,
        uri: Union[Uri, str],
        *,
        from_: Optional[Union[NameAddr, str]] = None,
        to: Optional[Union[NameAddr, str]] = None,
        transport: Optional[str] = None,
    ) -> Request:
        """A request outside any dialog (§8.1.1), with a new Call-ID and From tag."""
        if isinstance(uri, str):
            uri = parse_uri(uri)
        if isinstance(to, str):
            to = NameAddr.parse(to)
        if isinstance(from_, str):
            from_ = NameAddr.parse(from_)
        if from_ is None:
            host = uri.host if isinstance(uri, SipUri) else "invalid"
            from_ = NameAddr(parse_uri("sip:" + self.user + "@" + host))
        return self._build_request(
            method,
            uri,
            from_=from_.with_param("tag", new_tag()),
            to=to or NameAddr(uri),
            call_id=secrets.token_hex(12),
            cseq=1,
            transport=transport,
        )

    # ---- UAC

    def request(
        self,
        method: str,
        uri: Union[Uri, str],
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: Optional[str] = None,
        transport: Optional[str] = None,
        from_: Optional[Union[NameAddr, str]] = None,
    ) -> Deferred[Response]:
        """Send a request outside a dialog; fires with the final response (any status)."""
        if method in ("INVITE", "ACK", "CANCEL"):
            raise ValueError("use invite() for calls; ACK and CANCEL are sent by the UA core")
        request = self.create_request(method, uri, from_=from_, transport=transport)
        _add_content(request, headers, body, content_type)
        return self.send(request, transport=transport)

    def invite(
        self,
        uri: Union[Uri, str],
        *,
        body: bytes = b"",
        content_type: Optional[str] = "application/sdp",
        headers: Iterable[tuple[str, str]] = (),
        transport: Optional[str] = None,
        from_: Optional[Union[NameAddr, str]] = None,
    ) -> OutgoingCall:
        """Place a call; ``OutgoingCall.answered`` fires with the dialog."""
        request = self.create_request("INVITE", uri, from_=from_, transport=transport)
        _add_content(request, headers, body, content_type if body else None)
        call = OutgoingCall(self, request)
        d = self.send(
            request,
            transport=transport,
            on_response=call._response,
            on_transaction=call._transaction_started,
        )

        def final(response: Response) -> None:
            if response.status >= 300:
                raise CallFailedError(response)
            # a 2xx fires `answered` from _invite_2xx, once the ACK is sent

        def fail(reason: Failure) -> None:
            if not call.answered.called:
                call.answered.errback(reason)

        d.addCallback(final).addErrback(fail)
        return call

    def send(
        self,
        request: Request,
        *,
        dialog: Optional[Dialog] = None,
        transport: Optional[str] = None,
        on_response: Optional[Callable[[Response], None]] = None,
        on_transaction: Optional[Callable[[ClientTransaction], None]] = None,
    ) -> Deferred[Response]:
        """Send a built request: resolve its next hop, fail over, answer challenges.

        Fires with the final response; fails with RequestTimedOut or TransportError when no
        target answered, or ResolutionError when the next hop cannot be located.
        """
        if transport is None and dialog is not None:
            transport = dialog.transport
        return Deferred.fromCoroutine(
            self._send(request, dialog, transport, on_response, on_transaction)
        )

    async def _send(
        self,
        request: Request,
        dialog: Optional[Dialog],
        transport: Optional[str],
        on_response: Optional[Callable[[Response], None]],
        on_transaction: Optional[Callable[[ClientTransaction], None]],
    ) -> Response:
        answered: set[str] = set()  # realms we already sent credentials for
        for _ in range(_MAX_AUTH_ATTEMPTS):
            response = await self._send_failover(
                request, dialog, transport, on_response, on_transaction
            )
            if response.status not in (401, 407) or self.credentials is None:
                return response
            # §22.2: a new challenge for a realm we answered, without stale=true, means the
            # credentials were refused; answering again would loop.
            realms = _challenge_realms(response)
            if any(realm in answered and not stale for realm, stale in realms):
                return response
            retry = request.copy()
            retry.headers.pop_first(VIA)
            retry.headers.prepend("Via", Via("UDP", "0.0.0.0", None, (("branch", new_branch()),)))
            seq = request.cseq.seq + 1
            retry.headers.set("CSeq", str(seq) + " " + request.method)
            if not self.credentials.authorize_request(retry, response):
                return response
            if not _asks_resync(retry):
                # An AKA answer with auts (RFC 3310 §3.4) asks for a new challenge: the one
                # that follows is not a refusal.
                answered.update(realm for realm, _ in realms)
            if dialog is not None:
                dialog.local_cseq = max(dialog.local_cseq, seq)
            request = retry
        return response

    async def _send_failover(
        self,
        request: Request,
        dialog: Optional[Dialog],
        transport: Optional[str],
        on_response: Optional[Callable[[Response], None]],
        on_transaction: Optional[Callable[[ClientTransaction], None]],
    ) -> Response:
        targets = await self._targets(request, transport, dialog)
        resolver = self.stack.resolver
        for i, target in enumerate(targets):
            attempt = request
            if i > 0:  # RFC 3263 §4.3: a new transaction to the next target
                attempt = request.copy()
                attempt.headers.pop_first(VIA)
                attempt.headers.prepend(
                    "Via", Via("UDP", "0.0.0.0", None, (("branch", new_branch()),))
                )
            last = i == len(targets) - 1
            tsx = self.stack.transactions.send_request(attempt, target, on_response)
            if on_transaction is not None:
                on_transaction(tsx)
            try:
                response = await tsx.result
            except (RequestTimedOut, TransportError):
                resolver.blacklist(target)
                if last:
                    raise
                continue
            if response.status == 503 and not last:
                resolver.blacklist(target)
                continue
            return response
        raise TransportError("no target for " + str(request.uri))  # pragma: no cover

    async def _targets(
        self, request: Request, transport: Optional[str], dialog: Optional[Dialog] = None
    ) -> list[Target]:
        if dialog is not None and dialog.flow is not None and not dialog.route_set:
            return [dialog.flow.remote]
        hop = self.outbound_proxy
        if hop is None:
            route = request.headers.first(ROUTE)
            hop = route.uri if route is not None else request.uri
        if not isinstance(hop, SipUri):
            raise ValueError("cannot route to a non-SIP URI: " + str(hop))
        if transport is not None:
            return await self.stack.resolver.resolve_host(
                hop.maddr or hop.host, hop.port, transport.upper(), hop.scheme == "sips"
            )
        return await self.stack.resolver.resolve(hop)

    def _invite_2xx(self, call: OutgoingCall, response: Response) -> None:
        """A 2xx to our INVITE (first or retransmitted, any fork): ACK it (§13.2.2.4)."""
        invite = call.invite
        to_tag = response.to.tag or ""
        key = (response.call_id, response.cseq.seq, to_tag)
        if key in self._acks:
            self._resend_ack(key)
            return
        contact = response.headers.first(CONTACT)
        tsx = call._transaction
        existing = call.dialog
        if existing is not None and existing.remote_tag == to_tag:  # a re-INVITE's 2xx
            dialog = existing
            if isinstance(contact, NameAddr):  # target refresh (§12.2.1.2)
                dialog.remote_target = contact.uri
        else:
            remote_target = contact.uri if isinstance(contact, NameAddr) else response.to.uri
            transport = None
            if tsx is not None and not (
                isinstance(remote_target, SipUri) and remote_target.transport
            ):
                transport = tsx.target.transport  # keep to the transport the INVITE used
            dialog = Dialog(
                self,
                call_id=response.call_id,
                local_tag=invite.from_.tag or "",
                remote_tag=to_tag,
                local_uri=invite.from_,
                remote_uri=response.to,
                remote_target=remote_target,
                route_set=list(reversed(response.headers.parsed(RECORD_ROUTE))),
                local_cseq=response.cseq.seq,
                remote_cseq=None,
                transport=transport,
            )
        ack = dialog.create_request("ACK", cseq=response.cseq.seq)
        for name in ("Authorization", "Proxy-Authorization"):
            for value in call._sent.headers.get_all(name):
                ack.headers.add(name, value)
        d = Deferred.fromCoroutine(self._send_ack(key, ack, dialog))
        if dialog is existing:
            if not call.answered.called:
                d.addCallbacks(lambda _: call.answered.callback(dialog), call.answered.errback)
        elif existing is None and not call.answered.called:
            call.dialog = dialog
            self._dialogs[dialog.id] = dialog
            d.addCallbacks(lambda _: call.answered.callback(dialog), call.answered.errback)
        else:  # another fork answered too (§13.2.2.4): ACK it, then end that dialog
            d.addCallback(lambda _: dialog.bye()).addErrback(
                lambda f: _log.info("could not end a forked dialog: {reason}", reason=f.value)
            )

    def _reinvite(self, dialog: Dialog, request: Request) -> Deferred[Response]:
        call = OutgoingCall(self, request, dialog)
        return self.send(
            request,
            dialog=dialog,
            on_response=call._response,
            on_transaction=call._transaction_started,
        )

    async def _send_ack(self, key: tuple[str, int, str], ack: Request, dialog: Dialog) -> None:
        targets = await self._targets(ack, dialog.transport, dialog)
        target = self.stack.transport.prepare_request(ack, targets[0])
        self._acks[key] = (ack, target)
        self._call_later(64 * self.stack.transactions.settings.t1, self._acks.pop, key, None)
        await self.stack.transport.send_request(ack, target)

    def _resend_ack(self, key: tuple[str, int, str]) -> None:
        ack, target = self._acks[key]
        self.stack.transport.send_request(ack, target).addErrback(lambda _: None)

    # ---- TransactionUser

    def request_received(self, transaction: ServerTransaction, request: Request) -> None:
        method = request.method
        if method == "CANCEL":
            self._cancel_received(transaction, request)
            return
        # ACKs never come here: the transaction layer passes them to ack_received.
        required = [r for r in request.headers.parsed(REQUIRE) if r.lower() not in self.supported]
        if required:
            transaction.respond(
                make_response(
                    request,
                    420,
                    to_tag=new_tag(),
                    headers=[("Unsupported", ", ".join(required))],
                )
            )
            return
        dialog: Optional[Dialog] = None
        to_tag = request.to.tag
        if to_tag is not None:
            dialog = self._dialogs.get((request.call_id, to_tag, request.from_.tag or ""))
            if dialog is None:
                transaction.respond(make_response(request, 481))
                return
            seq = request.cseq.seq
            if dialog.remote_cseq is not None and seq <= dialog.remote_cseq:
                transaction.respond(make_response(request, 500, "CSeq out of order"))
                return
            dialog.remote_cseq = seq
            if method == "BYE":
                transaction.respond(make_response(request, 200))
                self._end_dialog(dialog)
                return
        incoming = IncomingRequest(self, transaction, request, dialog)
        if method == "INVITE":
            self._pending_invites[transaction] = incoming
        handler = dialog.on_request if dialog is not None and dialog.on_request else self.handler
        if handler is None:
            if method == "OPTIONS":
                incoming.respond(200, headers=[("Allow", ", ".join(ALLOWED))])
            else:
                incoming.respond(501)
            return
        try:
            result = handler(incoming)
        except Exception:
            _log.failure("SIP request handler failed for {method}", method=method)
            result = None
            if incoming.final_response is None:
                incoming.respond(500)
        if isinstance(result, Deferred):
            result.addErrback(self._handler_failed, incoming)

    def _handler_failed(self, reason: Failure, incoming: IncomingRequest) -> None:
        _log.failure("SIP request handler failed", reason)
        if incoming.final_response is None:
            incoming.respond(500)

    def _cancel_received(self, transaction: ServerTransaction, cancel: Request) -> None:
        invite_tsx = self.stack.transactions.find_invite(cancel)
        incoming = self._pending_invites.get(invite_tsx) if invite_tsx is not None else None
        if incoming is None:
            transaction.respond(make_response(cancel, 481))
            return
        transaction.respond(make_response(cancel, 200, to_tag=incoming.to_tag))
        if incoming.final_response is None:
            incoming.respond(487)
            if not incoming.cancelled.called:
                incoming.cancelled.callback(cancel)

    def ack_received(self, ack: Request, flow: Flow) -> None:
        key = (ack.call_id, ack.to.tag or "", ack.from_.tag or "")
        incoming = self._awaiting_ack.pop(key, None)
        if incoming is not None and not incoming.acked.called:
            incoming.acked.callback(ack)

    def stray_response(self, response: Response, flow: Flow) -> None:
        if 200 <= response.status < 300 and response.cseq.method == "INVITE":
            key = (response.call_id, response.cseq.seq, response.to.tag or "")
            if key in self._acks:
                self._resend_ack(key)

    # ---- UAS dialogs

    def _uas_dialog(self, request: Request, local_tag: str, flow: Flow) -> Dialog:
        contact = request.headers.first(CONTACT)
        remote_target = contact.uri if isinstance(contact, NameAddr) else request.from_.uri
        dialog = Dialog(
            self,
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=request.to,
            remote_uri=request.from_,
            remote_target=remote_target,
            route_set=request.headers.parsed(RECORD_ROUTE),
            local_cseq=0,
            remote_cseq=request.cseq.seq,
            transport=request.top_via.transport,
            flow=flow,
        )
        self._dialogs[dialog.id] = dialog
        return dialog

    def _retransmit_2xx(self, incoming: IncomingRequest, response: Response) -> None:
        """§13.3.1.4: resend the 2xx at T1, 2*T1, ... (capped at T2) until the ACK arrives."""
        dialog = incoming.dialog
        assert dialog is not None
        self._awaiting_ack[dialog.id] = incoming
        _Retransmitter(self, incoming, dialog, response).start()

    def _end_dialog(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.id, None)
        if not dialog.terminated.called:
            dialog.terminated.callback(None)


class _Retransmitter:
    """Resends a 2xx to an INVITE until its ACK arrives or 64*T1 pass (§13.3.1.4)."""

    __slots__ = ("call", "dialog", "elapsed", "incoming", "interval", "response", "ua")

    def __init__(
        self, ua: UserAgent, incoming: IncomingRequest, dialog: Dialog, response: Response
    ) -> None:
        self.ua = ua
        self.incoming = incoming
        self.dialog = dialog
        self.response = response
        self.interval = ua.stack.transactions.settings.t1
        self.elapsed = 0.0
        self.call: Optional[IDelayedCall] = None

    def start(self) -> None:
        self.call = self.ua._call_later(self.interval, self._again)
        self.incoming.acked.addBoth(self._stop)

    def _again(self) -> None:
        self.call = None
        ua, incoming = self.ua, self.incoming
        if incoming.acked.called:
            return
        settings = ua.stack.transactions.settings
        self.elapsed += self.interval
        if self.elapsed >= 64 * settings.t1:
            ua._awaiting_ack.pop(self.dialog.id, None)
            incoming.acked.errback(RequestTimedOut("no ACK for the 2xx"))
            self.dialog.bye().addErrback(lambda _: None)
            return
        ua.stack.transport.send_response(self.response, incoming.flow).addErrback(lambda _: None)
        self.interval = min(2 * self.interval, settings.t2)
        self.call = ua._call_later(self.interval, self._again)

    def _stop(self, result: T) -> T:
        call, self.call = self.call, None
        if call is not None and call.active():
            call.cancel()
            self.ua._delayed.discard(call)
        return result


def _uri_transport(uri: Uri) -> str:
    if isinstance(uri, SipUri):
        if uri.transport:
            return uri.transport.upper()
        if uri.scheme == "sips":
            return "TLS"
    return "UDP"


def _add_content(
    request: Request,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    content_type: Optional[str],
) -> None:
    for name, value in headers:
        request.headers.add(name, value)
    if body:
        if content_type is not None:
            request.headers.set("Content-Type", content_type)
        request.body = body


def _asks_resync(request: Request) -> bool:
    """Whether the request's credentials carry an AKA ``auts`` (a resynchronisation)."""
    for spec in (AUTHORIZATION, PROXY_AUTHORIZATION):
        for credentials in request.headers.parsed(spec):
            if credentials.param("auts") is not None:
                return True
    return False


def _challenge_realms(response: Response) -> list[tuple[str, bool]]:
    """(realm, stale) of each Digest challenge in a 401 or 407."""
    spec = WWW_AUTHENTICATE if response.status == 401 else PROXY_AUTHENTICATE
    try:
        challenges = response.headers.parsed(spec)
    except ParseError:
        return []
    return [(c.realm or "", c.stale) for c in challenges if c.is_digest]
