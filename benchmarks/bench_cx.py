"""Cx throughput: request/answer pairs per second between homestead's Cx client and the scripted
HSS over loopback TCP, one core each (issue #8).

    python -m benchmarks.bench_cx [--seconds S] [--warmup S] [--windows W[,W...]] [--users N]
        [--hss-python PATH] [--hss-cpu C] [--client-cpu C]

(from the repository root; ``.venv-pypy/bin/python -m benchmarks.bench_cx`` runs both sides on
PyPy; ``--hss-python`` picks the HSS's interpreter alone).

``python -m clearwater.testing.hss --store memory:`` is started on free loopback ports, pinned to
``--hss-cpu`` (default 0), and ``--users`` subscribers (default 1,000: ``benchNNNN@example.com``
with digest credentials) are provisioned through its homestead-prov API with
:mod:`clearwater.tools.provision`. This process, pinned to ``--client-cpu`` (default 1), runs a
:class:`~clearwater.diameter.node.DiameterNode` connected to it and asks
:meth:`~clearwater.homestead.hss.HssHomestead.get_av` for digest vectors (homestead's
``GET /impi/<impi>/av/digest`` without the HTTP: one MAR/MAA per call, built, sent, parsed and
turned into the answer homestead returns) round the users, keeping W calls outstanding, for a
``--warmup`` period not counted (default 5 s; 20 s when a side runs PyPy) and then
``--seconds``; for each W of ``--windows`` (default 1, 16 and 128).

Reported per W: the MAR/MAA pairs completed per second, the HSS's and the client's CPU
seconds per 1,000 pairs (utime+stime from /proc), latency p50/p99 and failures. The load
average is printed at the start and the end: the machine is shared.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred

from benchmarks.bench_stores import allowed_cpus, load_average, own_cpu, pin, process_times
from clearwater.diameter import APP_CX, VENDOR_3GPP, Application, DiameterNode, PeerConfig
from clearwater.diameter.apps.cx import CX
from clearwater.homestead import AvScheme, DigestAv, HssHomestead
from clearwater.stores.memory import MemoryCasStore
from clearwater.tools import provision
from tests.integration._peers import HOST, free_port, port_is_bound, sprout_env

HOME = "example.com"
HSS = "hss.example.com"
STARTUP_TIMEOUT = 60.0


class _NoSprout:
    """The benchmark never gets an RTR or PPR."""

    def delete_registrations(self, registrations: Any, send_notifications: bool) -> Deferred[None]:
        raise AssertionError("no RTR expected")

    def put_registration(self, default_impu: str, user_data_xml: str) -> Deferred[None]:
        raise AssertionError("no PPR expected")


def _start_hss(
    python: str, cpu: int, port: int, prov_port: int, log: Path
) -> subprocess.Popen[bytes]:
    args = ["taskset", "-c", str(cpu), python, "-m", "clearwater.testing.hss"]
    args += ["--identity", HSS, "--realm", HOME, "--listen", f"{HOST}:{port}"]
    args += ["--store", "memory:", "--home-domain", HOME, "--prov-port", str(prov_port)]
    process = subprocess.Popen(
        args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=sprout_env()
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not (port_is_bound("tcp", port) and port_is_bound("tcp", prov_port)):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the HSS did not start:\n" + log.read_text())
        time.sleep(0.1)
    return process


def _provision(prov_port: int, users: int, directory: Path) -> None:
    csv = directory / "users.csv"
    lines = (f"sip:bench{n:04}@{HOME},bench{n:04}@{HOME},pw{n:04}\n" for n in range(users))
    csv.write_text("".join(lines))
    code = provision.main(
        ["--server", f"http://{HOST}:{prov_port}", "create-users", "--csv", str(csv)]
    )
    if code != 0:
        raise SystemExit("provisioning failed")


class _Run:
    """W outstanding get_av calls for a while; counts and times the completed ones."""

    def __init__(self, homestead: HssHomestead, users: int, window: int, hss_pid: int) -> None:
        self.homestead = homestead
        self.hss_pid = hss_pid
        self.users = users
        self.window = window
        self.next = 0
        self.done = 0
        self.failed = 0
        self.latencies: list[float] = []
        self.counting = False
        self.stop_at = 0.0
        self.finished: Deferred[None] = Deferred()
        self.outstanding = 0

    def start(self, warmup: float, seconds: float) -> Deferred[None]:
        now = time.monotonic()
        reactor.callLater(warmup, self._count)
        self.stop_at = now + warmup + seconds
        for _ in range(self.window):
            self._one()
        return self.finished

    def _count(self) -> None:
        self.counting = True
        self.done = self.failed = 0
        self.latencies = []
        self.cpu_start = own_cpu()
        self.hss_start = process_times(self.hss_pid)
        self.wall_start = time.monotonic()

    def _one(self) -> None:
        if time.monotonic() >= self.stop_at:
            if self.outstanding == 0 and not self.finished.called:
                self.cpu_end = own_cpu()
                self.hss_end = process_times(self.hss_pid)
                self.wall = time.monotonic() - self.wall_start
                self.finished.callback(None)
            return
        n = self.next % self.users
        self.next += 1
        impi = f"bench{n:04}@{HOME}"
        started = time.monotonic()
        self.outstanding += 1
        d = self.homestead.get_av(impi, f"sip:{impi}", AvScheme.DIGEST)
        d.addCallbacks(self._answered, self._failed, (started,))
        d.addBoth(self._next)

    def _answered(self, av: Any, started: float) -> None:
        if self.counting:
            if isinstance(av, DigestAv):
                self.done += 1
                self.latencies.append(time.monotonic() - started)
            else:
                self.failed += 1

    def _failed(self, failure: Any) -> None:
        if self.counting:
            self.failed += 1

    def _next(self, _: Any) -> None:
        self.outstanding -= 1
        self._one()


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


@defer.inlineCallbacks
def _bench(args: argparse.Namespace, hss_pid: int, port: int) -> Any:
    node = DiameterNode(
        reactor,  # type: ignore[arg-type]
        "homestead." + HOME,
        HOME,
        [Application(APP_CX, VENDOR_3GPP, dictionary=CX)],
        peers=[PeerConfig(HSS, HOST, port)],
        watchdog_interval=30,
        request_timeout=5,
    )
    node.startService()
    yield node.wait_usable(HSS, 10)
    homestead = HssHomestead(
        node,
        MemoryCasStore(reactor),
        _NoSprout(),
        hss_realm=HOME,
        hss_host=None,
        server_name="sip:scscf.sprout." + HOME,
        home_domain=HOME,
        timeout=5,
    )
    for window in args.windows:
        run = _Run(homestead, args.users, window, hss_pid)
        yield run.start(args.warmup, args.seconds)
        done = max(run.done, 1)
        hss_cpu = sum(run.hss_end) - sum(run.hss_start)
        client_cpu = sum(run.cpu_end) - sum(run.cpu_start)
        print(
            f"W={window:4d}  {run.done / run.wall:8.0f} pairs/s  "
            f"HSS {1000 * hss_cpu / done:6.3f} CPU-s/1k  "
            f"client {1000 * client_cpu / done:6.3f} CPU-s/1k  "
            f"p50 {1000 * _percentile(run.latencies, 0.5):6.2f} ms  "
            f"p99 {1000 * _percentile(run.latencies, 0.99):6.2f} ms  failed {run.failed}",
            flush=True,
        )
    yield node.stopService()


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_cx", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=None)
    parser.add_argument(
        "--windows", type=lambda s: [int(w) for w in s.split(",")], default=[1, 16, 128]
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--hss-python", default=sys.executable)
    parser.add_argument("--hss-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args(list(argv) or None)
    pypy = platform.python_implementation() == "PyPy" or "pypy" in args.hss_python
    if args.warmup is None:
        args.warmup = 20.0 if pypy else 5.0
    if {args.hss_cpu, args.client_cpu} - allowed_cpus():
        raise SystemExit("--hss-cpu/--client-cpu: not cores this process may use")
    print(
        f"load average {load_average()}; client {platform.python_implementation()}, "
        f"HSS {args.hss_python}",
        flush=True,
    )
    directory = Path(tempfile.mkdtemp(prefix="bench-cx-"))
    port, prov_port = free_port(), free_port()
    hss = _start_hss(args.hss_python, args.hss_cpu, port, prov_port, directory / "hss.log")
    try:
        _provision(prov_port, args.users, directory)
        pin(args.client_cpu)
        failure: list[Any] = []
        d = _bench(args, hss.pid, port)
        d.addErrback(failure.append)
        d.addBoth(lambda _: reactor.stop())
        reactor.run()
        if failure:
            failure[0].printTraceback()
            return 1
    finally:
        hss.terminate()
        hss.wait(timeout=30)
    print(f"load average {load_average()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
