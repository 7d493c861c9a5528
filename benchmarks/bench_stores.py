"""Registration store throughput: AoR read-modify-writes per second, memory, Redis and memcached.

    python -m benchmarks.bench_stores [--seconds S] [--warmup S] [--concurrency N[,N...]]
        [--contention N] [--backends memory,redis,memcached] [--client-cpu C] [--server-cpu C]

(from the repository root; ``.venv-pypy/bin/python -m benchmarks.bench_stores`` for PyPy).

One operation is what sprout's registrar does to an AoR on a REGISTER (spec §3.4): a
:class:`~clearwater.stores.typed.RegistrationStore` ``get_aor`` of a record with three bindings
(outbound contacts with ``+sip.instance`` and ``reg-id``, a Path header, the private identity;
two associated URIs; 1,688 bytes of JSON in Clearwater's layout), one binding's CSeq and expiry
bumped, and ``set_aor`` with the CAS token read; a :class:`DataContentionError` re-reads and
tries again (counted as a retry). N loops run at once on the real reactor (``task.react``), each
on its own AoR, for each N of ``--concurrency`` (default 1 and 16); then ``--contention`` loops
(default the largest N) all on ONE AoR, to show CAS contention. Each run is preceded by a
``--warmup`` run of the same shape, not counted: by default 3 s on CPython and 15 s on PyPy,
whose JIT needs that long (with 3 s, PyPy's memcached figure at 16 loops came out ~20 % low).

The back ends: :class:`~clearwater.stores.memory.MemoryCasStore` (in process: no server);
:class:`~clearwater.stores.redis.RedisCasStore` against a ``redis-server`` (no persistence)
and :class:`~clearwater.stores.memcached.MemcachedCasStore` against a ``memcached``, each
started by this benchmark on a free loopback port (``tests/integration/_servers.py``) pinned to
``--server-cpu`` (default 1) with ``taskset``, and stopped at the end; this process runs on
``--client-cpu`` (default 0). CPU seconds are utime+stime from the kernel: this process
(``os.times``) and the server's (``/proc/PID/stat``, all its threads), per 1,000 operations.

A memory store answers with fired Deferreds, so a loop never waits: each yields to the reactor
every few milliseconds of work (``SLICE``) so that the others get their turn; a get and its set
then always run back to back, and the one-AoR run shows no contention.

Output: one ``key=value`` line per run, then a table. The load average is printed at the start
and the end: the machine is shared, and a busy neighbour shows there first.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

import attrs
from twisted.internet import defer, task
from twisted.internet.defer import Deferred

from clearwater.stores.interfaces import DataContentionError, ICasStore
from clearwater.stores.records import AoR, AssociatedUri, Binding
from clearwater.stores.typed import RegistrationStore

BACKENDS = ("memory", "redis", "memcached")
#: Seconds of synchronous work after which a loop over a memory store yields to the reactor.
SLICE = 0.005
#: Lifetime of the bindings written (seconds from now), as a REGISTER with Expires: 300.
EXPIRES = 300
HOME = "example.com"


# --------------------------------------------------------------------------- the record


def make_aor(number: str, now: float) -> AoR:
    """An AoR as sprout keeps one for a subscriber with three registered devices (RFC 5626
    outbound contacts behind a P-CSCF that added a Path)."""
    bindings = []
    for i in range(3):
        instance = f"<urn:uuid:00000000-0000-1000-8000-{0xA95A0E128 + int(number) * 4 + i:012X}>"
        binding = Binding(
            uri=f"sip:{number}@192.0.2.{10 + i}:{5060 + i};transport=tcp;ob",
            cid=f"{number}-{i}-a84b4c76e66710@pc33.{HOME}",
            cseq=1 + i,
            expires=int(now) + EXPIRES,
            priority=0,
            params=(
                ("+sip.instance", '"' + instance + '"'),
                ("reg-id", "1"),
                ("+sip.ice", ""),
                ("expires", str(EXPIRES)),
            ),
            path_headers=(f"<sip:bXkgcGF0aA@bono-{i}.{HOME}:5058;transport=tcp;lr;ob>",),
            private_id=f"{number}@{HOME}",
        )
        bindings.append((instance + ":1", binding))
    return AoR(
        bindings=tuple(bindings),
        associated_uris=(
            AssociatedUri(f"sip:{number}@{HOME}"),
            AssociatedUri(f"tel:+1{number}"),
        ),
        notify_cseq=2,
        timer_id=f"{int(number):016x}7a3bcd2e0001",
        scscf_uri=f"sip:scscf.sprout.{HOME}:5054;transport=tcp",
    )


def bump(aor: AoR, which: int, now: float) -> AoR:
    """``aor`` with binding ``which`` (mod 3) re-registered: CSeq + 1, expiry renewed."""
    index = which % len(aor.bindings)
    key, binding = aor.bindings[index]
    bindings = list(aor.bindings)
    bindings[index] = (
        key,
        attrs.evolve(binding, cseq=binding.cseq + 1, expires=int(now) + EXPIRES),
    )
    return attrs.evolve(aor, bindings=tuple(bindings))


# --------------------------------------------------------------------------- CPU accounting


def own_cpu() -> tuple[float, float]:
    """User and system CPU seconds of this process (all its threads)."""
    times = os.times()
    return times.user, times.system


def process_times(pid: Optional[int]) -> tuple[float, float]:
    """User and system CPU seconds of process ``pid`` (all its threads), from /proc; zeros
    for None."""
    if pid is None:
        return 0.0, 0.0
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def process_cpu(pid: Optional[int]) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads); 0 for None."""
    return sum(process_times(pid))


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def allowed_cpus() -> set[int]:
    """The cores this process may run on (``Cpus_allowed_list``: PyPy has no
    ``os.sched_getaffinity``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                cpus: set[int] = set()
                for part in line.split(":", 1)[1].strip().split(","):
                    first, _, last = part.partition("-")
                    cpus.update(range(int(first), int(last or first) + 1))
                return cpus
    return set(range(os.cpu_count() or 1))


def pin(cpu: int) -> None:
    """Run this process (its threads, and those it starts later) on ``cpu``: with
    ``os.sched_setaffinity`` where there is one, else ``taskset`` (PyPy)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    else:
        subprocess.run(
            ["taskset", "-a", "-p", "-c", str(cpu), str(os.getpid())],
            check=True,
            stdout=subprocess.DEVNULL,
        )


# --------------------------------------------------------------------------- the runs


@attrs.define
class Counts:
    ops: int = 0
    retries: int = 0
    stopping: bool = False


@attrs.frozen
class Result:
    backend: str
    loops: int
    aors: int
    seconds: float
    ops: int
    retries: int
    client_cpu: float
    client_sys: float  # the kernel's part of client_cpu
    server_cpu: float
    has_server: bool

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds

    def per_1k(self, cpu: float) -> float:
        return cpu / self.ops * 1000 if self.ops else float("nan")

    def line(self, python: str, record_bytes: int) -> str:
        server = f"{self.per_1k(self.server_cpu):.3f}" if self.has_server else "NA"
        return (
            f"backend={self.backend} python={python} loops={self.loops} aors={self.aors}"
            f" seconds={self.seconds:.2f} ops={self.ops} ops_per_s={self.ops_per_s:.0f}"
            f" retries={self.retries} retries_per_op={self.retries / max(self.ops, 1):.3f}"
            f" client_cpu_s_per_1k={self.per_1k(self.client_cpu):.3f}"
            f" client_sys_s_per_1k={self.per_1k(self.client_sys):.3f}"
            f" server_cpu_s_per_1k={server} record_bytes={record_bytes}"
        )


async def rmw_loop(
    reactor: Any, store: RegistrationStore, aor_id: str, counts: Counts, clock: Callable[[], float]
) -> None:
    """Read-modify-write ``aor_id`` until ``counts.stopping``."""
    mark = clock()
    n = 0
    while not counts.stopping:
        while True:
            aor, cas = await store.get_aor(aor_id)
            if aor is None:
                raise RuntimeError("AoR " + aor_id + " vanished")
            now = reactor.seconds()
            try:
                await store.set_aor(aor_id, bump(aor, n, now), cas, now)
                break
            except DataContentionError:
                counts.retries += 1
        counts.ops += 1
        n += 1
        if clock() - mark > SLICE:  # a store that never makes us wait: let the others run
            await task.deferLater(reactor, 0, lambda: None)
            mark = clock()


async def one_run(
    reactor: Any,
    backend: str,
    store: RegistrationStore,
    aor_ids: Sequence[str],
    loops: int,
    seconds: float,
    server_pid: Optional[int],
) -> Result:
    """``loops`` loops over ``aor_ids`` (loop i on ``aor_ids[i % len]``) for ``seconds``."""
    counts = Counts()
    clock = time.perf_counter
    cpu0, server0, t0 = own_cpu(), process_cpu(server_pid), clock()
    reactor.callLater(seconds, setattr, counts, "stopping", True)
    running = [
        Deferred.fromCoroutine(rmw_loop(reactor, store, aor_ids[i % len(aor_ids)], counts, clock))
        for i in range(loops)
    ]
    await defer.gatherResults(running, consumeErrors=True)
    t1, cpu1, server1 = clock(), own_cpu(), process_cpu(server_pid)
    return Result(
        backend=backend,
        loops=loops,
        aors=len(aor_ids),
        seconds=t1 - t0,
        ops=counts.ops,
        retries=counts.retries,
        client_cpu=sum(cpu1) - sum(cpu0),
        client_sys=cpu1[1] - cpu0[1],
        server_cpu=server1 - server0,
        has_server=server_pid is not None,
    )


_batch = [0]


async def prepare(reactor: Any, store: RegistrationStore, count: int) -> list[str]:
    """``count`` fresh AoRs written to the store; their ids."""
    _batch[0] += 1
    ids = []
    for i in range(count):
        number = f"65{_batch[0]:04d}{i:04d}"
        aor_id = f"sip:{number}@{HOME}"
        now = reactor.seconds()
        await store.set_aor(aor_id, make_aor(number, now), 0, now)
        ids.append(aor_id)
    return ids


async def bench_backend(
    reactor: Any,
    backend: str,
    cas_store: ICasStore,
    server_pid: Optional[int],
    args: argparse.Namespace,
    python: str,
    record_bytes: int,
) -> list[Result]:
    store = RegistrationStore(cas_store)
    shapes = [(n, n) for n in args.concurrency]
    if args.contention:
        shapes.append((args.contention, 1))
    results = []
    for loops, aors in shapes:
        if args.warmup > 0:
            ids = await prepare(reactor, store, aors)
            await one_run(reactor, backend, store, ids, loops, args.warmup, server_pid)
        ids = await prepare(reactor, store, aors)
        result = await one_run(reactor, backend, store, ids, loops, args.seconds, server_pid)
        print(result.line(python, record_bytes), flush=True)
        results.append(result)
    await cas_store.close()
    return results


def make_store(reactor: Any, backend: str, address: Optional[tuple[str, int]]) -> ICasStore:
    if backend == "memory":
        from clearwater.stores.memory import MemoryCasStore

        return MemoryCasStore(reactor)
    assert address is not None
    host, port = address
    if backend == "redis":
        from clearwater.stores.redis import RedisCasStore, connect

        return RedisCasStore(connect(reactor, host, port))
    from clearwater.stores.memcached import MemcachedCasStore

    return MemcachedCasStore(reactor, host, port)


async def bench(
    reactor: Any, args: argparse.Namespace, servers: dict[str, Any], python: str
) -> None:
    from clearwater.stores import records

    record_bytes = len(records.dumps(make_aor("6505550000", time.time()).to_json()))
    results: list[Result] = []
    for backend in args.backends:
        server = servers.get(backend)
        address = None if server is None else server.address
        pid = None if server is None else server.pid
        store = make_store(reactor, backend, address)
        results += await bench_backend(reactor, backend, store, pid, args, python, record_bytes)
    print("# load average at the end: " + load_average())
    print()
    print("| back end | loops | AoRs | RMW/s | retries/op | client CPU s/1k | server CPU s/1k |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        server_cpu = f"{r.per_1k(r.server_cpu):.3f}" if r.has_server else "-"
        print(
            f"| {r.backend} | {r.loops} | {r.aors} | {r.ops_per_s:,.0f}"
            f" | {r.retries / max(r.ops, 1):.3f} | {r.per_1k(r.client_cpu):.3f} | {server_cpu} |"
        )


def start_servers(backends: Sequence[str], cpu: Optional[int], directory: Path) -> dict[str, Any]:
    """The redis-server and memcached the back ends need, pinned to ``cpu`` with taskset."""
    from tests.integration import _servers

    def pinned(make: Callable[[int], list[str]]) -> Callable[[int], list[str]]:
        if cpu is None:
            return make
        return lambda port: ["taskset", "-c", str(cpu), *make(port)]

    started: dict[str, Any] = {}
    for backend in backends:
        if backend == "redis":
            binary = _servers.find_server_binary("redis-server", "redis-server")
            server = _servers.ServerProcess(
                "redis-server",
                pinned(_servers.redis_args(binary, directory / "redis", persistent=False)),
                directory / "redis",
                probe=b"PING\r\n",
                expect=b"+PONG",
            )
        elif backend == "memcached":
            binary = _servers.find_server_binary("memcached", "memcached")
            server = _servers.ServerProcess(
                "memcached",
                pinned(_servers.memcached_args(binary)),
                directory / "memcached",
                probe=b"version\r\n",
                expect=b"VERSION",
            )
        else:
            continue
        server.start()
        started[backend] = server
    return started


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected N[,N...]: " + text) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers: " + text)
    return values


def _backends(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError("back ends are " + ",".join(BACKENDS) + ": " + text)
    return names


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument(
        "--warmup", type=float, default=None, help="warm-up before each run (3 s; PyPy 15 s)"
    )
    parser.add_argument(
        "--concurrency",
        type=_int_list,
        default=[1, 16],
        help="loops at once, each on its own AoR (default 1,16)",
    )
    parser.add_argument(
        "--contention",
        type=int,
        default=None,
        help="loops on ONE AoR (default: the largest --concurrency; 0: none)",
    )
    parser.add_argument("--backends", type=_backends, default=list(BACKENDS))
    parser.add_argument("--client-cpu", type=int, default=0, help="core of this process")
    parser.add_argument("--server-cpu", type=int, default=1, help="core of the servers")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 15.0 if platform.python_implementation() == "PyPy" else 3.0
    if args.contention is None:
        args.contention = max(args.concurrency)
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    python = platform.python_implementation() + "-" + platform.python_version()
    cpus = allowed_cpus()
    pinned = args.client_cpu in cpus and args.server_cpu in cpus
    print(
        f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} {python} backends={','.join(args.backends)}"
        f" seconds={args.seconds} warmup={args.warmup}"
        f" concurrency={','.join(map(str, args.concurrency))} contention={args.contention}"
        f" client_cpu={args.client_cpu if pinned else 'any'}"
        f" server_cpu={args.server_cpu if pinned else 'any'}"
        f" load_average={load_average()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-stores-") as directory:
        servers = start_servers(args.backends, args.server_cpu if pinned else None, Path(directory))
        try:
            if pinned:
                pin(args.client_cpu)
            task.react(
                lambda reactor: Deferred.fromCoroutine(bench(reactor, args, servers, python))
            )
        finally:
            for server in servers.values():
                server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
