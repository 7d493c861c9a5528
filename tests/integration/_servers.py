"""Real store servers for the integration tests: ``redis-server`` and ``memcached``.

Each server runs as a child process on a free loopback port, with its files (and log) in a
directory the caller gives. Start-up waits, with a deadline, until the server answers a probe
(Redis ``PING`` → ``+PONG``; memcached ``version`` → ``VERSION``), not merely until the port
accepts connections. :meth:`ServerProcess.stop` / :meth:`~ServerProcess.kill` /
:meth:`~ServerProcess.restart` keep the port and the data directory, so a client reconnects to
the same address and a persistent Redis finds its data again.

Cleanup: every started server is in a registry that an ``atexit`` hook empties, and on Linux
the child gets ``PR_SET_PDEATHSIG`` so that it dies with the test process even when pytest is
killed. Tests should still stop servers themselves (``addCleanup(server.stop)`` in a trial
TestCase, or the :func:`redis_server` / :func:`memcached_server` fixtures).

A missing binary skips the test (``scripts/test`` installs the Debian packages).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Callable, Optional

import pytest
from typing_extensions import override

from tests.integration._peers import HOST, free_port

__all__ = [
    "STARTUP_TIMEOUT",
    "ServerProcess",
    "find_server_binary",
    "memcached_server",
    "redis_server",
    "start_memcached",
    "start_redis",
    "stop_all_servers",
]

#: Seconds a server may take to answer its first probe (a Redis with a big AOF loads it first).
STARTUP_TIMEOUT = 20.0
#: Seconds a server may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0

_PR_SET_PDEATHSIG = 1


def find_server_binary(name: str, package: str) -> str:
    """The path of a server program; skips the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        for directory in ("/usr/bin", "/usr/sbin", "/usr/local/bin"):
            candidate = Path(directory) / name
            if candidate.exists():
                return str(candidate)
        pytest.skip(
            name + " is not installed (Debian package " + package + "; scripts/test installs it)"
        )
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """``preexec_fn``: ask Linux to SIGTERM the child when the test process goes away."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class ServerProcess:
    """One server child process on ``HOST:port`` with its files in ``directory``.

    ``make_args(port)`` gives the command line; ``probe`` is sent on a fresh connection and
    the server is ready once the answer starts with ``expect``.
    """

    def __init__(
        self,
        name: str,
        make_args: Callable[[int], Sequence[str]],
        directory: Path,
        probe: bytes,
        expect: bytes,
        port: Optional[int] = None,
    ) -> None:
        self.name = name
        self.host = HOST
        self.directory = directory
        self.port = free_port() if port is None else port
        self._make_args = make_args
        self._probe = probe
        self._expect = expect
        self._process: Optional[subprocess.Popen[bytes]] = None
        self._log: Optional[IO[bytes]] = None
        directory.mkdir(parents=True, exist_ok=True)

    # -- state

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> Optional[int]:
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> Path:
        return self.directory / (self.name + ".log")

    def log(self) -> str:
        """What the server wrote to stdout/stderr (and its log file) so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- life cycle

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Start the server (if it is not running) and wait until it answers its probe."""
        if self.alive:
            return
        self._close_log()
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            list(self._make_args(self.port)),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )
        _running.add(self)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None:
                code = self._process.returncode
                self._close_log()
                _running.discard(self)
                raise RuntimeError(
                    self.name + " exited (" + str(code) + ") at start-up:\n" + self.log()[-3000:]
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    self.name
                    + " did not answer on port "
                    + str(self.port)
                    + " within "
                    + str(timeout)
                    + " s:\n"
                    + self.log()[-3000:]
                )
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGTERM (a persistent Redis flushes its AOF), then SIGKILL after a deadline; wait
        for the exit. No error when the server is not running."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the server dies as in a crash."""
        self._end(signal.SIGKILL)

    def restart(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Stop and start again on the same port with the same data directory."""
        self.stop()
        self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections open but answers nothing (a hang).

        Returns once every thread of the server is stopped: a signal takes effect when the
        kernel next schedules each thread, which on a loaded machine can be after the test
        has sent its next requests."""
        if self._process is None or not self.alive:
            return
        self._process.send_signal(signal.SIGSTOP)
        tasks = "/proc/" + str(self._process.pid) + "/task"
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            try:
                states = [_task_state(os.path.join(tasks, task)) for task in os.listdir(tasks)]
            except OSError:
                return  # gone
            if all(state in ("T", "t") for state in states):
                return
            time.sleep(0.001)
        raise RuntimeError(f"server {self.address} did not stop on SIGSTOP")

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._process is not None and self.alive:
            self._process.send_signal(signal.SIGCONT)

    def _end(self, how: signal.Signals) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(how)
            if how != signal.SIGKILL:
                process.send_signal(signal.SIGCONT)  # a paused server handles SIGTERM now
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        self._close_log()
        _running.discard(self)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(self.address, timeout=0.5) as connection:
                connection.sendall(self._probe)
                answer = b""
                while len(answer) < len(self._expect):
                    chunk = connection.recv(256)
                    if not chunk:
                        return False
                    answer += chunk
                return answer.startswith(self._expect)
        except OSError:
            return False

    @override
    def __repr__(self) -> str:
        state = "running" if self.alive else "stopped"
        return "<" + self.name + " " + self.host + ":" + str(self.port) + " " + state + ">"


#: Servers started and not yet stopped, for the atexit safety net.
_running: set[ServerProcess] = set()


def stop_all_servers() -> None:
    """Kill every server still running (the atexit hook; tests stop theirs themselves)."""
    for server in list(_running):
        server.kill()


atexit.register(stop_all_servers)


def _start_with_retry(make: Callable[[], ServerProcess]) -> ServerProcess:
    """Start a server on a free port, trying a new port if another process took it first."""
    error: Optional[RuntimeError] = None
    for _ in range(3):
        server = make()
        try:
            server.start()
        except RuntimeError as e:
            error = e
            continue
        return server
    assert error is not None
    raise error


# ---- Redis


def redis_args(binary: str, directory: Path, persistent: bool) -> Callable[[int], list[str]]:
    """The ``redis-server`` command line for a port: loopback only, files in ``directory``,
    with an append-only file fsynced on every write when ``persistent`` (no RDB snapshots)."""

    def make(port: int) -> list[str]:
        args = [binary, "--port", str(port), "--bind", HOST, "--daemonize", "no"]
        args += ["--dir", str(directory), "--save", "", "--logfile", ""]
        args += ["--protected-mode", "no"]
        if persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        return args

    return make


def start_redis(directory: Path, *, persistent: bool = False) -> ServerProcess:
    """A running ``redis-server`` on a free loopback port with its files in ``directory``
    (skips the test when redis-server is not installed)."""
    binary = find_server_binary("redis-server", "redis-server")
    return _start_with_retry(
        lambda: ServerProcess(
            "redis-server",
            redis_args(binary, directory, persistent),
            directory,
            probe=b"PING\r\n",
            expect=b"+PONG",
        )
    )


# ---- memcached


def memcached_args(binary: str) -> Callable[[int], list[str]]:
    """The ``memcached`` command line for a port: TCP on loopback only, no UDP."""

    def make(port: int) -> list[str]:
        args = [binary, "-p", str(port), "-l", HOST, "-U", "0", "-m", "64"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args += ["-u", "root"]  # memcached refuses to run as root without -u
        return args

    return make


def start_memcached(directory: Path) -> ServerProcess:
    """A running ``memcached`` on a free loopback port, logging into ``directory`` (skips the
    test when memcached is not installed). memcached keeps nothing across a restart."""
    binary = find_server_binary("memcached", "memcached")
    return _start_with_retry(
        lambda: ServerProcess(
            "memcached",
            memcached_args(binary),
            directory,
            probe=b"version\r\n",
            expect=b"VERSION",
        )
    )


# ---- pytest fixtures (plain test functions; trial TestCases call start_* with addCleanup)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A persistent ``redis-server`` for one test, always stopped afterwards."""
    server = start_redis(tmp_path / "redis", persistent=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def memcached_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A ``memcached`` for one test, always stopped afterwards."""
    server = start_memcached(tmp_path / "memcached")
    try:
        yield server
    finally:
        server.stop()


def _task_state(task: str) -> str:
    """The state letter of a thread (``/proc/PID/task/TID/stat``, after the command name)."""
    with open(os.path.join(task, "stat")) as f:
        return f.read().rpartition(")")[2].split()[0]
