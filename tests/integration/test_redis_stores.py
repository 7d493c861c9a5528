"""The Redis stores (:mod:`clearwater.stores.redis`) against a real ``redis-server``.

Each test class starts its own ``redis-server`` (append-only file, fsync on every write) on a
free loopback port and runs a conformance mixin from :mod:`tests.conformance.stores` against
it; subscriber stores and timer services get a fresh key prefix per test. The classes below
the conformance runs check what is specific to Redis: the key layout, persistence across a
restart, a server that is down or hung, reconnection, and two timer services sharing a server.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Optional, cast

import pytest
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from typing_extensions import override
from zope.interface.verify import verifyObject

from clearwater.stores.interfaces import (
    ICasStore,
    IChallengeStore,
    IRegistrationStore,
    ISubscriberStore,
    ITimerService,
    NotFoundError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from clearwater.stores.records import PrivateIdentity, PublicIdentity
from clearwater.stores.redis import (
    IRedisReactor,
    RedisCasStore,
    RedisClient,
    RedisReplyError,
    RedisSubscriberStore,
    RedisTimerService,
    Script,
    connect,
)
from clearwater.stores.typed import ChallengeStore, RegistrationStore
from tests.conformance.stores import StoreConformanceBase, unique
from tests.conformance.stores.cas import CasStoreConformance
from tests.conformance.stores.challenge import ChallengeStoreConformance
from tests.conformance.stores.registration import RegistrationStoreConformance
from tests.conformance.stores.subscriber import SubscriberStoreConformance
from tests.conformance.stores.timer import TimerServiceConformance
from tests.integration._servers import ServerProcess, start_redis

REACTOR = cast(IRedisReactor, _reactor)

#: Seconds a command may take in these tests (the outage tests wait for it).
TIMEOUT = 2.0


def redis_command(server: ServerProcess, *args: str) -> bytes:
    """Run one command on a blocking socket (test set-up only): the raw RESP reply."""
    command = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
    )
    with socket.create_connection(server.address, timeout=5) as s:
        s.sendall(command)
        return s.recv(65536)


class RedisServerCase(StoreConformanceBase, TestCase):
    """A ``redis-server`` per test class (restarted by :meth:`setUp` if a test stopped it) and
    the store-time hooks on the real reactor."""

    timeout = 60
    outage_deadline = 10.0
    server: ClassVar[ServerProcess]
    _directory: ClassVar[str]

    @override
    @classmethod
    def setUpClass(cls) -> None:
        cls._directory = tempfile.mkdtemp(prefix="redis-test-")
        cls.server = start_redis(Path(cls._directory), persistent=True)

    @override
    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()
        shutil.rmtree(cls._directory, ignore_errors=True)

    @override
    def setUp(self) -> None:
        self.server.resume()  # in case a failed test left it paused
        if not self.server.alive:
            self.server.start()
        self.prefix = unique("test") + ":"

    def client(self, timeout: float = TIMEOUT) -> RedisClient:
        """A client of this class's server, closed at the end of the test."""
        client = connect(REACTOR, self.server.host, self.server.port, timeout=timeout)
        self.addCleanup(client.close)
        return client

    @override
    async def advance(self, seconds: float) -> None:
        await deferLater(REACTOR, seconds)

    @override
    def now(self) -> float:
        return REACTOR.seconds()

    @override
    async def restart_server(self) -> None:
        self.server.restart()

    @override
    async def stop_server(self) -> None:
        self.server.stop()


# --------------------------------------------------------------------------- conformance


class RedisCasConformanceTests(CasStoreConformance, RedisServerCase):
    @override
    def make_cas_store(self) -> ICasStore:
        store = RedisCasStore(self.client())
        self.addCleanup(store.close)
        return store


class RedisRegistrationConformanceTests(RegistrationStoreConformance, RedisServerCase):
    @override
    def make_registration_store(self) -> IRegistrationStore:
        cas_store = RedisCasStore(self.client())
        self.addCleanup(cas_store.close)
        return RegistrationStore(cas_store)


class RedisChallengeConformanceTests(ChallengeStoreConformance, RedisServerCase):
    @override
    def make_challenge_store(self) -> IChallengeStore:
        cas_store = RedisCasStore(self.client())
        self.addCleanup(cas_store.close)
        return ChallengeStore(cas_store)


class RedisSubscriberConformanceTests(SubscriberStoreConformance, RedisServerCase):
    @override
    def make_subscriber_store(self) -> ISubscriberStore:
        store = RedisSubscriberStore(self.client(), prefix=self.prefix)
        self.addCleanup(store.close)
        return store


class RedisTimerConformanceTests(TimerServiceConformance, RedisServerCase):
    timer_redelivery_delay = 1.0  # short leases keep the redelivery tests quick
    timer_slack = 0.6

    @override
    def make_timer_service(self) -> ITimerService:
        service = RedisTimerService(
            self.client(),
            REACTOR,
            prefix=self.prefix,
            poll_interval=0.05,
            redelivery_delay=self.timer_redelivery_delay,
        )
        self.addCleanup(service.close)
        return service

    @override
    def make_peer_timer_service(self) -> ITimerService:
        return self.make_timer_service()


# --------------------------------------------------------------------------- Redis specifics


class RedisCasStoreTests(RedisServerCase):
    """Clearwater's key layout, persistence through a crash, errors, databases, scripts."""

    def store(self, client: Optional[RedisClient] = None, prefix: str = "") -> RedisCasStore:
        store = RedisCasStore(client or self.client(), prefix=prefix)
        self.addCleanup(store.close)
        return store

    async def test_provides_interface(self) -> None:
        assert verifyObject(ICasStore, self.store())

    async def test_record_is_a_hash_at_clearwaters_key_with_a_ttl(self) -> None:
        store = self.store()
        impu = "sip:" + unique("alice") + "@example.com"
        await store.set_data("reg", impu, b'{"bindings":{}}', 0, 300)
        _, cas = await store.get_data("reg", impu)
        key = "reg\\\\" + impu
        assert store.key("reg", impu) == key
        reply = redis_command(self.server, "HMGET", key, "data", "cas")
        assert reply == b'*2\r\n$15\r\n{"bindings":{}}\r\n$%d\r\n%d\r\n' % (len(str(cas)), cas)
        ttl = int(redis_command(self.server, "PTTL", key)[1:].strip())
        assert 290_000 < ttl <= 300_000, ttl

    async def test_prefix_separates_stores(self) -> None:
        client = self.client()
        one = self.store(client, prefix="one:")
        two = self.store(client, prefix="two:")
        key = unique()
        await one.set_data("reg", key, b"1", 0, 300)
        assert await two.get_data("reg", key) == (None, 0)
        await two.set_data("reg", key, b"2", 0, 300)
        assert (await one.get_data("reg", key))[0] == b"1"

    async def test_databases_are_separate(self) -> None:
        db0 = self.store()
        db1_client = connect(REACTOR, self.server.host, self.server.port, db=1, timeout=TIMEOUT)
        db1 = self.store(db1_client)
        key = unique()
        await db1.set_data("reg", key, b"in db 1", 0, 300)
        assert await db0.get_data("reg", key) == (None, 0)
        assert (await db1.get_data("reg", key))[0] == b"in db 1"

    async def test_tokens_are_never_reused_after_a_delete(self) -> None:
        store = self.store()
        key = unique()
        await store.set_data("reg", key, b"x", 0, 300)
        _, old = await store.get_data("reg", key)
        await store.delete_data("reg", key)
        await store.set_data("reg", key, b"y", 0, 300)
        _, new = await store.get_data("reg", key)
        assert new > old

    async def test_data_survives_a_crash(self) -> None:
        store = self.store()
        key = unique()
        await store.set_data("reg", key, b"fsynced", 0, 300)
        _, cas = await store.get_data("reg", key)
        self.server.kill()  # SIGKILL: only what reached the append-only file survives
        self.server.start()
        assert await self.store().get_data("reg", key) == (b"fsynced", cas)
        await store.set_data("reg", key, b"later", cas, 300)  # the old store reconnects
        _, newer = await store.get_data("reg", key)
        assert newer > cas

    async def test_script_is_loaded_again_after_a_script_flush(self) -> None:
        store = self.store()
        key = unique()
        await store.set_data("reg", key, b"1", 0, 300)
        assert redis_command(self.server, "SCRIPT", "FLUSH") == b"+OK\r\n"
        _, cas = await store.get_data("reg", key)
        await store.set_data("reg", key, b"2", cas, 300)
        assert (await store.get_data("reg", key))[0] == b"2"

    async def test_error_reply_is_a_reply_error(self) -> None:
        store = self.store()
        key = unique()
        redis_command(self.server, "SET", store.key("reg", key), "not a hash")
        with pytest.raises(RedisReplyError) as raised:
            await store.get_data("reg", key)
        assert "WRONGTYPE" in str(raised.value)
        assert isinstance(raised.value, StoreUnavailableError)
        # The connection is still in step: the next command gets its own answer.
        assert await store.get_data("reg", unique()) == (None, 0)

    async def test_refused_connection_fails_at_once(self) -> None:
        port = self.server.port
        self.server.stop()
        client = connect(REACTOR, "127.0.0.1", port, timeout=5.0)
        self.addCleanup(client.close)
        store = self.store(client)
        start = REACTOR.seconds()
        with pytest.raises(StoreUnavailableError) as raised:
            await store.get_data("reg", unique())
        assert not isinstance(raised.value, StoreTimeoutError)
        assert "refused" in str(raised.value)
        assert REACTOR.seconds() - start < 1.0

    async def test_hung_server_times_out_then_recovers(self) -> None:
        store = self.store(self.client(timeout=0.5))
        key = unique()
        await store.set_data("reg", key, b"x", 0, 300)
        self.server.pause()
        try:
            start = REACTOR.seconds()
            with pytest.raises(StoreTimeoutError):
                await store.get_data("reg", key)
            assert REACTOR.seconds() - start < 1.5
            late = self.store(self.client(timeout=0.5))  # a new connection to a hung server
            with pytest.raises(StoreTimeoutError):
                await late.get_data("reg", key)
        finally:
            self.server.resume()
        assert (await store.get_data("reg", key))[0] == b"x"

    async def test_a_timeout_fails_the_commands_queued_behind_it_at_once(self) -> None:
        store = self.store(self.client(timeout=1.0))
        key = unique()
        await store.set_data("reg", key, b"x", 0, 300)
        self.server.pause()
        try:
            first = store.get_data("reg", key)
            await self.advance(0.6)
            second = store.get_data("reg", key)  # due to time out 0.6 s after the first
            assert await self.settles_within(first, 1.5)
            await self.assert_fails(first, StoreTimeoutError)
            assert second.called, "the command behind waited for its own timeout"
            error = await self.assert_fails(second, StoreUnavailableError)
            assert not isinstance(error, StoreTimeoutError)
        finally:
            self.server.resume()
        assert (await store.get_data("reg", key))[0] == b"x"

    async def test_commands_in_flight_fail_when_the_server_dies(self) -> None:
        client = self.client(timeout=5.0)
        store = self.store(client)
        key = unique()
        await store.set_data("reg", key, b"x", 0, 300)
        self.server.pause()
        pending = [store.get_data("reg", key) for _ in range(5)]
        await self.advance(0.2)
        self.server.kill()
        for d in pending:
            assert await self.settles_within(d, 2.0), "hung after the server died"
            error = await self.assert_fails(d, StoreUnavailableError)
            assert not isinstance(error, StoreTimeoutError), "lost, not timed out"

    async def test_server_back_means_operations_succeed_again(self) -> None:
        store = self.store()
        key = unique()
        await store.set_data("reg", key, b"before", 0, 300)
        self.server.stop()
        with pytest.raises(StoreUnavailableError):
            await store.get_data("reg", key)
        self.server.start()

        async def back() -> bool:
            try:
                return (await store.get_data("reg", key))[0] == b"before"
            except StoreUnavailableError:
                return False

        assert await self.poll_until(back, 2.0)

    async def test_close_makes_later_commands_fail(self) -> None:
        client = self.client()
        store = self.store(client)
        await store.get_data("reg", unique())
        connected_before = client.connected
        await store.close()
        assert (connected_before, client.connected) == (True, False)
        with pytest.raises(StoreUnavailableError):
            await store.get_data("reg", unique())

    async def test_client_runs_commands_and_scripts(self) -> None:
        client = self.client()
        key = self.prefix + "k"
        assert await client.execute("SET", key, "ü€") == "OK"
        assert await client.execute("GET", key) == "ü€".encode()
        assert await client.execute("EXISTS", key) == 1
        assert await client.execute("GET", key + "missing") is None
        echo = Script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
        assert await client.run(echo, (key,), ("a", 41)) == [key.encode(), b"a", 42]
        with pytest.raises(RedisReplyError):
            await client.execute("NOSUCHCOMMAND")
        with pytest.raises(ValueError):
            RedisClient(REACTOR, timeout=0)


class RedisSubscriberStoreTests(RedisServerCase):
    """Persistence through a crash and key hygiene of the subscriber store."""

    def store(self) -> RedisSubscriberStore:
        store = RedisSubscriberStore(self.client(), prefix=self.prefix)
        self.addCleanup(store.close)
        return store

    async def keys(self) -> list[bytes]:
        return sorted(await self.client().execute("KEYS", self.prefix + "*"))

    async def provision(self, store: RedisSubscriberStore) -> tuple[str, str]:
        await store.put_private(
            PrivateIdentity("alice@example.com", "example.com", "ab" * 16, "secret")
        )
        irs = await store.create_irs()
        await store.associate(irs, "alice@example.com")
        sp = await store.create_service_profile(irs, "<InitialFilterCriteria/>")
        for impu, wildcard in (("sip:alice@example.com", None), ("sip:!.*!@example.com", "x")):
            await store.put_public(
                PublicIdentity(impu, irs, sp.sp, "<PublicIdentity/>", wildcard=wildcard)
            )
        return irs, sp.sp

    async def test_provides_interface(self) -> None:
        assert verifyObject(ISubscriberStore, self.store())

    async def test_provisioned_data_survives_a_crash(self) -> None:
        store = self.store()
        irs, sp = await self.provision(store)
        self.server.kill()
        self.server.start()
        fresh = self.store()
        assert await fresh.get_private("alice@example.com") == PrivateIdentity(
            "alice@example.com", "example.com", "ab" * 16, "secret"
        )
        assert await fresh.privates_of_irs(irs) == ["alice@example.com"]
        assert [p.impu for p in await fresh.publics_of_irs(irs)] == [
            "sip:alice@example.com",
            "sip:!.*!@example.com",
        ]
        assert [p.impu for p in await fresh.wildcard_publics()] == ["sip:!.*!@example.com"]
        assert (await fresh.get_service_profile(irs, sp)) == await store.get_service_profile(
            irs, sp
        )

    async def test_deleting_everything_leaves_no_keys_but_the_sequence(self) -> None:
        store = self.store()
        irs, _ = await self.provision(store)
        assert len(await self.keys()) > 5
        await store.delete_irs(irs)
        await store.delete_private("alice@example.com")
        assert await self.keys() == [(self.prefix + "seq").encode()]

    async def test_not_found_error_names_the_identity_even_with_odd_characters(self) -> None:
        store = self.store()
        impi = "bad\r\nname é@example.com"
        with pytest.raises(NotFoundError) as raised:
            await store.delete_private(impi)
        assert impi in str(raised.value)
        with pytest.raises(NotFoundError):
            await store.associate("no irs\r\n", impi)


class RedisTimerServiceTests(RedisServerCase):
    """Timers in Redis: persistence, outages, claim bounds, hung handlers, key hygiene."""

    def service(self, **options: Any) -> RedisTimerService:
        options.setdefault("poll_interval", 0.05)
        options.setdefault("redelivery_delay", 1.0)
        service = RedisTimerService(self.client(), REACTOR, prefix=self.prefix, **options)
        self.addCleanup(service.close)
        return service

    async def wait_for(self, pops: list[Any], count: int, limit: float) -> bool:
        async def enough() -> bool:
            return len(pops) >= count

        return await self.poll_until(enough, limit)

    async def test_provides_interface(self) -> None:
        assert verifyObject(ITimerService, self.service())

    async def test_timers_survive_a_redis_restart(self) -> None:
        setter = self.service()
        timer_id = await setter.set_timer("reg", 1.5, {"aor_id": "sip:a@example.com"})
        self.server.restart()
        popper = self.service()
        pops: list[tuple[str, dict[str, Any]]] = []
        popper.listen("reg", lambda i, o: pops.append((i, o)))
        assert await self.wait_for(pops, 1, 3.0)
        assert pops == [(timer_id, {"aor_id": "sip:a@example.com"})]

    async def test_polling_resumes_after_an_outage(self) -> None:
        service = self.service()
        pops: list[str] = []
        service.listen("reg", lambda i, o: pops.append(i))
        self.server.stop()
        await self.advance(0.3)  # polls fail meanwhile (logged once)
        self.server.start()

        async def set_one() -> bool:
            try:
                pops.append(await service.set_timer("reg", 0.2, {}))
            except StoreUnavailableError:
                return False
            return True

        assert await self.poll_until(set_one, 2.0)
        assert await self.wait_for(pops, 2, 2.0)
        assert pops[0] == pops[1]

    async def test_claims_are_bounded_by_max_in_flight(self) -> None:
        service = self.service(max_in_flight=3, redelivery_delay=5.0)
        running: list[Deferred[None]] = []

        def handler(timer_id: str, opaque: dict[str, Any]) -> Deferred[None]:
            d: Deferred[None] = Deferred()
            running.append(d)
            return d

        service.listen("reg", handler)
        for n in range(7):
            await service.set_timer("reg", 0.2, {"n": n})
        assert await self.wait_for(running, 3, 2.0)
        await self.advance(0.3)
        assert len(running) == 3
        for d in running[:3]:
            d.callback(None)
        assert await self.wait_for(running, 6, 2.0)
        await self.advance(0.3)
        assert len(running) == 6
        for d in running[3:]:
            d.callback(None)
        assert await self.wait_for(running, 7, 2.0)
        running[6].callback(None)

    async def test_hung_handler_is_cancelled_and_the_pop_goes_to_another_node(self) -> None:
        hung: list[Deferred[None]] = []
        done: list[str] = []

        def hangs(timer_id: str, opaque: dict[str, Any]) -> Deferred[None]:
            d: Deferred[None] = Deferred()
            hung.append(d)
            return d

        first = self.service(redelivery_delay=1.0)
        first.listen("reg", hangs)
        timer_id = await first.set_timer("reg", 0.2, {})
        assert await self.wait_for(hung, 1, 2.0)
        second = self.service(redelivery_delay=1.0)
        second.listen("reg", lambda i, o: done.append(i))
        await first.close()  # this node stops; its claim is never acknowledged
        assert await self.wait_for(done, 1, 2.5)
        assert done == [timer_id]
        assert hung[0].called  # cancelled, not left dangling
        self.flushLoggedErrors()  # type: ignore[no-untyped-call]

    async def test_handler_slower_than_the_lease_counts_as_failed(self) -> None:
        service = self.service(redelivery_delay=0.5)
        calls: list[Deferred[None]] = []

        def slow(timer_id: str, opaque: dict[str, Any]) -> Deferred[None]:
            d: Deferred[None] = Deferred()
            calls.append(d)
            return d

        service.listen("reg", slow)
        await service.set_timer("reg", 0.2, {})
        assert await self.wait_for(calls, 2, 3.0)
        assert calls[0].called  # timed out
        calls[1].callback(None)
        await self.advance(1.0)
        assert len(calls) == 2
        self.flushLoggedErrors()  # type: ignore[no-untyped-call]

    async def test_replacing_a_timer_while_it_pops_keeps_the_new_one(self) -> None:
        service = self.service(redelivery_delay=5.0)
        calls: list[tuple[dict[str, Any], Deferred[None]]] = []

        def handler(timer_id: str, opaque: dict[str, Any]) -> Deferred[None]:
            d: Deferred[None] = Deferred()
            calls.append((opaque, d))
            return d

        service.listen("reg", handler)
        timer_id = await service.set_timer("reg", 0.2, {"v": 1})
        assert await self.wait_for(calls, 1, 2.0)
        await service.set_timer("reg", 0.5, {"v": 2}, timer_id=timer_id)
        calls[0][1].callback(None)  # the old pop's acknowledgement must not touch the new timer
        assert await self.wait_for(calls, 2, 2.0)
        assert [opaque for opaque, _ in calls] == [{"v": 1}, {"v": 2}]
        calls[1][1].callback(None)

    async def test_repeat_for_shorter_than_the_interval_never_pops(self) -> None:
        service = self.service()
        pops: list[str] = []
        service.listen("reg", lambda i, o: pops.append(i))
        await service.set_timer("reg", 0.5, {}, repeat_for=0.2)  # Chronos: never pops
        await self.advance(1.2)
        assert pops == []

    async def test_only_the_lease_counter_is_left_after_the_last_pop(self) -> None:
        service = self.service()
        pops: list[str] = []
        service.listen("reg", lambda i, o: pops.append(i))
        await service.set_timer("reg", 0.2, {}, repeat_for=0.4)
        assert await self.wait_for(pops, 2, 2.0)

        async def clean() -> bool:
            keys = await self.client().execute("KEYS", self.prefix + "*")
            return bool(keys == [(self.prefix + "lease").encode()])

        assert await self.poll_until(clean, 1.0)

    async def test_kinds_nobody_listens_for_wait_in_redis(self) -> None:
        service = self.service()
        pops: list[str] = []
        service.listen("reg", lambda i, o: pops.append(i))
        other = await service.set_timer("auth-timeout", 0.2, {})
        mine = await service.set_timer("reg", 0.4, {})
        assert await self.wait_for(pops, 1, 2.0)
        assert pops == [mine]
        late: list[str] = []
        service.listen("auth-timeout", lambda i, o: late.append(i))
        assert await self.wait_for(late, 1, 2.0)
        assert late == [other]

    async def test_invalid_arguments(self) -> None:
        service = self.service()
        with pytest.raises(ValueError):
            service.set_timer("reg", 0, {})
        with pytest.raises(ValueError):
            RedisTimerService(self.client(), REACTOR, poll_interval=0)
