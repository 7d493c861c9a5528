# -*- test-case-name: tests.unit.ralf.test_session -*-
"""Ralf's Rf session logic (spec §6.4, §7.2; Clearwater ralf ``src/handlers.cpp``,
``src/session_manager.cpp``, ``src/peer_message_sender.cpp``, ``src/session_store.cpp``).

A billing request (:class:`BillingRequest`, parsed from the JSON body by
:func:`parse_billing_request`) is handled by :class:`RalfSessionManager`:

- **EVENT**: one ACR (record number 1, a new Session-Id) to the request's CCFs; no session.
- **START**: an ACR opening an Rf session (a new Session-Id, record number 1). When the CDF
  accepts it (DIAMETER_SUCCESS), the session is stored and, if the session refresh time (the
  event's ``Acct-Interim-Interval``) is longer than the interim interval (the ACA's
  ``Acct-Interim-Interval``, else the refresh time), an interim timer is set
  (:class:`~clearwater.stores.interfaces.ITimerService`, kind :data:`TIMER_KIND`, ``interval`` the
  interim interval, ``repeat_for`` the refresh time: Chronos' tag ``CALL`` timer). Each pop sends
  an INTERIM for the session, as Chronos' POST to ``/call-id/<id>?timer-interim=true`` did.
- **INTERIM**: the stored session's record number plus one, written back (compare-and-swap)
  before the ACR goes. For an INTERIM from sprout (not a timer pop) the timer is then set again
  (same rule, restarted from now), whatever the answer, unless the CDF answered
  DIAMETER_UNKNOWN_SESSION_ID (5002), which deletes the session (and, beyond Clearwater, its
  timer). An INTERIM or STOP for a session ralf does not know is dropped.
- **STOP**: the session record and its timer are deleted, then the final ACR (record number
  plus one) goes.

Sessions live in an :class:`~clearwater.stores.interfaces.ICasStore` (table :data:`TABLE`), one
per call and node: the key (:func:`session_key`) is the call id (SIP Call-ID or ICID) with the
event's Role-Of-Node and Node-Functionality, as Clearwater's (an originating and a terminating
S-CSCF bill the same call separately). The record is JSON (:class:`Session`): Session-Id, CCFs,
ECFs, record number, refresh time, interim interval, timer id and the CCF that last answered.
It lives twice the refresh time (Clearwater's TTL); with no refresh time, ``no_refresh_ttl``
(a day by default; Clearwater's memcached kept such records forever).

CCF fail-over: the CCFs are tried in order (for INTERIM and STOP, starting with the CCF that
last answered for the session, then the others in order); ralf moves to the next one only when
the request could not be delivered: the CDF answered DIAMETER_UNABLE_TO_DELIVER (3002), no
connection to it became usable (:class:`~clearwater.diameter.interfaces.NoPeerError`), or it did
not answer in time (:class:`~clearwater.diameter.interfaces.DiameterTimeoutError`; Clearwater's
``RalfTransaction::on_timeout`` reports a timeout as 3002 too). Any other answer ends the
request. Each ACR names its CCF as Destination-Host and ``billing_realm`` as Destination-Realm.

CCFs are Diameter identities. :class:`CcfConnector` connects to one when it is first used: at
the address a static map gives (``--billing-peer NAME=IP[:PORT]``), else at the name itself,
port 3868 (resolved by the reactor's resolver when the connection is made), and waits up to
``connect_timeout`` for it to become usable. A CCF that did not is refused at once for
``blacklist_duration`` (Clearwater's ``diameter_blacklist_duration``, 30 s) unless the node
reconnects to it meanwhile, so that one dead CCF does not delay every ACR.

Differences from Clearwater, all on error paths: a repeated START for a session that exists
replaces it (and deletes its timer) where Clearwater kept the old record and orphaned the new
timer; CAS retries are bounded (:data:`MAX_CAS_RETRIES`); an INTERIM's own refresh time, when it
has one, is stored with the session.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any, Optional, Protocol

import attrs
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from clearwater.diameter.apps import rf
from clearwater.diameter.interfaces import DiameterTimeoutError, IDiameterNode, NoPeerError
from clearwater.diameter.message import DiameterDecodeError
from clearwater.diameter.node import PeerConfig
from clearwater.errors import ClearwaterError
from clearwater.stores.interfaces import DataContentionError, ICasStore, ITimerService, StoreError

__all__ = [
    "DEFAULT_DIAMETER_PORT",
    "MAX_CAS_RETRIES",
    "TABLE",
    "TIMER_KIND",
    "BillingRequest",
    "BillingRequestError",
    "CcfConnector",
    "Outcome",
    "OverloadedError",
    "PeerControl",
    "RalfSessionManager",
    "Session",
    "parse_billing_request",
    "session_key",
]

_log = Logger()

#: The ICasStore table sessions live in.
TABLE = "ralf_session"
#: The ITimerService kind of interim timers.
TIMER_KIND = "ralf-interim"
#: The port a CCF named only by its identity is reached on (RFC 6733 §2.1).
DEFAULT_DIAMETER_PORT = 3868
#: Attempts at a compare-and-swap write that keeps losing races before the request fails.
MAX_CAS_RETRIES = 5

_SUCCESS = 2001  # DIAMETER_SUCCESS
_UNABLE_TO_DELIVER = 3002  # DIAMETER_UNABLE_TO_DELIVER
_UNKNOWN_SESSION_ID = 5002  # DIAMETER_UNKNOWN_SESSION_ID

# AVPs ralf itself puts in every ACR (spec §7.2): an event may not set them.
_SET_BY_RALF = (
    "Session-Id",
    "Origin-Host",
    "Origin-Realm",
    "Destination-Host",
    "Destination-Realm",
    "Accounting-Record-Number",
    "Acct-Application-Id",
    "Service-Context-Id",
)


class BillingRequestError(ClearwaterError):
    """A billing request body that ralf refuses (HTTP 400); the message names what is wrong."""


class OverloadedError(ClearwaterError):
    """Ralf has as many billing requests in progress as it allows (HTTP 503)."""


class Outcome(enum.Enum):
    """How a billing request ended."""

    SUCCESS = "success"  # the CDF answered DIAMETER_SUCCESS
    REJECTED = "rejected"  # the CDF answered another result code
    UNDELIVERED = "undelivered"  # no CCF could take it (3002, no usable peer, timeout)
    NO_SESSION = "no_session"  # INTERIM or STOP for a session ralf does not know
    NO_PEERS = "no_peers"  # START or EVENT without a "peers" object: dropped, as Clearwater
    FAILED = "failed"  # a store error, an answer that is not an ACA, or a bug (logged)


@attrs.frozen
class BillingRequest:
    """One billing request: from sprout's ``POST /call-id/<id>`` or an interim timer's pop.

    ``refresh_time`` is the event's Acct-Interim-Interval (0: none); ``ccfs`` and ``ecfs`` come
    from ``peers`` and are only read for START and EVENT; ``timer_interim`` marks timer pops.
    """

    call_id: str
    record_type: rf.AccountingRecordType
    role: int
    function: int
    event: Mapping[str, Any]
    refresh_time: int = 0
    ccfs: tuple[str, ...] = ()
    ecfs: tuple[str, ...] = ()
    timer_interim: bool = False


def _int(value: Any) -> Optional[int]:
    """``value`` if it is a JSON integer (rapidjson's ``IsInt``), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _names(peers: Mapping[str, Any], member: str, required: bool) -> tuple[str, ...]:
    value = peers.get(member)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value):
        also = " (mandatory for START and EVENT)" if required else ""
        raise BillingRequestError(f"peers.{member}: missing, empty or not an array{also}")
    for index, name in enumerate(value):
        if not isinstance(name, str) or not name:
            raise BillingRequestError(f"peers.{member}[{index}]: not a non-empty string")
    return tuple(value)


def parse_billing_request(
    call_id: str, body: Any, *, timer_interim: bool = False
) -> BillingRequest:
    """The billing request ``body`` (decoded JSON) describes for ``call_id``, checked as
    Clearwater's ``BillingTask::parse_body`` checks it, in its order:

    - ``event`` is an object with ``Service-Information.IMS-Information``, an object holding
      integers ``Role-Of-Node`` and ``Node-Functionality``;
    - ``event.Accounting-Record-Type`` is an integer, 1 (EVENT) to 4 (STOP);
    - for START and EVENT, ``peers.ccf`` is a non-empty array of strings (and ``peers.ecf``,
      if there, an array of strings). A START or EVENT with no ``peers`` object at all is not an
      error: Clearwater answers it 200 and sends nothing; here it parses with no CCFs and the
      manager drops it (:attr:`Outcome.NO_PEERS`).

    Beyond Clearwater, which skipped what it could not map: every member of ``event`` must map
    onto Rf AVPs (:func:`~clearwater.diameter.apps.rf.event_avps`), and the AVPs ralf sets
    itself (Session-Id, Origin-*, Destination-*, Accounting-Record-Number, Acct-Application-Id,
    Service-Context-Id) may not appear. :class:`BillingRequestError` names the first problem.
    """
    if not isinstance(body, dict):
        raise BillingRequestError("body: not a JSON object")
    event = body.get("event")
    if not isinstance(event, dict):
        raise BillingRequestError("event: missing or not an object")
    service = event.get("Service-Information")
    ims = service.get("IMS-Information") if isinstance(service, dict) else None
    if not isinstance(ims, dict):
        raise BillingRequestError(
            "event.Service-Information.IMS-Information: missing or not an object"
        )
    role = _int(ims.get("Role-Of-Node"))
    if role is None:
        raise BillingRequestError(
            "event.Service-Information.IMS-Information.Role-Of-Node: missing or not an integer"
        )
    function = _int(ims.get("Node-Functionality"))
    if function is None:
        raise BillingRequestError(
            "event.Service-Information.IMS-Information.Node-Functionality: "
            "missing or not an integer"
        )
    code = _int(event.get("Accounting-Record-Type"))
    if code is None:
        raise BillingRequestError("event.Accounting-Record-Type: missing or not an integer")
    try:
        record_type = rf.AccountingRecordType(code)
    except ValueError:
        raise BillingRequestError(
            f"event.Accounting-Record-Type: {code} is not 1 (EVENT), 2 (START), 3 (INTERIM) "
            "or 4 (STOP)"
        ) from None
    for name in _SET_BY_RALF:
        if name in event:
            raise BillingRequestError(f"event.{name}: set by ralf, not by the request")
    try:
        # A trial build checks every member's name, type and range, and the AVPs with a fixed
        # place in the ACR (each at most once).
        rf.acr(
            session_id="check",
            origin_host="check",
            origin_realm="check",
            destination_realm="check",
            destination_host="check",
            record_type=record_type,
            record_number=1,
            event=event,
        )
    except rf.EventError as e:
        raise BillingRequestError(str(e)) from None
    ccfs: tuple[str, ...] = ()
    ecfs: tuple[str, ...] = ()
    if record_type in (rf.AccountingRecordType.START, rf.AccountingRecordType.EVENT):
        peers = body.get("peers")
        if isinstance(peers, dict):
            ccfs = _names(peers, "ccf", required=True)
            ecfs = _names(peers, "ecf", required=False)
    return BillingRequest(
        call_id=call_id,
        record_type=record_type,
        role=role,
        function=function,
        event=event,
        refresh_time=_int(event.get("Acct-Interim-Interval")) or 0,
        ccfs=ccfs,
        ecfs=ecfs,
        timer_interim=timer_interim,
    )


def session_key(call_id: str, role: int, function: int) -> str:
    """The store key of a session: ``<call id>;<role>;<function>`` (Clearwater's key is the
    three run together, which two calls can share; a SIP Call-ID has no ``;``, and the last two
    fields are integers, so this one is unambiguous)."""
    return f"{call_id};{role};{function}"


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(what + " is not a list of strings")
    return tuple(value)


def _number(record: Mapping[str, Any], name: str) -> int:
    value = _int(record.get(name))
    if value is None or value < 0:
        raise ValueError(name + " is not a non-negative integer")
    return value


def _optional_string(record: Mapping[str, Any], name: str) -> Optional[str]:
    value = record.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(name + " is not a string")
    return value


@attrs.frozen
class Session:
    """A stored Rf session (the JSON of Clearwater's ``JsonSerializerDeserializer`` plus
    ``ecfs`` and ``ccf``). ``timer_id`` None: no interim timer; ``ccf`` None: none answered."""

    session_id: str
    ccfs: tuple[str, ...]
    record_number: int
    refresh_time: int
    interim_interval: int
    timer_id: Optional[str] = None
    ecfs: tuple[str, ...] = ()
    ccf: Optional[str] = None

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "session_id": self.session_id,
                "ccfs": list(self.ccfs),
                "ecfs": list(self.ecfs),
                "acct_record_num": self.record_number,
                "timer_id": self.timer_id,
                "refresh_time": self.refresh_time,
                "interim_interval": self.interim_interval,
                "ccf": self.ccf,
            },
            separators=(",", ":"),
        ).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Session:
        """The session ``data`` holds; ValueError if it is not one."""
        try:
            record = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError("not JSON: " + str(e)) from None
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        session_id = record.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("session_id is not a non-empty string")
        return cls(
            session_id=session_id,
            ccfs=_strings(record.get("ccfs"), "ccfs"),
            record_number=_number(record, "acct_record_num"),
            refresh_time=_number(record, "refresh_time"),
            interim_interval=_number(record, "interim_interval"),
            timer_id=_optional_string(record, "timer_id"),
            ecfs=_strings(record.get("ecfs", []), "ecfs"),
            ccf=_optional_string(record, "ccf"),
        )


class PeerControl(Protocol):
    """What :class:`CcfConnector` needs of a :class:`~clearwater.diameter.node.DiameterNode`."""

    def add_peer(self, config: PeerConfig) -> None: ...

    def wait_usable(self, host: str, timeout: float) -> Deferred[None]: ...

    def usable_peers(self) -> list[str]: ...


class CcfConnector:
    """Connects a Diameter node to CCFs on demand (module docstring).

    ``peers`` maps CCF identities to ``(address, port)``; other names are connected to at the
    name itself and ``port``; over TLS (RFC 6733 §2.1) with ``tls``. At most ``max_peers``
    names outside the map are added (their names come from HTTP requests); beyond that, new
    names are refused.
    """

    def __init__(
        self,
        node: PeerControl,
        clock: IReactorTime,
        *,
        peers: Mapping[str, tuple[str, int]] = {},
        port: int = DEFAULT_DIAMETER_PORT,
        connect_timeout: float = 2.0,
        blacklist_duration: float = 30.0,
        max_peers: int = 64,
        tls: bool = False,
    ) -> None:
        self._node = node
        self._tls = tls
        self._clock = clock
        self._static = {name.lower(): where for name, where in peers.items()}
        self._port = port
        self.connect_timeout = connect_timeout
        self.blacklist_duration = blacklist_duration
        self.max_peers = max_peers
        self._known: set[str] = set()
        self._dynamic = 0
        self._down_until: dict[str, float] = {}

    def ensure(self, name: str) -> Deferred[None]:
        """Fires when CCF ``name`` is usable; fails with NoPeerError when it is not within
        ``connect_timeout``, is blacklisted, or is one name too many."""
        key = name.lower()
        if any(host.lower() == key for host in self._node.usable_peers()):
            return defer.succeed(None)
        if self._down_until.get(key, 0.0) > self._clock.seconds():
            return defer.fail(NoPeerError(f"CCF {name} unreachable (blacklisted)"))
        if key not in self._known:
            if key not in self._static:
                if self._dynamic >= self.max_peers:
                    return defer.fail(
                        NoPeerError(f"CCF {name}: already {self.max_peers} CCFs not configured")
                    )
                self._dynamic += 1
            address, port = self._static.get(key, (name, self._port))
            self._known.add(key)
            self._node.add_peer(PeerConfig(name, address, port, tls=self._tls))
        d = self._node.wait_usable(name, self.connect_timeout)
        d.addErrback(self._unreachable, key)
        return d

    def _unreachable(self, failure: Any, key: str) -> Any:
        self._down_until[key] = self._clock.seconds() + self.blacklist_duration
        return failure


@attrs.frozen
class _Sent:
    outcome: Outcome
    aca: Optional[rf.AcaAnswer] = None
    ccf: Optional[str] = None


def _ordered(ccfs: tuple[str, ...], first: Optional[str]) -> list[str]:
    if first is None or first not in ccfs:
        return list(ccfs)
    return [first, *(ccf for ccf in ccfs if ccf != first)]


class RalfSessionManager:
    """Ralf's session logic (module docstring) over a Diameter node, a session store and a
    timer service.

    ``origin_host`` and ``origin_realm`` go in every ACR, ``billing_realm`` as its
    Destination-Realm. ``connector`` connects to CCFs on demand (None: the node's peers are
    configured elsewhere). ``request_timeout`` bounds each ACR (None: the node's default). At
    most ``max_in_flight`` requests are handled at once (:meth:`submit` refuses more).

    Call :meth:`start` to receive interim timer pops (the service does it when it starts).
    Counters for metrics: :attr:`requests` (by record type name), :attr:`outcomes`,
    :attr:`failovers`, :attr:`timers` (``set``, ``deleted``, ``failed``) and
    :attr:`interim_pops`.
    """

    def __init__(
        self,
        node: IDiameterNode,
        sessions: ICasStore,
        timers: ITimerService,
        *,
        origin_host: str,
        origin_realm: str,
        billing_realm: str,
        connector: Optional[CcfConnector] = None,
        request_timeout: Optional[float] = None,
        no_refresh_ttl: int = 86400,
        max_in_flight: int = 10_000,
    ) -> None:
        self._node = node
        self._sessions = sessions
        self._timers = timers
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.billing_realm = billing_realm
        self.connector = connector
        self.request_timeout = request_timeout
        self.no_refresh_ttl = no_refresh_ttl
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.requests: Counter[str] = Counter()
        self.outcomes: Counter[Outcome] = Counter()
        self.timers: Counter[str] = Counter()
        self.failovers = 0
        self.interim_pops = 0

    def start(self) -> None:
        """Receive the pops of interim timers (on every ralf node sharing the timer store)."""
        self._timers.listen(TIMER_KIND, self._interim_popped)

    # ---- requests

    def submit(self, request: BillingRequest) -> bool:
        """Start handling ``request`` in the background, or return False (nothing started)
        when :attr:`max_in_flight` requests are already in progress."""
        if self.in_flight >= self.max_in_flight:
            return False
        self.handle(request)
        return True

    def handle(self, request: BillingRequest) -> Deferred[Outcome]:
        """Handle ``request``; fires with its outcome (never fails: errors are logged)."""
        self.in_flight += 1
        self.requests[request.record_type.name.lower()] += 1
        d = Deferred.fromCoroutine(self._handle(request))

        def failed(failure: Any) -> Outcome:
            _log.failure(
                "ralf: {kind} for {call_id} failed",
                failure,
                kind=request.record_type.name,
                call_id=request.call_id,
            )
            return Outcome.FAILED

        def done(outcome: Outcome) -> Outcome:
            self.in_flight -= 1
            self.outcomes[outcome] += 1
            return outcome

        return d.addErrback(failed).addCallback(done)

    async def _handle(self, request: BillingRequest) -> Outcome:
        try:
            if request.record_type in (
                rf.AccountingRecordType.START,
                rf.AccountingRecordType.EVENT,
            ):
                if not request.ccfs:
                    _log.warn(
                        "ralf: {kind} for {call_id} has no peers object: not sent",
                        kind=request.record_type.name,
                        call_id=request.call_id,
                    )
                    return Outcome.NO_PEERS
                return await self._first(request)
            return await self._continued(request)
        except StoreError as e:
            _log.error(
                "ralf: {kind} for {call_id}: session store failed: {error}",
                kind=request.record_type.name,
                call_id=request.call_id,
                error=e,
            )
            return Outcome.FAILED

    async def _first(self, request: BillingRequest) -> Outcome:
        """START or EVENT: a new Session-Id, record number 1."""
        session_id = self._node.new_session_id()
        sent = await self._send(request, session_id, 1, request.ccfs, None)
        if sent.outcome is not Outcome.SUCCESS or request.record_type is not (
            rf.AccountingRecordType.START
        ):
            return sent.outcome
        assert sent.aca is not None
        refresh = request.refresh_time
        interim = sent.aca.acct_interim_interval or refresh
        timer_id: Optional[str] = None
        if refresh > interim:
            timer_id = await self._set_timer(request, interim, refresh, None)
        session = Session(
            session_id=session_id,
            ccfs=request.ccfs,
            record_number=1,
            refresh_time=refresh,
            interim_interval=interim,
            timer_id=timer_id,
            ecfs=request.ecfs,
            ccf=sent.ccf,
        )
        await self._create(session_key(request.call_id, request.role, request.function), session)
        return sent.outcome

    async def _continued(self, request: BillingRequest) -> Outcome:
        """INTERIM or STOP of a stored session."""
        key = session_key(request.call_id, request.role, request.function)
        stop = request.record_type is rf.AccountingRecordType.STOP
        for _ in range(MAX_CAS_RETRIES):
            data, cas = await self._sessions.get_data(TABLE, key)
            if not data:  # none, or the tombstone a STOP leaves
                _log.info(
                    "ralf: {kind} for unknown session {key}: ignored",
                    kind=request.record_type.name,
                    key=key,
                )
                return Outcome.NO_SESSION
            try:
                session = Session.from_json(data)
            except ValueError as e:
                _log.warn("ralf: session {key} unreadable ({error}): ignored", key=key, error=e)
                return Outcome.NO_SESSION
            refresh = request.refresh_time or session.refresh_time
            session = attrs.evolve(
                session, record_number=session.record_number + 1, refresh_time=refresh
            )
            try:
                if stop:
                    # A compare-and-swap delete: an empty record reads as absent.
                    await self._sessions.set_data(TABLE, key, b"", cas, 1)
                else:
                    await self._sessions.set_data(
                        TABLE, key, session.to_json(), cas, self._ttl(refresh)
                    )
            except DataContentionError:
                continue
            break
        else:
            _log.warn("ralf: session {key}: too many write conflicts", key=key)
            return Outcome.FAILED
        if stop:
            if session.timer_id is not None:
                await self._delete_timer(session.timer_id)
            sent = await self._send(
                request, session.session_id, session.record_number, session.ccfs, session.ccf
            )
            return sent.outcome
        sent = await self._send(
            request, session.session_id, session.record_number, session.ccfs, session.ccf
        )
        result_code = sent.aca.result_code if sent.aca is not None else 0
        if result_code == _UNKNOWN_SESSION_ID:
            _log.info("ralf: CDF does not know session {key}: deleted", key=key)
            await self._sessions.delete_data(TABLE, key)
            if session.timer_id is not None:
                await self._delete_timer(session.timer_id)
            return sent.outcome
        interim = (sent.aca.acct_interim_interval if sent.aca is not None else None) or (
            session.interim_interval or refresh
        )
        timer_id = session.timer_id
        if not request.timer_interim and refresh > interim:
            timer_id = await self._set_timer(request, interim, refresh, session.timer_id)
        ccf = sent.ccf if sent.ccf is not None else session.ccf
        if timer_id != session.timer_id or ccf != session.ccf:
            await self._update(key, timer_id, ccf)
        return sent.outcome

    # ---- Diameter

    async def _send(
        self,
        request: BillingRequest,
        session_id: str,
        record_number: int,
        ccfs: tuple[str, ...],
        first: Optional[str],
    ) -> _Sent:
        """Send the ACR to each CCF in turn until one can take it (module docstring)."""
        order = _ordered(ccfs, first)
        for index, ccf in enumerate(order):
            try:
                message = rf.acr(
                    session_id=session_id,
                    origin_host=self.origin_host,
                    origin_realm=self.origin_realm,
                    destination_realm=self.billing_realm,
                    destination_host=ccf,
                    record_type=request.record_type,
                    record_number=record_number,
                    event=request.event,
                )
            except ValueError as e:  # rf.EventError included; parse_billing_request checked
                _log.error(
                    "ralf: cannot build the ACR for {call_id}: {error}",
                    call_id=request.call_id,
                    error=e,
                )
                return _Sent(Outcome.FAILED)
            try:
                if self.connector is not None:
                    await self.connector.ensure(ccf)
                answer = await self._node.request(message, self.request_timeout)
            except (NoPeerError, DiameterTimeoutError) as e:
                reason = str(e) or type(e).__name__
            else:
                try:
                    aca = rf.parse_aca(answer)
                except (ValueError, DiameterDecodeError) as e:
                    _log.warn("ralf: CCF {ccf} sent a bad answer: {error}", ccf=ccf, error=e)
                    return _Sent(Outcome.FAILED, None, ccf)
                if aca.result_code != _UNABLE_TO_DELIVER:
                    outcome = Outcome.SUCCESS if aca.result_code == _SUCCESS else Outcome.REJECTED
                    if outcome is Outcome.REJECTED:
                        _log.warn(
                            "ralf: CCF {ccf} answered {code} to {kind} for {call_id}",
                            ccf=ccf,
                            code=aca.result_code,
                            kind=request.record_type.name,
                            call_id=request.call_id,
                        )
                    return _Sent(outcome, aca, ccf)
                reason = "DIAMETER_UNABLE_TO_DELIVER"
            more = index + 1 < len(order)
            _log.warn(
                "ralf: ACR for {call_id} not delivered to {ccf} ({reason}){next}",
                call_id=request.call_id,
                ccf=ccf,
                reason=reason,
                next=", trying " + order[index + 1] if more else "; no CCF left",
            )
            if more:
                self.failovers += 1
        return _Sent(Outcome.UNDELIVERED)

    # ---- store and timers

    def _ttl(self, refresh: int) -> int:
        return 2 * refresh if refresh > 0 else self.no_refresh_ttl

    async def _create(self, key: str, session: Session) -> None:
        """Store a new session; one already there (a repeated START) is replaced."""
        data = session.to_json()
        ttl = self._ttl(session.refresh_time)
        for _ in range(MAX_CAS_RETRIES):
            try:
                await self._sessions.set_data(TABLE, key, data, 0, ttl)
                return
            except DataContentionError:
                pass
            old_data, cas = await self._sessions.get_data(TABLE, key)
            if old_data is None:  # gone meanwhile (a tombstone has a CAS: overwritten below)
                continue
            try:
                await self._sessions.set_data(TABLE, key, data, cas, ttl)
            except DataContentionError:
                continue
            try:
                old = Session.from_json(old_data)
            except ValueError:
                return
            if old.timer_id is not None and old.timer_id != session.timer_id:
                await self._delete_timer(old.timer_id)
            return
        _log.warn("ralf: session {key}: too many write conflicts; not stored", key=key)

    async def _update(self, key: str, timer_id: Optional[str], ccf: Optional[str]) -> None:
        """Best effort (as Clearwater's ``update_timer_id``): record a new timer id or the CCF
        that answered; a record changed meanwhile is left as it is."""
        try:
            data, cas = await self._sessions.get_data(TABLE, key)
            if not data:
                return
            session = Session.from_json(data)
            updated = attrs.evolve(session, timer_id=timer_id, ccf=ccf)
            if updated != session:
                await self._sessions.set_data(
                    TABLE, key, updated.to_json(), cas, self._ttl(updated.refresh_time)
                )
        except (StoreError, ValueError) as e:
            _log.info("ralf: session {key} not updated: {error}", key=key, error=e)

    async def _set_timer(
        self, request: BillingRequest, interval: int, repeat_for: int, timer_id: Optional[str]
    ) -> Optional[str]:
        """Set (or, with ``timer_id``, set again) the session's interim timer; its id, or on
        failure ``timer_id`` (a timer that could not be made is retried by the next INTERIM
        from sprout, as Clearwater's NO_TIMER)."""
        opaque: dict[str, Any] = {
            "call_id": request.call_id,
            "event": {
                "Service-Information": {
                    "IMS-Information": {
                        "Role-Of-Node": request.role,
                        "Node-Functionality": request.function,
                    }
                },
                "Accounting-Record-Type": int(rf.AccountingRecordType.INTERIM),
            },
        }
        try:
            new_id: str = await defer.maybeDeferred(
                self._timers.set_timer,
                TIMER_KIND,
                interval,
                opaque,
                timer_id=timer_id,
                repeat_for=repeat_for,
            )
        except Exception as e:
            self.timers["failed"] += 1
            _log.error(
                "ralf: interim timer for {call_id} not set: {error}",
                call_id=request.call_id,
                error=e,
            )
            return timer_id
        self.timers["set"] += 1
        return new_id

    async def _delete_timer(self, timer_id: str) -> None:
        try:
            await self._timers.delete_timer(timer_id)
        except Exception as e:
            self.timers["failed"] += 1
            _log.warn(
                "ralf: interim timer {timer_id} not deleted: {error}", timer_id=timer_id, error=e
            )
            return
        self.timers["deleted"] += 1

    def _interim_popped(self, timer_id: str, opaque: dict[str, Any]) -> Optional[Deferred[None]]:
        """An interim timer popped: send an INTERIM for its session (as Chronos' POST to
        ``/call-id/<id>?timer-interim=true``). Refused when overloaded, so that the timer
        service delivers the pop again."""
        self.interim_pops += 1
        call_id = opaque.get("call_id")
        try:
            if not isinstance(call_id, str):
                raise BillingRequestError("call_id: missing or not a string")
            request = parse_billing_request(
                call_id, {"event": opaque.get("event")}, timer_interim=True
            )
        except BillingRequestError as e:
            _log.error(
                "ralf: interim timer {timer_id} has a bad opaque: {error}",
                timer_id=timer_id,
                error=e,
            )
            return None
        if not self.submit(request):
            return defer.fail(OverloadedError("ralf overloaded: interim timer pop refused"))
        return None
