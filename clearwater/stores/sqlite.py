"""The SQLite subscriber store: homestead's provisioned subscribers in one file.

The embedded default behind :class:`~clearwater.stores.interfaces.ISubscriberStore`
(ARCHITECTURE.md §3). The tables mirror Clearwater's Cassandra keyspace
``homestead_provisioning`` (spec §1.4) as homestead-prov (spec §6.6) fills it: ``private``
(credentials), ``irs``, ``irs_private`` (IRS ↔ IMPI), ``service_profile`` (iFC XML), ``public``
(in provisioning order) and ``registration`` (homestead's per-IRS registration state, spec §6.1).

Durability. The file is in WAL mode with ``synchronous=FULL`` by default: every write is its own
transaction, committed (and the WAL fsynced) before its Deferred fires, so a subscriber that
homestead-prov acknowledged survives a restart of the process and also an OS crash or power cut.
Provisioning writes are rare, so one fsync each is affordable; bulk loads put many writes into one
transaction with :meth:`SqliteSubscriberStore.transaction` and pay one fsync per batch.
``synchronous="NORMAL"`` skips the per-commit fsync: still safe across process crashes and
restarts (WAL), but the last commits may roll back on power loss (as Clearwater's Cassandra with
its default periodic commit log).

Threading. SQLite calls block, so every one runs on a single dedicated worker thread (one
connection, created and used only there, in submission order); the reactor thread only queues work
and receives results. :meth:`SqliteSubscriberStore.close` stops the thread; so does reactor
shutdown, for a store nobody closed.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any, Callable, Optional, TypeVar, Union

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads
from twisted.python.failure import Failure
from zope.interface import implementer

from clearwater.stores.interfaces import ISubscriberStore, NotFoundError, StoreUnavailableError
from clearwater.stores.records import (
    AkaCredentials,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    RegState,
    ServiceProfile,
)

__all__ = ["SCHEMA_VERSION", "ISqliteReactor", "SqliteSubscriberStore", "SqliteTransaction"]

_T = TypeVar("_T")

#: The schema this module writes. A file with an older version is migrated on open
#: (``_MIGRATIONS``); a newer one is refused.
SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE schema_version (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL)""",
    """CREATE TABLE private (
        impi TEXT PRIMARY KEY,
        realm TEXT NOT NULL,
        digest_ha1 TEXT NOT NULL DEFAULT '',
        plaintext_password TEXT,
        aka_k BLOB,
        aka_opc BLOB,
        aka_amf BLOB,
        aka_sqn INTEGER)""",
    "CREATE TABLE irs (uuid TEXT PRIMARY KEY)",
    """CREATE TABLE irs_private (
        irs TEXT NOT NULL REFERENCES irs (uuid) ON DELETE CASCADE,
        impi TEXT NOT NULL REFERENCES private (impi) ON DELETE CASCADE,
        PRIMARY KEY (irs, impi))""",
    "CREATE INDEX irs_private_by_impi ON irs_private (impi, irs)",
    """CREATE TABLE service_profile (
        irs TEXT NOT NULL REFERENCES irs (uuid) ON DELETE CASCADE,
        sp TEXT NOT NULL,
        ifcs_xml TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (irs, sp))""",
    """CREATE TABLE public (
        impu TEXT PRIMARY KEY,
        irs TEXT NOT NULL,
        sp TEXT NOT NULL,
        xml TEXT NOT NULL,
        barred INTEGER NOT NULL DEFAULT 0,
        wildcard TEXT,
        position INTEGER NOT NULL,
        FOREIGN KEY (irs, sp) REFERENCES service_profile (irs, sp) ON DELETE CASCADE)""",
    "CREATE INDEX public_by_irs ON public (irs, position)",
    "CREATE INDEX public_by_sp ON public (irs, sp)",
    "CREATE INDEX public_wildcards ON public (impu) WHERE wildcard IS NOT NULL",
    """CREATE TABLE registration (
        irs TEXT PRIMARY KEY REFERENCES irs (uuid) ON DELETE CASCADE,
        state TEXT NOT NULL,
        scscf TEXT NOT NULL DEFAULT '',
        impi TEXT NOT NULL DEFAULT '',
        updated REAL NOT NULL DEFAULT 0)""",
)

#: version N → the statements that turn a version-N file into version N + 1.
_MIGRATIONS: dict[int, tuple[str, ...]] = {}

_SYNCHRONOUS = ("NORMAL", "FULL")

_PRIVATE_COLUMNS = "impi, realm, digest_ha1, plaintext_password, aka_k, aka_opc, aka_amf, aka_sqn"
_PUBLIC_COLUMNS = "impu, irs, sp, xml, barred, wildcard"


class ISqliteReactor(IReactorCore, IReactorFromThreads):
    """What the store needs from the reactor: results from its worker thread, and a shutdown
    trigger that stops that thread."""


class _Worker:
    """One thread running submitted calls in order, their results fired on the reactor thread.

    Lighter than a Twisted ThreadPool of one thread (a SimpleQueue in, a deque out): the
    subscriber store's reads are small, so the hand-off is most of their cost. Results that
    finish while the reactor has not yet taken the previous ones ride on the same wake-up.
    """

    def __init__(self, reactor: IReactorFromThreads, name: str) -> None:
        self._reactor = reactor
        self._calls: queue.SimpleQueue[
            Optional[tuple[Deferred[Any], Callable[..., Any], tuple[object, ...]]]
        ] = queue.SimpleQueue()
        self._done: deque[tuple[Deferred[Any], bool, Any]] = deque()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Callable[..., _T], *args: object) -> Deferred[_T]:
        d: Deferred[_T] = Deferred()
        self._calls.put((d, work, args))
        return d

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """End the thread once the calls submitted so far have run; wait for it."""
        self._calls.put(None)
        self._thread.join()

    def _loop(self) -> None:  # the worker thread
        while True:
            call = self._calls.get()
            if call is None:
                return
            d, work, args = call
            try:
                outcome: tuple[Deferred[Any], bool, Any] = (d, True, work(*args))
            except BaseException:
                outcome = (d, False, Failure())  # type: ignore[no-untyped-call]
            with self._lock:
                self._done.append(outcome)
                first = len(self._done) == 1
            if first:
                self._reactor.callFromThread(self._deliver)

    def _deliver(self) -> None:  # the reactor thread
        with self._lock:
            done, self._done = self._done, deque()
        for d, ok, value in done:
            if ok:
                d.callback(value)
            else:
                d.errback(value)


def _rows(db: sqlite3.Connection, sql: str, args: Sequence[object] = ()) -> list[Any]:
    """Run one statement to its end (PyPy's sqlite3 leaves a half-read statement active, which
    makes COMMIT fail) and give its rows."""
    cursor = db.execute(sql, args)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def _changes(db: sqlite3.Connection, sql: str, args: Sequence[object] = ()) -> int:
    """Run one statement; the number of rows it changed."""
    cursor = db.execute(sql, args)
    try:
        return cursor.rowcount
    finally:
        cursor.close()


def _new_id() -> str:
    return str(uuid.uuid4())


def _private(row: Any) -> PrivateIdentity:
    impi, realm, ha1, password, k, opc, amf, sqn = row
    aka = None
    if k is not None:
        aka = AkaCredentials(k=bytes(k), opc=bytes(opc), amf=bytes(amf), sqn=int(sqn))
    return PrivateIdentity(
        impi=impi, realm=realm, digest_ha1=ha1, plaintext_password=password, aka=aka
    )


def _public(row: Any) -> PublicIdentity:
    impu, irs, sp, xml, barred, wildcard = row
    return PublicIdentity(
        impu=impu, irs=irs, sp=sp, xml=xml, barred=bool(barred), wildcard=wildcard
    )


class SqliteTransaction:
    """The subscriber-store operations, synchronous, inside one open SQLite transaction.

    Instances exist only on the store's worker thread, handed to the function given to
    :meth:`SqliteSubscriberStore.transaction`; the methods mean what the
    :class:`~clearwater.stores.interfaces.ISubscriberStore` methods of the same names mean, and
    raise what those fail with. Do not keep one beyond that function.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @property
    def connection(self) -> sqlite3.Connection:
        """The worker's sqlite3 connection, for queries this class lacks (worker thread only;
        read every cursor to its end or close it, or PyPy's COMMIT fails)."""
        return self._db

    def _one(self, sql: str, *args: object) -> Any:
        rows = _rows(self._db, sql, args)
        return rows[0] if rows else None

    def _all(self, sql: str, *args: object) -> list[Any]:
        return _rows(self._db, sql, args)

    def _change(self, sql: str, *args: object) -> int:
        return _changes(self._db, sql, args)

    def _require_irs(self, irs: str) -> None:
        if self._one("SELECT 1 FROM irs WHERE uuid = ?", irs) is None:
            raise NotFoundError("No implicit registration set " + irs)

    def _require_private(self, impi: str) -> None:
        if self._one("SELECT 1 FROM private WHERE impi = ?", impi) is None:
            raise NotFoundError("No private identity " + impi)

    # -- private identities

    def put_private(self, identity: PrivateIdentity) -> None:
        aka = identity.aka
        _changes(
            self._db,
            "INSERT INTO private (" + _PRIVATE_COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (impi) DO UPDATE SET realm = excluded.realm, "
            "digest_ha1 = excluded.digest_ha1, plaintext_password = excluded.plaintext_password, "
            "aka_k = excluded.aka_k, aka_opc = excluded.aka_opc, aka_amf = excluded.aka_amf, "
            "aka_sqn = excluded.aka_sqn",
            (
                identity.impi,
                identity.realm,
                identity.digest_ha1,
                identity.plaintext_password,
                None if aka is None else aka.k,
                None if aka is None else aka.opc,
                None if aka is None else aka.amf,
                None if aka is None else aka.sqn,
            ),
        )

    def get_private(self, impi: str) -> Optional[PrivateIdentity]:
        row = self._one("SELECT " + _PRIVATE_COLUMNS + " FROM private WHERE impi = ?", impi)
        return None if row is None else _private(row)

    def delete_private(self, impi: str) -> None:
        if not self._change("DELETE FROM private WHERE impi = ?", impi):
            raise NotFoundError("No private identity " + impi)

    def advance_sqn(self, impi: str, expected: int, sqn: int) -> bool:
        if self._change(
            "UPDATE private SET aka_sqn = ? WHERE impi = ? AND aka_k IS NOT NULL AND aka_sqn = ?",
            sqn,
            impi,
            expected,
        ):
            return True
        row = self._one("SELECT aka_k FROM private WHERE impi = ?", impi)
        if row is None or row[0] is None:
            raise NotFoundError("No AKA credentials for private identity " + impi)
        return False

    # -- implicit registration sets

    def create_irs(self, irs: Optional[str] = None) -> str:
        irs = _new_id() if irs is None else irs
        _changes(self._db, "INSERT OR IGNORE INTO irs (uuid) VALUES (?)", (irs,))
        return irs

    def delete_irs(self, irs: str) -> None:
        if not self._change("DELETE FROM irs WHERE uuid = ?", irs):
            raise NotFoundError("No implicit registration set " + irs)

    def associate(self, irs: str, impi: str) -> None:
        self._require_irs(irs)
        self._require_private(impi)
        _changes(
            self._db, "INSERT OR IGNORE INTO irs_private (irs, impi) VALUES (?, ?)", (irs, impi)
        )

    def dissociate(self, irs: str, impi: str) -> None:
        _changes(self._db, "DELETE FROM irs_private WHERE irs = ? AND impi = ?", (irs, impi))

    def irs_of_private(self, impi: str) -> list[str]:
        rows = self._all("SELECT irs FROM irs_private WHERE impi = ? ORDER BY irs", impi)
        if not rows:
            self._require_private(impi)
        return [irs for (irs,) in rows]

    def privates_of_irs(self, irs: str) -> list[str]:
        rows = self._all("SELECT impi FROM irs_private WHERE irs = ? ORDER BY impi", irs)
        if not rows:
            self._require_irs(irs)
        return [impi for (impi,) in rows]

    # -- service profiles

    def create_service_profile(self, irs: str, ifcs_xml: str = "") -> ServiceProfile:
        self._require_irs(irs)
        profile = ServiceProfile(irs=irs, sp=_new_id(), ifcs_xml=ifcs_xml)
        _changes(
            self._db,
            "INSERT INTO service_profile (irs, sp, ifcs_xml) VALUES (?, ?, ?)",
            (profile.irs, profile.sp, profile.ifcs_xml),
        )
        return profile

    def get_service_profile(self, irs: str, sp: str) -> Optional[ServiceProfile]:
        row = self._one("SELECT ifcs_xml FROM service_profile WHERE irs = ? AND sp = ?", irs, sp)
        return None if row is None else ServiceProfile(irs=irs, sp=sp, ifcs_xml=row[0])

    def set_ifcs(self, irs: str, sp: str, ifcs_xml: str) -> None:
        if not self._change(
            "UPDATE service_profile SET ifcs_xml = ? WHERE irs = ? AND sp = ?", ifcs_xml, irs, sp
        ):
            raise NotFoundError("No service profile " + sp + " in implicit registration set " + irs)

    def delete_service_profile(self, irs: str, sp: str) -> None:
        if not self._change("DELETE FROM service_profile WHERE irs = ? AND sp = ?", irs, sp):
            raise NotFoundError("No service profile " + sp + " in implicit registration set " + irs)

    def service_profiles_of_irs(self, irs: str) -> list[ServiceProfile]:
        rows = self._all("SELECT sp, ifcs_xml FROM service_profile WHERE irs = ? ORDER BY sp", irs)
        if not rows:
            self._require_irs(irs)
        return [ServiceProfile(irs=irs, sp=sp, ifcs_xml=xml) for sp, xml in rows]

    # -- public identities

    def put_public(self, identity: PublicIdentity) -> None:
        irs, sp = identity.irs, identity.sp
        if self._one("SELECT 1 FROM service_profile WHERE irs = ? AND sp = ?", irs, sp) is None:
            raise NotFoundError("No service profile " + sp + " in implicit registration set " + irs)
        old = self._one("SELECT irs, sp, position FROM public WHERE impu = ?", identity.impu)
        if old is not None and (old[0], old[1]) == (irs, sp):
            position = old[2]  # replaced in its service profile: it keeps its place
        else:
            (last,) = self._one("SELECT MAX(position) FROM public WHERE irs = ?", irs)
            position = 1 if last is None else last + 1
        _changes(
            self._db,
            "INSERT INTO public (" + _PUBLIC_COLUMNS + ", position) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (impu) DO UPDATE SET irs = excluded.irs, sp = excluded.sp, "
            "xml = excluded.xml, barred = excluded.barred, wildcard = excluded.wildcard, "
            "position = excluded.position",
            (
                identity.impu,
                irs,
                sp,
                identity.xml,
                int(identity.barred),
                identity.wildcard,
                position,
            ),
        )

    def get_public(self, impu: str) -> Optional[PublicIdentity]:
        row = self._one("SELECT " + _PUBLIC_COLUMNS + " FROM public WHERE impu = ?", impu)
        return None if row is None else _public(row)

    def delete_public(self, impu: str) -> None:
        if not self._change("DELETE FROM public WHERE impu = ?", impu):
            raise NotFoundError("No public identity " + impu)

    def publics_of_irs(self, irs: str) -> list[PublicIdentity]:
        rows = self._all(
            "SELECT " + _PUBLIC_COLUMNS + " FROM public WHERE irs = ? ORDER BY position", irs
        )
        if not rows:
            self._require_irs(irs)
        return [_public(row) for row in rows]

    def publics_of_private(self, impi: str) -> list[str]:
        rows = self._all(
            "SELECT DISTINCT public.impu FROM irs_private"
            " JOIN public ON public.irs = irs_private.irs"
            " WHERE irs_private.impi = ? ORDER BY public.impu",
            impi,
        )
        if not rows:
            self._require_private(impi)
        return [impu for (impu,) in rows]

    def wildcard_publics(self) -> list[PublicIdentity]:
        rows = self._all(
            "SELECT " + _PUBLIC_COLUMNS + " FROM public WHERE wildcard IS NOT NULL ORDER BY impu"
        )
        return [_public(row) for row in rows]

    def list_publics(self, after: str = "", limit: int = 1000) -> list[PublicIdentity]:
        if limit <= 0:
            return []  # SQLite reads a negative LIMIT as "no limit"
        rows = self._all(
            "SELECT " + _PUBLIC_COLUMNS + " FROM public WHERE impu > ? ORDER BY impu LIMIT ?",
            after,
            limit,
        )
        return [_public(row) for row in rows]

    # -- registration state

    def get_registration(self, irs: str) -> RegistrationState:
        row = self._one("SELECT state, scscf, impi, updated FROM registration WHERE irs = ?", irs)
        if row is None:
            return RegistrationState()
        state, scscf, impi, updated = row
        return RegistrationState(
            state=RegState(state), scscf=scscf, impi=impi, updated=float(updated)
        )

    def set_registration(self, irs: str, state: RegistrationState) -> None:
        self._require_irs(irs)
        _changes(
            self._db,
            "INSERT INTO registration (irs, state, scscf, impi, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (irs) DO UPDATE SET state = excluded.state, scscf = excluded.scscf, "
            "impi = excluded.impi, updated = excluded.updated",
            (irs, state.state.value, state.scscf, state.impi, state.updated),
        )


def _connect(path: str, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path`` (creating it), set it up and bring its schema to SCHEMA_VERSION."""
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        _rows(db, "PRAGMA foreign_keys = ON")
        _rows(db, "PRAGMA journal_mode = WAL")
        _rows(db, "PRAGMA synchronous = " + synchronous)
        _rows(db, "BEGIN IMMEDIATE")
        try:
            _migrate(db, path)
            _rows(db, "COMMIT")
        finally:
            if db.in_transaction:
                _rows(db, "ROLLBACK")
    except BaseException:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection, path: str) -> None:
    tables = {name for (name,) in _rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in tables:
        if tables:
            raise StoreUnavailableError(
                "SQLite database " + path + " is not a clearwater subscriber store"
            )
        for statement in _SCHEMA:
            _rows(db, statement)
        _rows(db, "INSERT INTO schema_version (id, version) VALUES (1, ?)", (SCHEMA_VERSION,))
        return
    rows = _rows(db, "SELECT version FROM schema_version WHERE id = 1")
    version = rows[0][0] if rows else -1
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise StoreUnavailableError(
            "SQLite database "
            + path
            + " has schema version "
            + str(version)
            + "; this clearwater reads 1 to "
            + str(SCHEMA_VERSION)
        )
    while version < SCHEMA_VERSION:
        for statement in _MIGRATIONS[version]:
            _rows(db, statement)
        version += 1
    _rows(db, "UPDATE schema_version SET version = ? WHERE id = 1", (version,))


@implementer(ISubscriberStore)
class SqliteSubscriberStore:
    """:class:`~clearwater.stores.interfaces.ISubscriberStore` on a SQLite file.

    Make one with :meth:`open`. Several stores (or processes) may share a file: each write is a
    ``BEGIN IMMEDIATE`` transaction, and one that cannot get the file's lock within
    ``busy_timeout`` seconds fails with StoreUnavailableError, as does any other SQLite error
    (disk full, read-only file, corruption). At most ``max_pending`` operations may wait for the
    worker thread; more fail at once with StoreUnavailableError.

    Bulk loads (``clearwater-provision create-users --csv``) should group writes with
    :meth:`transaction`, which is outside the interface: with it 10,000 users take about a
    second, where one transaction per write costs a thread hop and an fsync each.
    """

    def __init__(
        self,
        reactor: ISqliteReactor,
        path: Union[str, os.PathLike[str]],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        max_pending: int = 10_000,
    ) -> None:
        """Start the worker thread and queue the opening of ``path`` on it. Operations may be
        called at once: they run after the opening, and fail with its error if it failed.
        :meth:`open` is the usual way in: it waits for the file to be ready."""
        if synchronous not in _SYNCHRONOUS:
            raise ValueError("synchronous must be NORMAL or FULL, not " + repr(synchronous))
        self.path = os.fspath(path)
        self._reactor = reactor
        self._max_pending = max_pending
        self._pending = 0
        self._closing: Optional[Deferred[None]] = None
        self._close_failure: Optional[Failure] = None
        self._db: Optional[sqlite3.Connection] = None
        self._error: Optional[str] = None  # why the file could not be opened
        self._worker = _Worker(reactor, "sqlite " + self.path)
        self._trigger: Optional[Any] = reactor.addSystemEventTrigger(
            "before", "shutdown", self._on_shutdown
        )
        self._submit(self._open, synchronous, busy_timeout).addErrback(lambda _: None)

    @classmethod
    def open(
        cls,
        reactor: ISqliteReactor,
        path: Union[str, os.PathLike[str]],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        max_pending: int = 10_000,
    ) -> Deferred[SqliteSubscriberStore]:
        """A store on the SQLite file ``path``, created with its schema if new, migrated if
        older. Fails with StoreUnavailableError naming the path if the file cannot be opened
        or is not a subscriber store (its worker thread is then stopped)."""

        async def opening() -> SqliteSubscriberStore:
            store = cls(
                reactor,
                path,
                synchronous=synchronous,
                busy_timeout=busy_timeout,
                max_pending=max_pending,
            )
            try:
                await store._run(False, lambda tx: None)
            except BaseException:
                await store.close()
                raise
            return store

        return Deferred.fromCoroutine(opening())

    # -- the worker thread

    def _submit(self, work: Callable[..., _T], *args: object) -> Deferred[_T]:
        if self._closing is not None:
            return fail(StoreUnavailableError("SQLite store " + self.path + " is closed"))
        if self._pending >= self._max_pending:
            return fail(
                StoreUnavailableError("SQLite store " + self.path + ": too many operations waiting")
            )
        self._pending += 1
        d = self._worker.submit(work, *args)
        d.addBoth(self._finished)
        return d

    def _finished(self, result: _T) -> _T:
        self._pending -= 1
        return result

    def _open(self, synchronous: str, busy_timeout: float) -> None:
        try:
            self._db = _connect(self.path, synchronous, busy_timeout)
        except StoreUnavailableError as e:
            self._error = str(e)
            raise
        except (sqlite3.Error, OSError) as e:
            self._error = "Cannot open SQLite database " + self.path + ": " + str(e)
            raise StoreUnavailableError(self._error) from None

    def _in_transaction(self, write: bool, work: Callable[[SqliteTransaction], _T]) -> _T:
        db = self._db
        if db is None:
            raise StoreUnavailableError(self._error or "SQLite store " + self.path + " is closed")
        try:
            if not write:
                # A read is one SELECT (and, when it found nothing, one more to tell an empty
                # set from an unknown key), each atomic on its own: no BEGIN/COMMIT around it.
                return work(SqliteTransaction(db))
            _rows(db, "BEGIN IMMEDIATE")
            try:
                result = work(SqliteTransaction(db))
                _rows(db, "COMMIT")
            finally:
                if db.in_transaction:  # work or COMMIT failed
                    _rows(db, "ROLLBACK")
        except sqlite3.Error as e:
            raise StoreUnavailableError("SQLite database " + self.path + ": " + str(e)) from None
        return result

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _run(self, write: bool, work: Callable[[SqliteTransaction], _T]) -> Deferred[_T]:
        return self._submit(self._in_transaction, write, work)

    def transaction(self, work: Callable[[SqliteTransaction], _T]) -> Deferred[_T]:
        """Run ``work(tx)`` on the worker thread inside one write transaction and fire with its
        result once committed; if it raises, nothing it did is kept and the Deferred fails with
        that error. ``work`` must not touch the reactor or this store's other methods.

        Not part of ISubscriberStore: the bulk path, e.g. one transaction per 1,000 users
        of a CSV import, instead of one commit per write."""
        return self._run(True, work)

    # -- ISubscriberStore

    def put_private(self, identity: PrivateIdentity) -> Deferred[None]:
        return self._run(True, lambda tx: tx.put_private(identity))

    def get_private(self, impi: str) -> Deferred[Optional[PrivateIdentity]]:
        return self._run(False, lambda tx: tx.get_private(impi))

    def delete_private(self, impi: str) -> Deferred[None]:
        return self._run(True, lambda tx: tx.delete_private(impi))

    def advance_sqn(self, impi: str, expected: int, sqn: int) -> Deferred[bool]:
        return self._run(True, lambda tx: tx.advance_sqn(impi, expected, sqn))

    def create_irs(self, irs: Optional[str] = None) -> Deferred[str]:
        return self._run(True, lambda tx: tx.create_irs(irs))

    def delete_irs(self, irs: str) -> Deferred[None]:
        return self._run(True, lambda tx: tx.delete_irs(irs))

    def associate(self, irs: str, impi: str) -> Deferred[None]:
        return self._run(True, lambda tx: tx.associate(irs, impi))

    def dissociate(self, irs: str, impi: str) -> Deferred[None]:
        return self._run(True, lambda tx: tx.dissociate(irs, impi))

    def irs_of_private(self, impi: str) -> Deferred[list[str]]:
        return self._run(False, lambda tx: tx.irs_of_private(impi))

    def privates_of_irs(self, irs: str) -> Deferred[list[str]]:
        return self._run(False, lambda tx: tx.privates_of_irs(irs))

    def create_service_profile(self, irs: str, ifcs_xml: str = "") -> Deferred[ServiceProfile]:
        return self._run(True, lambda tx: tx.create_service_profile(irs, ifcs_xml))

    def get_service_profile(self, irs: str, sp: str) -> Deferred[Optional[ServiceProfile]]:
        return self._run(False, lambda tx: tx.get_service_profile(irs, sp))

    def set_ifcs(self, irs: str, sp: str, ifcs_xml: str) -> Deferred[None]:
        return self._run(True, lambda tx: tx.set_ifcs(irs, sp, ifcs_xml))

    def delete_service_profile(self, irs: str, sp: str) -> Deferred[None]:
        return self._run(True, lambda tx: tx.delete_service_profile(irs, sp))

    def service_profiles_of_irs(self, irs: str) -> Deferred[list[ServiceProfile]]:
        return self._run(False, lambda tx: tx.service_profiles_of_irs(irs))

    def put_public(self, identity: PublicIdentity) -> Deferred[None]:
        return self._run(True, lambda tx: tx.put_public(identity))

    def get_public(self, impu: str) -> Deferred[Optional[PublicIdentity]]:
        return self._run(False, lambda tx: tx.get_public(impu))

    def delete_public(self, impu: str) -> Deferred[None]:
        return self._run(True, lambda tx: tx.delete_public(impu))

    def publics_of_irs(self, irs: str) -> Deferred[list[PublicIdentity]]:
        return self._run(False, lambda tx: tx.publics_of_irs(irs))

    def publics_of_private(self, impi: str) -> Deferred[list[str]]:
        return self._run(False, lambda tx: tx.publics_of_private(impi))

    def wildcard_publics(self) -> Deferred[list[PublicIdentity]]:
        return self._run(False, lambda tx: tx.wildcard_publics())

    def list_publics(self, after: str = "", limit: int = 1000) -> Deferred[list[PublicIdentity]]:
        return self._run(False, lambda tx: tx.list_publics(after, limit))

    def get_registration(self, irs: str) -> Deferred[RegistrationState]:
        return self._run(False, lambda tx: tx.get_registration(irs))

    def set_registration(self, irs: str, state: RegistrationState) -> Deferred[None]:
        return self._run(True, lambda tx: tx.set_registration(irs, state))

    def close(self) -> Deferred[None]:
        """Let queued operations finish, close the file and stop the worker thread. Later
        operations fail with StoreUnavailableError; closing again waits for the same end."""
        if self._closing is None:
            if self._trigger is not None:
                self._reactor.removeSystemEventTrigger(self._trigger)
                self._trigger = None
            closing = self._worker.submit(self._close_db)
            self._closing = closing.addBoth(self._stop_worker)
        done: Deferred[None] = Deferred()
        self._closing.addCallback(self._tell_closed, done)
        return done

    def _stop_worker(self, result: object) -> None:
        self._worker.stop()  # the worker is idle now: this join does not wait
        if isinstance(result, Failure):
            self._close_failure = result

    def _tell_closed(self, _: None, done: Deferred[None]) -> None:
        if self._close_failure is None:
            done.callback(None)
        else:
            done.errback(self._close_failure)

    def _on_shutdown(self) -> Deferred[None]:
        self._trigger = None  # fired: removing it now would warn
        return self.close()
