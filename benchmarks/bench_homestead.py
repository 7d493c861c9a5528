"""Homestead throughput: ``GET /impi/<impi>/digest`` requests per second over keep-alive HTTP/1.1.

    python -m benchmarks.bench_homestead [--seconds S] [--warmup S] [--connections K[,K...]]
        [--users N] [--public-id] [--server-python PATH] [--server-cpu C] [--client-cpu C]

(from the repository root; ``.venv-pypy/bin/python -m benchmarks.bench_homestead`` runs both
homestead and the client on PyPy; ``--server-python`` picks homestead's interpreter alone).

``twistd -n homestead --store sqlite:TMP/hs.db`` (HSS-less mode, spec §6.1) is started on free
loopback ports, pinned to ``--server-cpu`` (default 0) with ``taskset``; ``--users`` subscribers
(default 1,000: ``sip:benchNNNN@example.com``, password digest credentials) are provisioned
through homestead-prov's API with :mod:`clearwater.tools.provision` (``create-users --csv``),
and one digest is checked against MD5(impi:realm:password). Then this process, pinned to
``--client-cpu`` (default 1), opens K keep-alive HTTP/1.1 connections (asyncio, one request in
flight per connection: no pipelining) and sends ``GET /impi/benchNNNN@example.com/digest``
round the users (with ``?public_id=sip:...``, which adds the association check, under
``--public-id``) for a ``--warmup`` period, not counted (default 5 s, 20 s when homestead runs
on PyPy: its JIT needs that long), and then ``--seconds``; for each K of ``--connections``
(default 1 and 8), on fresh connections.

Reported per K: the requests answered 200 in the window per second, homestead's CPU seconds
(utime+stime of its process, all threads, from /proc) and the client's per 1,000 requests,
latency p50/p99/max (request written to response complete), non-200 answers, and the bytes
homestead wrote to its log per request (twisted.web's access log goes there). The load average is
printed at the start and the end: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Optional
from urllib.parse import quote

import attrs
from typing_extensions import override

from benchmarks.bench_stores import allowed_cpus, load_average, own_cpu, pin, process_times
from clearwater.tools import provision
from tests.integration._peers import HOST, TWISTD, free_port, port_is_bound, sprout_env

HOME = "example.com"
#: Seconds homestead may take to listen (PyPy starts slowly).
STARTUP_TIMEOUT = 60.0
#: Seconds an answer may take before the run is abandoned.
REQUEST_TIMEOUT = 10.0
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)


def user(i: int) -> tuple[str, str, str]:
    """User ``i``'s IMPU, IMPI and password."""
    return f"sip:bench{i:04d}@{HOME}", f"bench{i:04d}@{HOME}", f"pw-{i:04d}-secret"


# --------------------------------------------------------------------------- homestead


def start_homestead(
    python: str, cpu: Optional[int], directory: Path
) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    """``twistd -n homestead`` on free ports with its SQLite file in ``directory``: the
    process, the homestead API port, the provisioning port and its log file."""
    http_port, prov_port = free_port(), free_port()
    args = [python, *TWISTD[1:], "-n", "--pidfile=", "homestead", "--home-domain", HOME]
    args += ["--local-ip", HOST, "--http-port", str(http_port), "--prov-port", str(prov_port)]
    args += ["--store", "sqlite:" + str(directory / "hs.db")]
    if cpu is not None:
        args = ["taskset", "-c", str(cpu), *args]
    log_path = directory / "homestead.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env=sprout_env(),
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not (port_is_bound("tcp", http_port) and port_is_bound("tcp", prov_port)):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError("homestead did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.05)
    return process, http_port, prov_port, log_path


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def provision_users(prov_port: int, count: int, directory: Path) -> float:
    """Provision ``count`` users with ``clearwater-provision create-users``; the seconds taken."""
    csv = directory / "users.csv"
    # impu,,password: the IMPI defaults to the IMPU without "sip:"
    csv.write_text("".join(f"{impu},,{pw}\n" for impu, _, pw in map(user, range(count))))
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    code = provision.main(
        ["--server", f"http://{HOST}:{prov_port}", "create-users", "--csv", str(csv)],
        stdout=out,
        stderr=err,
    )
    if code != 0:
        raise RuntimeError("provisioning failed:\n" + out.getvalue() + err.getvalue())
    return time.monotonic() - started


def check_digest(http_port: int) -> None:
    _, impi, password = user(0)
    url = f"http://{HOST}:{http_port}/impi/{quote(impi, safe='@')}/digest"
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as response:
        body = json.loads(response.read())
    expected = hashlib.md5(f"{impi}:{HOME}:{password}".encode()).hexdigest()
    if body != {"digest_ha1": expected}:
        raise RuntimeError(f"unexpected digest answer {body!r} (expected {expected})")


# --------------------------------------------------------------------------- the client


@attrs.define
class Window:
    """What the connections count while it is the current one."""

    latencies: list[float] = attrs.Factory(list)
    errors: int = 0
    closed: int = 0


class Driver:
    """The state shared by the connections: the requests, the current window, stop."""

    def __init__(self, requests: Sequence[bytes]) -> None:
        self.requests = requests
        self.window = Window()
        self.stopping = False


class Connection(asyncio.Protocol):
    """One keep-alive connection: a request, its whole answer, the next request."""

    def __init__(self, driver: Driver, first: int, done: asyncio.Future[None]) -> None:
        self.driver = driver
        self.next = first
        self.done = done
        self.buffer = b""
        self.sent_at = 0.0
        self.transport: Optional[asyncio.Transport] = None

    @override
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        requests = self.driver.requests
        request = requests[self.next % len(requests)]
        self.next += 1
        self.sent_at = time.perf_counter()
        self.transport.write(request)

    @override
    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[: end + 2]
        match = _CONTENT_LENGTH.search(head)
        length = int(match.group(1)) if match else 0
        if len(self.buffer) < end + 4 + length:
            return
        received = time.perf_counter()
        window = self.driver.window
        status = head[9:12]
        if status == b"200":
            window.latencies.append(received - self.sent_at)
        else:
            window.errors += 1
        self.buffer = self.buffer[end + 4 + length :]
        if self.buffer:
            self.fail("data after the answer (no request was pipelined)")
        elif _CLOSE.search(head):
            window.closed += 1
            self.fail("homestead closed the keep-alive connection")
        elif self.driver.stopping:
            assert self.transport is not None
            self.transport.close()
            if not self.done.done():
                self.done.set_result(None)
        else:
            self.send()

    def fail(self, why: str) -> None:
        if self.transport is not None:
            self.transport.abort()
        if not self.done.done():
            self.done.set_exception(RuntimeError(why))

    @override
    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.done.done():
            self.done.set_exception(RuntimeError("connection lost: " + repr(exc)))


@attrs.frozen
class Result:
    connections: int
    seconds: float
    ok: int
    errors: int
    server_cpu: float
    server_sys: float  # the kernel's part of server_cpu
    client_cpu: float
    latencies: tuple[float, ...]  # sorted, seconds
    log_bytes: int

    @property
    def per_s(self) -> float:
        return self.ok / self.seconds

    def per_1k(self, cpu: float) -> float:
        return cpu / self.ok * 1000 if self.ok else float("nan")

    def percentile_ms(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        return self.latencies[min(len(self.latencies) - 1, int(p * len(self.latencies)))] * 1000

    def line(self, python: str) -> str:
        return (
            f"server=homestead python={python} connections={self.connections}"
            f" seconds={self.seconds:.2f} ok={self.ok} errors={self.errors}"
            f" requests_per_s={self.per_s:.0f}"
            f" server_cpu_s_per_1k={self.per_1k(self.server_cpu):.3f}"
            f" server_sys_s_per_1k={self.per_1k(self.server_sys):.3f}"
            f" client_cpu_s_per_1k={self.per_1k(self.client_cpu):.3f}"
            f" p50_ms={self.percentile_ms(0.5):.2f} p99_ms={self.percentile_ms(0.99):.2f}"
            f" max_ms={self.latencies[-1] * 1000 if self.latencies else float('nan'):.2f}"
            f" log_bytes_per_req={self.log_bytes / max(self.ok, 1):.0f}"
        )


async def drive(
    port: int,
    connections: int,
    warmup: float,
    seconds: float,
    requests: Sequence[bytes],
    server_pid: int,
    log_path: Path,
) -> Result:
    loop = asyncio.get_running_loop()
    driver = Driver(requests)
    finished: list[asyncio.Future[None]] = []
    step = max(1, len(requests) // connections)
    for i in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        finished.append(done)
        await loop.create_connection(partial(Connection, driver, i * step, done), HOST, port)
    await asyncio.sleep(warmup)
    driver.window = window = Window()
    cpu0, server0, log0 = own_cpu(), process_times(server_pid), log_path.stat().st_size
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    driver.window = Window()  # answers from here on are not counted
    t1 = time.perf_counter()
    cpu1, server1, log1 = own_cpu(), process_times(server_pid), log_path.stat().st_size
    driver.stopping = True
    await asyncio.wait_for(asyncio.gather(*finished), REQUEST_TIMEOUT)
    return Result(
        connections=connections,
        seconds=t1 - t0,
        ok=len(window.latencies),
        errors=window.errors,
        server_cpu=sum(server1) - sum(server0),
        server_sys=server1[1] - server0[1],
        client_cpu=sum(cpu1) - sum(cpu0),
        latencies=tuple(sorted(window.latencies)),
        log_bytes=log1 - log0,
    )


def make_requests(port: int, users: int, public_id: bool) -> list[bytes]:
    out = []
    for i in range(users):
        impu, impi, _ = user(i)
        path = "/impi/" + quote(impi, safe="@") + "/digest"
        if public_id:
            path += "?public_id=" + quote(impu, safe="")
        out.append(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
    return out


# --------------------------------------------------------------------------- main


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected K[,K...]: " + text) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers: " + text)
    return values


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument(
        "--warmup", type=float, default=None, help="warm-up before each run (5 s; PyPy 20 s)"
    )
    parser.add_argument("--connections", type=_int_list, default=[1, 8],
                        help="keep-alive connections at once (default 1,8)")  # fmt: skip
    parser.add_argument("--users", type=int, default=1000, help="users provisioned")
    parser.add_argument("--public-id", action="store_true",
                        help="add ?public_id=<impu> (the association check)")  # fmt: skip
    parser.add_argument("--server-python", default=sys.executable,
                        help="homestead's interpreter (default: this one)")  # fmt: skip
    parser.add_argument("--server-cpu", type=int, default=0, help="core of homestead")
    parser.add_argument("--client-cpu", type=int, default=1, help="core of this process")
    args = parser.parse_args(argv)
    if args.users < 1:
        parser.error("--users must be at least 1")
    return args


def server_version(python: str) -> str:
    code = (
        "import platform; print(platform.python_implementation() + '-' + platform.python_version())"
    )
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    client = platform.python_implementation() + "-" + platform.python_version()
    server = server_version(args.server_python)
    if args.warmup is None:
        args.warmup = 20.0 if server.startswith("PyPy") else 5.0
    cpus = allowed_cpus()
    pinned = args.client_cpu in cpus and args.server_cpu in cpus
    print(
        f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} homestead={server} client={client}"
        f" users={args.users} public_id={args.public_id} seconds={args.seconds}"
        f" warmup={args.warmup} connections={','.join(map(str, args.connections))}"
        f" server_cpu={args.server_cpu if pinned else 'any'}"
        f" client_cpu={args.client_cpu if pinned else 'any'}"
        f" load_average={load_average()}",
        flush=True,
    )
    if pinned:
        pin(args.client_cpu)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-homestead-") as tmp:
        directory = Path(tmp)
        process, http_port, prov_port, log_path = start_homestead(
            args.server_python, args.server_cpu if pinned else None, directory
        )
        try:
            took = provision_users(prov_port, args.users, directory)
            print(f"# provisioned {args.users} users in {took:.1f} s", flush=True)
            check_digest(http_port)
            requests = make_requests(http_port, args.users, args.public_id)
            for k in args.connections:
                result = asyncio.run(
                    drive(http_port, k, args.warmup, args.seconds, requests, process.pid, log_path)
                )
                print(result.line(server), flush=True)
                results.append(result)
            if process.poll() is not None:
                raise RuntimeError("homestead exited:\n" + log_path.read_text()[-3000:])
        finally:
            stop(process)
    print("# load average at the end: " + load_average())
    print()
    print("| connections | requests/s | homestead CPU s/1k | client CPU s/1k | p50 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r.connections} | {r.per_s:,.0f} | {r.per_1k(r.server_cpu):.3f}"
            f" | {r.per_1k(r.client_cpu):.3f} | {r.percentile_ms(0.5):.2f}"
            f" | {r.percentile_ms(0.99):.2f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
