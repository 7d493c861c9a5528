"""The SQLite subscriber store (clearwater.stores.sqlite) on the real reactor, in a temp dir.

Besides the shared ISubscriberStore conformance suite: what the embedded default promises on top
of it (ARCHITECTURE.md §3, issue #5): provisioned subscribers survive a restart, writes are
committed when their Deferred fires, SQLite never runs on the reactor thread, and broken or
locked files give StoreUnavailableError.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time
from typing import Any, Callable, Optional, cast

import pytest
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from typing_extensions import override
from zope.interface.verify import verifyObject

from clearwater.stores.interfaces import ISubscriberStore, NotFoundError, StoreUnavailableError
from clearwater.stores.records import (
    AkaCredentials,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    RegState,
)
from clearwater.stores.sqlite import (
    SCHEMA_VERSION,
    ISqliteReactor,
    SqliteSubscriberStore,
    SqliteTransaction,
)
from tests.conformance.stores.subscriber import SubscriberStoreConformance

REACTOR = cast(ISqliteReactor, _reactor)
CLOCK = cast(IReactorTime, _reactor)

ALICE_HA1 = "0a1ba3a8b0db1b8a3ec5a9b9fa4f21f6"
AKA = AkaCredentials(k=bytes(range(16)), opc=bytes(range(16, 32)), amf=b"\x80\x00", sqn=32)


def public_xml(impu: str) -> str:
    return "<PublicIdentity><Identity>" + impu + "</Identity></PublicIdentity>"


class SqliteStoreTestCase(TestCase):
    """A temporary directory and stores on files in it, all closed after the test."""

    timeout = 120

    @override
    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)  # runs last: after the stores are closed
        self.directory = directory.name
        self.path = os.path.join(self.directory, "subscribers.db")

    async def open(self, path: Optional[str] = None, **options: Any) -> SqliteSubscriberStore:
        store = await SqliteSubscriberStore.open(REACTOR, path or self.path, **options)
        self.addCleanup(store.close)
        return store

    async def unavailable(self, d: Deferred[Any]) -> str:
        """The message of the StoreUnavailableError ``d`` fails with."""
        try:
            await d
        except StoreUnavailableError as e:
            return str(e)
        raise AssertionError("no StoreUnavailableError")

    async def provision_user(
        self, store: SqliteSubscriberStore, user: str, *, aka: bool = False
    ) -> tuple[str, str]:
        """A user like alice@example.com: IMPI, IRS, service profile and two IMPUs, its SIP URI
        then ``tel:+1N`` with N the length of ``user``."""
        impi = user + "@example.com"
        await store.put_private(
            PrivateIdentity(
                impi=impi,
                realm="example.com",
                digest_ha1=ALICE_HA1,
                plaintext_password="secret",
                aka=AKA if aka else None,
            )
        )
        irs = await store.create_irs()
        await store.associate(irs, impi)
        profile = await store.create_service_profile(irs, "<InitialFilterCriteria/>")
        for impu in ("sip:" + impi, "tel:+1" + str(len(user))):
            await store.put_public(PublicIdentity(impu, irs, profile.sp, public_xml(impu)))
        return impi, irs


class TestSqliteSubscriberStoreConformance(SubscriberStoreConformance, SqliteStoreTestCase):
    """The shared ISubscriberStore suite; every store of a test on one new file."""

    @override
    def make_subscriber_store(self) -> ISubscriberStore:
        store = SqliteSubscriberStore(REACTOR, self.path)  # ready once its first call runs
        self.addCleanup(store.close)
        return store

    @override
    async def advance(self, seconds: float) -> None:
        await deferLater(CLOCK, seconds, lambda: None)

    @override
    def now(self) -> float:
        return CLOCK.seconds()

    @override
    async def restart_server(self) -> None:
        """SQLite has no server: restarting homestead is a new process opening the file as the
        old one left it. Copy the file and its WAL as they are on disk now, closing nothing
        (what a kill -9 leaves behind); stores made from now on open the copy."""
        copy = os.path.join(self.directory, "after-restart.db")
        for suffix in ("", "-wal"):
            if os.path.exists(self.path + suffix):
                shutil.copyfile(self.path + suffix, copy + suffix)
        self.path = copy


class SqliteSubscriberStoreTests(SqliteStoreTestCase):
    async def test_provides_the_interface(self) -> None:
        store = await self.open()
        assert verifyObject(ISubscriberStore, store)

    async def test_a_subscriber_is_still_there_after_a_restart(self) -> None:
        store = await self.open()
        impi, irs = await self.provision_user(store, "alice", aka=True)
        await store.put_public(
            PublicIdentity(
                "sip:!.*!@example.com",
                irs,
                (await store.service_profiles_of_irs(irs))[0].sp,
                public_xml("sip:!.*!@example.com"),
                barred=True,
                wildcard="sip:!.*!@example.com",
            )
        )
        registered = RegistrationState(RegState.REGISTERED, "sip:scscf.example.com", impi, 1e9)
        await store.set_registration(irs, registered)
        assert await store.advance_sqn(impi, 32, 64)
        before = await store.transaction(snapshot(impi, irs))
        await store.close()

        again = await self.open()
        after = await again.transaction(snapshot(impi, irs))
        assert after == before
        private = after[0]
        assert private == PrivateIdentity(
            impi,
            "example.com",
            ALICE_HA1,
            "secret",
            AkaCredentials(AKA.k, AKA.opc, AKA.amf, 64),
        )
        assert [p.impu for p in after[2]] == [
            "sip:alice@example.com",
            "tel:+15",
            "sip:!.*!@example.com",
        ]
        assert after[2][2].barred and after[2][2].wildcard == "sip:!.*!@example.com"
        assert after[3] == registered

    async def test_the_file_is_wal_with_fsync_on_every_commit(self) -> None:
        store = await self.open()
        settings = await store.transaction(
            lambda tx: [
                tx.connection.execute("PRAGMA " + name).fetchall()[0][0]
                for name in ("journal_mode", "synchronous", "foreign_keys")
            ]
        )
        assert settings == ["wal", 2, 1]  # synchronous 2 = FULL
        normal = await self.open(os.path.join(self.directory, "normal.db"), synchronous="NORMAL")
        sync = await normal.transaction(
            lambda tx: tx.connection.execute("PRAGMA synchronous").fetchall()[0][0]
        )
        assert sync == 1
        with pytest.raises(ValueError, match="synchronous must be NORMAL or FULL"):
            SqliteSubscriberStore(REACTOR, self.path, synchronous="OFF")

    async def test_a_write_is_committed_when_its_deferred_fires(self) -> None:
        store = await self.open()
        await store.put_private(PrivateIdentity("bob@example.com", "example.com", ALICE_HA1))
        other = sqlite3.connect(self.path)  # a reader outside the store, in this process
        try:
            rows = other.execute("SELECT impi, digest_ha1 FROM private").fetchall()
        finally:
            other.close()
        assert rows == [("bob@example.com", ALICE_HA1)]

    async def test_two_stores_on_one_file_see_each_others_commits(self) -> None:
        first = await self.open()
        second = await self.open()
        impi, irs = await self.provision_user(first, "carol")
        assert await second.privates_of_irs(irs) == [impi]
        assert await second.publics_of_private(impi) == ["sip:carol@example.com", "tel:+15"]
        await second.set_registration(irs, RegistrationState(RegState.UNREGISTERED))
        assert (await first.get_registration(irs)).state is RegState.UNREGISTERED
        await second.delete_irs(irs)
        assert await first.get_public("sip:carol@example.com") is None
        assert await first.irs_of_private(impi) == []

    async def test_sqlite_never_runs_on_the_reactor_thread(self) -> None:
        store = await self.open()
        threads: list[int] = []

        def trace(tx: SqliteTransaction) -> int:
            tx.connection.set_trace_callback(
                lambda statement: threads.append(threading.get_ident())
            )
            return threading.get_ident()

        worker = await store.transaction(trace)
        impi, irs = await self.provision_user(store, "dave", aka=True)
        sp = (await store.service_profiles_of_irs(irs))[0].sp
        await store.get_private(impi)
        await store.advance_sqn(impi, 32, 33)
        await store.irs_of_private(impi)
        await store.get_service_profile(irs, sp)
        await store.set_ifcs(irs, sp, "")
        await store.get_public("sip:" + impi)
        await store.publics_of_irs(irs)
        await store.wildcard_publics()
        await store.list_publics()
        await store.set_registration(irs, RegistrationState(RegState.REGISTERED))
        await store.get_registration(irs)
        await store.dissociate(irs, impi)
        await store.delete_public("sip:" + impi)
        await store.delete_service_profile(irs, sp)
        await store.delete_irs(irs)
        await store.delete_private(impi)
        assert worker != threading.get_ident()
        assert len(threads) > 40
        assert set(threads) == {worker}

    async def test_a_path_that_cannot_be_opened_is_unavailable_naming_it(self) -> None:
        missing = os.path.join(self.directory, "no", "such", "dir", "subscribers.db")
        message = await self.unavailable(SqliteSubscriberStore.open(REACTOR, missing))
        assert message.startswith("Cannot open SQLite database " + missing + ": ")
        message = await self.unavailable(SqliteSubscriberStore.open(REACTOR, self.directory))
        assert self.directory in message

    async def test_a_file_that_is_not_a_database_is_unavailable(self) -> None:
        with open(self.path, "wb") as f:
            f.write(b"not a database at all, " * 100)
        message = await self.unavailable(SqliteSubscriberStore.open(REACTOR, self.path))
        assert self.path in message and "not a database" in message

    async def test_another_applications_database_is_refused(self) -> None:
        other = sqlite3.connect(self.path)
        other.execute("CREATE TABLE accounts (name TEXT)")
        other.commit()
        other.close()
        message = await self.unavailable(SqliteSubscriberStore.open(REACTOR, self.path))
        assert message == "SQLite database " + self.path + " is not a clearwater subscriber store"

    async def test_a_newer_schema_is_refused_and_the_version_is_recorded(self) -> None:
        store = await self.open()
        await store.close()
        raw = sqlite3.connect(self.path)
        try:
            assert raw.execute("SELECT id, version FROM schema_version").fetchall() == [
                (1, SCHEMA_VERSION)
            ]
            raw.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
            raw.commit()
        finally:
            raw.close()
        message = await self.unavailable(SqliteSubscriberStore.open(REACTOR, self.path))
        assert "schema version " + str(SCHEMA_VERSION + 1) in message

    async def test_a_locked_database_is_unavailable(self) -> None:
        store = await self.open(busy_timeout=0.05)
        locker = sqlite3.connect(self.path, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            message = await self.unavailable(
                store.put_private(PrivateIdentity("erin@example.com", "example.com"))
            )
            assert message == "SQLite database " + self.path + ": database is locked"
            locker.execute("ROLLBACK")
        finally:
            locker.close()
        await store.put_private(PrivateIdentity("erin@example.com", "example.com"))
        assert await store.get_private("erin@example.com") is not None

    async def test_replacing_a_private_identity_keeps_its_associations(self) -> None:
        store = await self.open()
        impi, irs = await self.provision_user(store, "frank")
        await store.put_private(PrivateIdentity(impi, "example.org", "ffff"))
        assert await store.irs_of_private(impi) == [irs]
        assert (await store.get_private(impi)) == PrivateIdentity(impi, "example.org", "ffff")

    async def test_a_failed_transaction_leaves_nothing_behind(self) -> None:
        store = await self.open()

        def half_done(tx: SqliteTransaction) -> None:
            tx.put_private(PrivateIdentity("gina@example.com", "example.com"))
            tx.associate("no-such-irs", "gina@example.com")

        with pytest.raises(NotFoundError, match="No implicit registration set no-such-irs"):
            await store.transaction(half_done)
        assert await store.get_private("gina@example.com") is None

    async def test_a_closed_store_refuses_work(self) -> None:
        store = await self.open()
        await store.close()
        await store.close()
        message = await self.unavailable(store.get_private("x"))
        assert message == "SQLite store " + self.path + " is closed"
        assert not store._worker.running

    async def test_work_queued_before_close_finishes(self) -> None:
        store = await self.open()
        writes = [
            store.put_private(PrivateIdentity("u" + str(i), "example.com")) for i in range(20)
        ]
        await store.close()
        for write in writes:
            await write
        again = await self.open()
        assert len(await again.transaction(count("private"))) == 20

    async def test_waiting_work_is_bounded(self) -> None:
        store = await self.open(max_pending=2)
        first = store.get_private("a")
        second = store.get_private("b")
        message = await self.unavailable(store.get_private("c"))
        assert message == "SQLite store " + self.path + ": too many operations waiting"
        assert await first is None and await second is None
        assert await store.get_private("d") is None

    async def test_reactor_shutdown_closes_the_store(self) -> None:
        reactor = TriggerRecordingReactor()
        store = await SqliteSubscriberStore.open(cast(ISqliteReactor, reactor), self.path)
        self.addCleanup(store.close)
        [(phase, event, trigger)] = reactor.triggers
        assert (phase, event) == ("before", "shutdown")
        await cast("Deferred[None]", trigger())
        assert not store._worker.running
        assert "closed" in await self.unavailable(store.get_private("x"))
        other = await SqliteSubscriberStore.open(cast(ISqliteReactor, reactor), self.path)
        await other.close()
        assert len(reactor.triggers) == 1  # close() took the second store's trigger away

    async def test_ten_thousand_users_in_batches(self) -> None:
        store = await self.open()
        started = time.perf_counter()
        for first in range(0, 10_000, 1_000):
            await store.transaction(add_users(first, first + 1_000))
        took = time.perf_counter() - started
        print("\nSQLite: 10,000 users (1,000 per transaction) in " + format(took, ".2f") + " s")
        seen: list[str] = []
        after = ""
        while True:
            page = await store.list_publics(after, 1000)
            if not page:
                break
            seen.extend(p.impu for p in page)
            after = page[-1].impu
        assert len(seen) == 10_000 and seen == sorted(seen)
        assert await store.publics_of_private("user9999@example.com") == [
            "sip:user9999@example.com"
        ]

    async def test_users_one_write_at_a_time(self) -> None:
        """The per-call path a homestead-prov client drives: 5 commits per user."""
        store = await self.open()
        started = time.perf_counter()
        for i in range(1_000):
            await self.provision_user(store, "user" + str(i))
        took = time.perf_counter() - started
        print("\nSQLite: 1,000 users, one commit per write, in " + format(took, ".2f") + " s")
        # 1,000 sip: IMPUs, and tel:+15, +16, +17, each moved on to the next user of its length
        assert len(await store.list_publics(limit=5000)) == 1_003


def snapshot(impi: str, irs: str) -> Callable[[SqliteTransaction], tuple[Any, ...]]:
    def read(tx: SqliteTransaction) -> tuple[Any, ...]:
        return (
            tx.get_private(impi),
            tx.service_profiles_of_irs(irs),
            tx.publics_of_irs(irs),
            tx.get_registration(irs),
            tx.irs_of_private(impi),
            tx.wildcard_publics(),
        )

    return read


def count(table: str) -> Callable[[SqliteTransaction], list[Any]]:
    return lambda tx: tx.connection.execute("SELECT * FROM " + table).fetchall()


def add_users(first: int, end: int) -> Callable[[SqliteTransaction], None]:
    def add(tx: SqliteTransaction) -> None:
        for i in range(first, end):
            impi = "user" + str(i) + "@example.com"
            tx.put_private(PrivateIdentity(impi, "example.com", ALICE_HA1))
            irs = tx.create_irs()
            tx.associate(irs, impi)
            sp = tx.create_service_profile(irs).sp
            tx.put_public(PublicIdentity("sip:" + impi, irs, sp, public_xml("sip:" + impi)))

    return add


class TriggerRecordingReactor:
    """The real reactor, except that system event triggers are recorded, not installed."""

    def __init__(self) -> None:
        self.triggers: list[tuple[str, str, Callable[[], object]]] = []

    def addSystemEventTrigger(  # noqa: N802 (IReactorCore's name)
        self, phase: str, event: str, trigger: Callable[[], object]
    ) -> tuple[str, str, Callable[[], object]]:
        handle = (phase, event, trigger)
        self.triggers.append(handle)
        return handle

    def removeSystemEventTrigger(  # noqa: N802 (IReactorCore's name)
        self, handle: tuple[str, str, Callable[[], object]]
    ) -> None:
        self.triggers.remove(handle)

    def callFromThread(self, f: Callable[..., object], *args: object) -> None:  # noqa: N802
        REACTOR.callFromThread(f, *args)
