"""MemcachedCasStore against a real ``memcached`` (spec §1.4, §3.2, §3.4).

The conformance suites (``tests/conformance/stores``) run against :class:`MemcachedCasStore`
and the typed registration and challenge stores over it; the tests below check what is
memcached's own: Clearwater's key layout on the wire, hashed keys, tombstones, lifetimes over
30 days, and a server that is down, hung, or back after a restart (memcached keeps nothing
across a restart: that is expected).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, Optional, cast

import pytest
from twisted.internet import reactor as _reactor
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from typing_extensions import override
from zope.interface.verify import verifyObject

from clearwater.stores.interfaces import (
    DataContentionError,
    ICasStore,
    IChallengeStore,
    IRegistrationStore,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from clearwater.stores.memcached import (
    MEMCACHED_EXPIRATION_MAXDELTA,
    MemcachedCasStore,
    MemcachedReactor,
    memcached_key,
)
from clearwater.stores.records import AoR, Challenge
from clearwater.stores.typed import ChallengeStore, RegistrationStore
from tests.conformance.stores import StoreConformanceBase
from tests.conformance.stores.cas import CasStoreConformance
from tests.conformance.stores.challenge import ChallengeStoreConformance
from tests.conformance.stores.registration import RegistrationStoreConformance, make_aor
from tests.integration._servers import ServerProcess, start_memcached

REACTOR = cast(MemcachedReactor, _reactor)
#: The store's operation timeout in these tests (seconds).
TIMEOUT = 1.0
ALICE = "sip:alice@example.com"
AOR_JSON = b'{"bindings":{},"subscriptions":{},"notify_cseq":1}'


class _Raw(Protocol):
    """A bare memcached text-protocol client: sends one command, collects the answer."""

    def __init__(self, command: bytes, done: re.Pattern[bytes]) -> None:
        self.command = command
        self.done = done
        self.buffer = b""
        self.answer: Deferred[bytes] = Deferred()

    @override
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.command)

    @override
    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if self.done.search(self.buffer) and not self.answer.called:
            assert self.transport is not None
            self.transport.loseConnection()
            self.answer.callback(self.buffer)


async def raw_command(server: ServerProcess, command: bytes, done: bytes = rb"\r\n\Z") -> bytes:
    """Send ``command`` on a fresh connection; the answer once it matches ``done``."""
    protocol = _Raw(command, re.compile(done))
    endpoint = TCP4ClientEndpoint(_reactor, server.host, server.port, timeout=5)
    await connectProtocol(endpoint, protocol)  # type: ignore[no-untyped-call]  # untyped in Twisted
    protocol.answer.addTimeout(5, _reactor)
    return await protocol.answer


async def raw_get(server: ServerProcess, key: bytes) -> bytes:
    return await raw_command(server, b"get " + key + b"\r\n", rb"END\r\n\Z")


async def raw_ttl(server: ServerProcess, key: bytes) -> Optional[int]:
    """The remaining lifetime of ``key`` from the meta get (memcached ≥ 1.6), None if absent;
    -1 for no expiry."""
    answer = await raw_command(server, b"mg " + key + b" t\r\n")
    if answer.startswith(b"EN"):
        return None
    match = re.match(rb"HD t(-?\d+)", answer)
    assert match is not None, answer
    return int(match.group(1))


async def wait(seconds: float) -> None:
    await task.deferLater(_reactor, seconds, lambda: None)


class _MemcachedTestCase(TestCase):
    """A memcached per test and a store on it (closed afterwards)."""

    timeout = 60

    @override
    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.server = start_memcached(Path(directory.name) / "memcached")
        self.addCleanup(self.server.kill)  # memcached keeps nothing: no need to wait for SIGTERM

    def make_store(self, **kwargs: Any) -> MemcachedCasStore:
        kwargs.setdefault("timeout", TIMEOUT)
        kwargs.setdefault("retry_initial_delay", 0.05)
        kwargs.setdefault("retry_max_delay", 0.2)
        store = MemcachedCasStore(REACTOR, self.server.host, self.server.port, **kwargs)
        self.addCleanup(store.close)
        return store

    async def until_connected(self, store: MemcachedCasStore, within: float = 10.0) -> None:
        """Poll (not sleep) until an operation succeeds, failing after ``within`` seconds."""
        deadline = _reactor.seconds() + within
        while True:
            try:
                await store.get_data("probe", "x")
                return
            except StoreUnavailableError:
                if _reactor.seconds() > deadline:
                    raise
                await wait(0.05)


class _ConformanceHooks(StoreConformanceBase, _MemcachedTestCase):
    """The conformance suites' hooks on a real memcached (tests/conformance/stores)."""

    #: memcached keeps nothing across a restart; the restart tests check it works again.
    server_persists_data = False
    #: A stopped server fails operations at once, or after the store's timeout at worst.
    outage_deadline = TIMEOUT + 1.0

    @override
    async def advance(self, seconds: float) -> None:
        await wait(seconds)

    @override
    def now(self) -> float:
        return _reactor.seconds()

    @override
    async def restart_server(self) -> None:
        self.server.restart()

    @override
    async def stop_server(self) -> None:
        self.server.stop()


class MemcachedCasConformanceTests(CasStoreConformance, _ConformanceHooks):
    @override
    def make_cas_store(self) -> ICasStore:
        return self.make_store()


class MemcachedRegistrationConformanceTests(RegistrationStoreConformance, _ConformanceHooks):
    @override
    def make_registration_store(self) -> IRegistrationStore:
        return RegistrationStore(self.make_store())


class MemcachedChallengeConformanceTests(ChallengeStoreConformance, _ConformanceHooks):
    @override
    def make_challenge_store(self) -> IChallengeStore:
        return ChallengeStore(self.make_store())


class WireFormatTests(_MemcachedTestCase):
    """Records sit where Clearwater's MemcachedStore put them, in its format."""

    async def test_store_is_an_icasstore(self) -> None:
        assert verifyObject(ICasStore, self.make_store())

    async def test_clearwater_key_on_the_wire(self) -> None:
        store = self.make_store()
        await store.set_data("reg", ALICE, AOR_JSON, 0, 300)
        answer = await raw_get(self.server, b"reg\\\\sip:alice@example.com")
        expected = b"VALUE reg\\\\sip:alice@example.com 0 %d\r\n" % len(AOR_JSON)
        assert answer == expected + AOR_JSON + b"\r\nEND\r\n"
        ttl = await raw_ttl(self.server, b"reg\\\\sip:alice@example.com")
        assert ttl is not None and 298 <= ttl <= 300

    async def test_registration_store_writes_clearwaters_aor_json_at_reg_impu(self) -> None:
        registrations = RegistrationStore(self.make_store())
        now = int(_reactor.seconds())
        aor = make_aor(now + 300, now + 100, bindings=2)
        await registrations.set_aor(ALICE, aor, 0, now)
        key = b"reg\\\\sip:alice@example.com"
        answer = await raw_get(self.server, key)
        header, body, end = answer.split(b"\r\n", 2)
        assert header.startswith(b"VALUE " + key + b" 0 ")
        assert end == b"END\r\n"
        document = json.loads(body)
        assert set(document) >= {"bindings", "subscriptions", "associated-uris", "notify_cseq"}
        assert AoR.from_json(document) == aor
        ttl = await raw_ttl(self.server, key)
        assert ttl is not None and 308 <= ttl <= 311  # latest expiry + 10 s
        # Emptied under CAS: a short-lived tombstone that reads as no record.
        _, cas = await registrations.get_aor(ALICE)
        await registrations.set_aor(ALICE, AoR(), cas, now)
        assert await raw_get(self.server, key) == b"VALUE " + key + b" 0 0\r\n\r\nEND\r\n"
        assert await registrations.get_aor(ALICE) == (None, 0)

    async def test_challenge_store_writes_auth_challenges_at_impi_impi(self) -> None:
        challenges = ChallengeStore(self.make_store())
        now = int(_reactor.seconds())
        challenge = Challenge(
            type="digest", nonce="abcdef0123456789", expires=now + 40, realm="example.com",
            qop="auth", ha1="0" * 32,
        )  # fmt: skip
        await challenges.set_challenges("alice@example.com", (challenge,), 0, now)
        answer = await raw_get(self.server, b"impi\\\\alice@example.com")
        body = answer.split(b"\r\n")[1]
        assert json.loads(body) == {"authChallenges": [challenge.to_json()]}
        ttl = await raw_ttl(self.server, b"impi\\\\alice@example.com")
        assert ttl is not None and 38 <= ttl <= 40

    async def test_reads_a_record_clearwater_wrote(self) -> None:
        store = self.make_store()
        command = b"set impi\\\\bob@example.com 0 300 %d\r\n" % len(AOR_JSON) + AOR_JSON + b"\r\n"
        assert await raw_command(self.server, command) == b"STORED\r\n"
        data, cas = await store.get_data("impi", "bob@example.com")
        assert data == AOR_JSON
        assert cas > 0

    async def test_cas_is_memcacheds_and_a_stale_one_loses(self) -> None:
        store = self.make_store()
        await store.set_data("reg", ALICE, b"one", 0, 300)
        _, cas = await store.get_data("reg", ALICE)
        answer = await raw_command(
            self.server, b"gets reg\\\\" + ALICE.encode() + b"\r\n", rb"END\r\n\Z"
        )
        assert answer.split(b"\r\n")[0].endswith(b" %d" % cas)
        await store.set_data("reg", ALICE, b"two", cas, 300)
        with pytest.raises(DataContentionError):
            await store.set_data("reg", ALICE, b"three", cas, 300)
        assert (await store.get_data("reg", ALICE))[0] == b"two"

    async def test_delete_writes_a_200_s_tombstone_that_reads_as_absent(self) -> None:
        store = self.make_store()
        await store.set_data("reg", ALICE, b"one", 0, 300)
        await store.delete_data("reg", ALICE)
        key = b"reg\\\\sip:alice@example.com"
        assert await raw_get(self.server, key) == b"VALUE " + key + b" 0 0\r\n\r\nEND\r\n"
        ttl = await raw_ttl(self.server, key)
        assert ttl is not None and 198 <= ttl <= 200
        assert await store.get_data("reg", ALICE) == (None, 0)
        # CAS 0 writes over the tombstone.
        await store.set_data("reg", ALICE, b"again", 0, 300)
        data, cas = await store.get_data("reg", ALICE)
        assert data == b"again"
        assert cas > 0

    async def test_a_tombstone_clearwater_wrote_reads_as_absent(self) -> None:
        store = self.make_store()
        key = b"reg\\\\sip:alice@example.com"
        assert await raw_command(self.server, b"set " + key + b" 0 200 0\r\n\r\n") == (
            b"STORED\r\n"
        )
        assert await store.get_data("reg", ALICE) == (None, 0)
        with pytest.raises(DataContentionError):
            await store.set_data("reg", ALICE, b"x", 987654321, 300)  # no record: CAS loses

    async def test_plain_delete_without_tombstones(self) -> None:
        store = self.make_store(tombstone_lifetime=0)
        await store.set_data("reg", ALICE, b"one", 0, 300)
        await store.delete_data("reg", ALICE)
        assert await raw_get(self.server, b"reg\\\\sip:alice@example.com") == b"END\r\n"
        await store.delete_data("reg", ALICE)  # nothing there: no error

    async def test_lifetime_over_30_days_is_sent_as_an_absolute_time(self) -> None:
        store = self.make_store()
        forty_days = 40 * 24 * 3600
        await store.set_data("reg", ALICE, b"long-lived", 0, forty_days)
        # Sent as a relative 40 days, memcached would have taken it as a 1970 date: gone.
        assert (await store.get_data("reg", ALICE))[0] == b"long-lived"
        ttl = await raw_ttl(self.server, b"reg\\\\sip:alice@example.com")
        assert ttl is not None and forty_days - 5 <= ttl <= forty_days + 1

    async def test_lifetime_expires(self) -> None:
        store = self.make_store()
        await store.set_data("impi", "alice@example.com", b"c", 0, 1)
        assert (await store.get_data("impi", "alice@example.com"))[0] == b"c"
        deadline = _reactor.seconds() + 5
        while (await store.get_data("impi", "alice@example.com"))[0] is not None:
            assert _reactor.seconds() < deadline, "record outlived its 1 s lifetime"
            await wait(0.1)

    async def test_zero_lifetime_expires_at_once(self) -> None:
        store = self.make_store()
        await store.set_data("reg", ALICE, b"one", 0, 300)
        _, cas = await store.get_data("reg", ALICE)
        await store.set_data("reg", ALICE, b"gone", cas, 0)
        assert await store.get_data("reg", ALICE) == (None, 0)

    async def test_record_over_the_size_limit_is_refused(self) -> None:
        store = self.make_store(max_data_length=64 * 1024)  # cpp-common's MAX_DATA_LENGTH
        with pytest.raises(StoreUnavailableError):
            await store.set_data("reg", ALICE, b"x" * (64 * 1024 + 1), 0, 300)
        await store.set_data("reg", ALICE, b"x" * (64 * 1024), 0, 300)
        assert await raw_ttl(self.server, b"reg\\\\sip:alice@example.com") is not None
        # The default limit fits memcached's 1 MiB items, hashed keys' framing included.
        store = self.make_store()
        impu = "sip:" + "x" * 300
        await store.set_data("reg", impu, b"y" * 1_000_000, 0, 300)
        assert (await store.get_data("reg", impu))[0] == b"y" * 1_000_000
        with pytest.raises(StoreUnavailableError):
            await store.set_data("reg", ALICE, b"x" * 1_000_001, 0, 300)


class HashedKeyTests(_MemcachedTestCase):
    """Keys the text protocol cannot carry go under a SHA-256 of the key, framed with it."""

    async def test_long_key_is_hashed_and_framed_with_the_full_key(self) -> None:
        store = self.make_store()
        impu = "sip:" + "é;a=b%20" * 40 + "@example.com"
        wire, hashed = memcached_key("reg", impu)
        assert hashed
        assert re.fullmatch(rb"reg\\\\sha256:[0-9a-f]{64}", wire)
        await store.set_data("reg", impu, AOR_JSON, 0, 300)
        full = b"reg\\\\" + impu.encode()
        answer = await raw_get(self.server, wire)
        framed = b"%d:" % len(full) + full + AOR_JSON
        assert answer == b"VALUE " + wire + b" 1 %d\r\n" % len(framed) + framed + b"\r\nEND\r\n"
        assert (await store.get_data("reg", impu))[0] == AOR_JSON

    async def test_keys_with_spaces_or_controls_are_hashed(self) -> None:
        store = self.make_store()
        for key in ("a b", "tab\there", "nl\r\nget x", "sha256:" + "0" * 64):
            assert memcached_key("t", key)[1], key
            await store.set_data("t", key, key.encode(), 0, 300)
        for key in ("a b", "tab\there", "nl\r\nget x", "sha256:" + "0" * 64):
            assert (await store.get_data("t", key))[0] == key.encode()

    async def test_a_collision_is_an_error_not_another_keys_data(self) -> None:
        store = self.make_store()
        impu = "sip:" + "x" * 300
        wire, _ = memcached_key("reg", impu)
        other = b"reg\\\\sip:someone-else"
        value = b"%d:" % len(other) + other + b"theirs"
        command = b"set " + wire + b" 1 300 %d\r\n" % len(value) + value + b"\r\n"
        assert await raw_command(self.server, command) == b"STORED\r\n"
        with pytest.raises(StoreError):
            await store.get_data("reg", impu)


class OutageTests(_MemcachedTestCase):
    """A server that is down, hung or back: a clear error within the timeout, then recovery."""

    async def test_server_down_fails_at_once(self) -> None:
        store = self.make_store()
        await store.set_data("reg", ALICE, b"one", 0, 300)
        self.server.stop()
        start = _reactor.seconds()
        for _ in range(3):
            with pytest.raises(StoreUnavailableError):
                await store.get_data("reg", ALICE)
            with pytest.raises(StoreUnavailableError):
                await store.set_data("reg", ALICE, b"two", 0, 300)
        assert _reactor.seconds() - start < TIMEOUT + 0.5

    async def test_never_reachable_fails_within_the_timeout(self) -> None:
        port = self.server.port
        self.server.stop()
        store = MemcachedCasStore(REACTOR, self.server.host, port, timeout=TIMEOUT)
        self.addCleanup(store.close)
        start = _reactor.seconds()
        with pytest.raises(StoreUnavailableError):
            await store.get_data("reg", ALICE)  # waits for the first attempt, which is refused
        with pytest.raises(StoreUnavailableError):
            await store.get_data("reg", ALICE)  # then fails at once until the next attempt
        assert _reactor.seconds() - start < TIMEOUT + 0.5

    async def test_hung_server_times_out(self) -> None:
        store = self.make_store()
        await store.set_data("reg", ALICE, b"one", 0, 300)
        self.server.pause()
        self.addCleanup(self.server.resume)
        start = _reactor.seconds()
        with pytest.raises(StoreTimeoutError):
            await store.get_data("reg", ALICE)
        elapsed = _reactor.seconds() - start
        assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + 0.5

    async def test_operations_in_flight_are_bounded(self) -> None:
        store = self.make_store(max_pending=5)
        await store.set_data("reg", ALICE, b"one", 0, 300)
        self.server.pause()
        self.addCleanup(self.server.resume)
        in_flight = [store.get_data("reg", ALICE) for _ in range(5)]
        with pytest.raises(StoreUnavailableError) as caught:
            await store.get_data("reg", ALICE)
        assert not isinstance(caught.value, StoreTimeoutError)
        for d in in_flight:
            with pytest.raises(StoreTimeoutError):
                await d

    async def test_server_back_after_restart_works_again_without_its_data(self) -> None:
        store = self.make_store()
        await store.set_data("reg", ALICE, b"one", 0, 300)
        self.server.restart()
        await self.until_connected(store)
        # memcached keeps nothing across a restart.
        assert await store.get_data("reg", ALICE) == (None, 0)
        await store.set_data("reg", ALICE, b"two", 0, 300)
        assert (await store.get_data("reg", ALICE))[0] == b"two"

    async def test_server_back_after_a_hang(self) -> None:
        store = self.make_store()
        await store.set_data("reg", ALICE, b"one", 0, 300)
        self.server.pause()
        with pytest.raises(StoreTimeoutError):
            await store.get_data("reg", ALICE)
        self.server.resume()
        await self.until_connected(store)
        assert (await store.get_data("reg", ALICE))[0] == b"one"

    async def test_close_fails_later_operations(self) -> None:
        store = self.make_store()
        await store.set_data("reg", ALICE, b"one", 0, 300)
        await store.close()
        with pytest.raises(StoreUnavailableError):
            await store.get_data("reg", ALICE)


def no_result(case: SynchronousTestCase, d: Deferred[Any]) -> None:
    """``case.assertNoResult`` (trial's is unannotated)."""
    case.assertNoResult(d)  # type: ignore[no-untyped-call]


def failure_of(case: SynchronousTestCase, d: Deferred[Any], kind: type[Exception]) -> Failure:
    """``case.failureResultOf`` with a type (trial's is unannotated)."""
    failure: Failure = case.failureResultOf(d, kind)  # type: ignore[no-untyped-call]
    return failure


class ClockTests(SynchronousTestCase):
    """The store's bounds on a fake reactor: waiting for a connection, timeouts, back-off."""

    @override
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.store = MemcachedCasStore(
            cast(MemcachedReactor, self.reactor), "192.0.2.1", 11211, timeout=2.0, max_pending=2
        )

    def test_connects_to_the_given_address_with_the_timeout(self) -> None:
        host, port, _, timeout, _ = self.reactor.tcpClients[0]
        assert (host, port, timeout) == ("192.0.2.1", 11211, 2.0)

    def test_waits_for_the_connection_attempt_then_times_out(self) -> None:
        d = self.store.get_data("reg", ALICE)
        no_result(self, d)
        self.reactor.advance(1.9)
        no_result(self, d)
        self.reactor.advance(0.1)
        failure_of(self, d, StoreTimeoutError)
        # Waiting is bounded: two may wait, the third fails at once.
        waiting = [self.store.get_data("reg", ALICE) for _ in range(2)]
        failure_of(self, self.store.get_data("reg", ALICE), StoreUnavailableError)
        for w in waiting:
            no_result(self, w)
        self.reactor.advance(2)
        for w in waiting:
            failure_of(self, w, StoreTimeoutError)

    def test_failed_attempt_fails_waiters_and_backs_off(self) -> None:
        d = self.store.get_data("reg", ALICE)
        connector = self.reactor.connectors[0]
        factory = self.reactor.tcpClients[0][2]
        refused = Failure(ConnectionRefusedError())  # type: ignore[no-untyped-call]  # untyped
        factory.clientConnectionFailed(connector, refused)
        failure = failure_of(self, d, StoreUnavailableError)
        assert "192.0.2.1:11211" in str(failure.value)
        # While waiting to retry, operations fail at once.
        failure_of(self, self.store.get_data("reg", ALICE), StoreUnavailableError)
        assert self.reactor.getDelayedCalls()  # the reconnection
        self.successResultOf(self.store.close())
        assert not self.reactor.getDelayedCalls()

    def test_expiry_conversion(self) -> None:
        self.reactor.advance(1_700_000_000)
        assert self.store._expiry(300) == 300
        assert self.store._expiry(MEMCACHED_EXPIRATION_MAXDELTA) == MEMCACHED_EXPIRATION_MAXDELTA
        big = MEMCACHED_EXPIRATION_MAXDELTA + 1
        assert self.store._expiry(big) == 1_700_000_000 + big
        assert self.store._expiry(0) == MEMCACHED_EXPIRATION_MAXDELTA + 1  # 1970: expired

    def test_key_layout(self) -> None:
        assert memcached_key("reg", ALICE) == (b"reg\\\\sip:alice@example.com", False)
        assert memcached_key("impi", "alice@example.com") == (
            b"impi\\\\alice@example.com",
            False,
        )
        assert memcached_key("reg", "sip:é@example.com") == (
            "reg\\\\sip:é@example.com".encode(),
            False,
        )
        longest = "k" * (250 - len("reg\\\\"))
        assert memcached_key("reg", longest) == (b"reg\\\\" + longest.encode(), False)
        assert memcached_key("reg", longest + "k")[1]
        with pytest.raises(ValueError):
            memcached_key("re\\g", "x")
        with pytest.raises(ValueError):
            memcached_key("", "x")
