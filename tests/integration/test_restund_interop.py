"""``twistd -n restund`` against real STUN/TURN clients (issue #7): coturn's
``turnutils_stunclient`` and ``turnutils_uclient`` (UDP, TCP, TLS; static users and the TURN REST
shared secret; client to client with ``-y``), and aioice's TURN client (a second, independent
implementation: RFC 8656 allocation, permission, channel and relayed data)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import socket
import time
from pathlib import Path
from typing import Any, Optional, Union

import attrs
import pytest
from typing_extensions import override

from clearwater.stun import Attr, AttributeKey, Class, Message, Method, parse_message
from tests.integration._peers import (
    HOST,
    PEER_TIMEOUT,
    STARTUP_TIMEOUT,
    TWISTD,
    CertFiles,
    Processes,
    describe,
    ephemeral_ports,
    free_port,
    interop_certs,
    processes,
    require_binary,
    run,
    sprout_env,
    wait_until,
)

__all__ = ["interop_certs", "processes"]  # fixtures

REALM = "example.com"
USER, PASSWORD = "alice", "secret"
SECRET = "s3cr3t"


@attrs.frozen
class Restund:
    port: int
    tls_port: int
    http_port: int


def relay_window() -> int:
    """The first of 100 relay ports, above the kernel's ephemeral range when there is room
    (else in the range :func:`free_port` picks from): never a port another peer of the test was
    given. A port taken anyway only fails one of restund's bind attempts."""
    high = ephemeral_ports()[1]
    first = (high // 100 + 1) * 100
    if first < 65400:
        return random.randrange(first, 65400, 100)
    return free_port() // 100 * 100


def start_restund(
    processes: Processes, *options: Union[str, Path], tls: Optional[CertFiles] = None
) -> Restund:
    """``twistd -n restund`` on 127.0.0.1 (UDP and TCP on one port; TLS with ``tls``), relays
    on 127.0.0.1 in a range of its own, realm example.com, and ``options``; waits for its log
    to say it listens."""
    port, http_port = free_port(), free_port()
    tls_port = free_port() if tls is not None else 0
    relay = relay_window()
    args: list[Union[str, Path]] = [*TWISTD, "-n", "--pidfile=", "restund"]
    args += ["--listen", HOST + ":" + str(port), "--relay-ip", HOST, "--realm", REALM]
    args += ["--min-port", str(relay), "--max-port", str(relay + 99)]
    args += ["--http-port", str(http_port)]
    if tls is not None:
        args += ["--tls-listen", HOST + ":" + str(tls_port)]
        args += ["--tls-cert", tls.certificate, "--tls-key", tls.key]
    args += list(options)
    process = processes.start("restund", args, env=sprout_env())
    kinds = ["udp", "tcp"] + (["tls"] if tls is not None else [])
    wanted = [
        "restund listening on " + kind + " " + HOST + ":" + str(tls_port if kind == "tls" else port)
        for kind in kinds
    ]
    wait_until(
        lambda: process.poll() is not None or all(w in processes.log("restund") for w in wanted),
        STARTUP_TIMEOUT,
        "restund to listen",
    )
    if process.poll() is not None:
        pytest.fail("restund exited at start-up:\n" + processes.log("restund"))
    return Restund(port, tls_port, http_port)


def uclient(server: Restund, *flags: str, port: Optional[int] = None) -> str:
    """turnutils_uclient with ``flags`` against ``server``; its output. Fails the test unless
    it exits 0 having lost no packet."""
    binary = require_binary("turnutils_uclient", "coturn")
    result = run([binary, "-p", str(port or server.port), *flags, HOST], timeout=PEER_TIMEOUT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, describe(result)
    assert re.search(r"Total lost packets 0 \(", output), describe(result)
    return output


STATIC = ("--user", USER + ":" + PASSWORD, "--allow-loopback-peers")
CLIENT_TO_CLIENT = ("-y", "-n", "5", "-m", "2", "-l", "170", "-u", USER, "-w", PASSWORD)


def test_stunclient_gets_its_reflexive_address(processes: Processes) -> None:
    server = start_restund(processes, *STATIC)
    binary = require_binary("turnutils_stunclient", "coturn")
    result = run([binary, "-p", str(server.port), HOST])
    assert result.returncode == 0, describe(result)
    found = re.search(r"UDP reflexive addr: ([0-9.]+):([0-9]+)", result.stdout + result.stderr)
    assert found is not None, describe(result)
    assert found.group(1) == HOST and 0 < int(found.group(2)) < 65536


def test_uclient_relays_over_udp_and_tcp_with_a_static_user(processes: Processes) -> None:
    server = start_restund(processes, *STATIC)
    uclient(server, *CLIENT_TO_CLIENT)
    uclient(server, "-t", *CLIENT_TO_CLIENT)


def test_uclient_relays_over_tls(processes: Processes, interop_certs: CertFiles) -> None:
    # A 50 ms pace (-z): at the default 20 ms a client-to-client run over TLS sends its first
    # packets before the other side's permission is in place, and loses them with coturn's
    # own turnserver too (measured: 3-4 of 20).
    server = start_restund(processes, *STATIC, tls=interop_certs)
    uclient(server, "-t", "-S", "-z", "50", *CLIENT_TO_CLIENT, port=server.tls_port)


def test_uclient_tcp_relay_rfc_6062(processes: Processes) -> None:
    server = start_restund(processes, *STATIC)
    uclient(server, "-T", "-n", "5", "-m", "2", "-l", "170", "-u", USER, "-w", PASSWORD)


def test_uclient_with_the_rest_api_shared_secret(processes: Processes) -> None:
    server = start_restund(processes, "--static-auth-secret", SECRET, "--allow-loopback-peers")
    flags = ("-y", "-n", "5", "-m", "2", "-l", "170", "-u", USER, "-W", SECRET)
    uclient(server, *flags)
    uclient(server, "-t", *flags)


def test_a_wrong_password_cannot_allocate(processes: Processes) -> None:
    server = start_restund(processes, *STATIC)
    binary = require_binary("turnutils_uclient", "coturn")
    result = run([binary, "-p", str(server.port), "-y", "-n", "1", "-u", USER, "-w", "wrong", HOST])
    assert result.returncode != 0, describe(result)
    assert "Cannot complete Allocation" in result.stdout + result.stderr, describe(result)
    answer = allocate(server.port, USER, "wrong")
    assert answer.message_class is Class.ERROR
    assert answer.get(Attr.ERROR_CODE).code == 401  # type: ignore[union-attr]


def test_loopback_peers_are_refused_by_default(processes: Processes) -> None:
    server = start_restund(processes, "--user", USER + ":" + PASSWORD)
    binary = require_binary("turnutils_uclient", "coturn")
    result = run([binary, "-p", str(server.port), *CLIENT_TO_CLIENT, HOST])
    assert result.returncode != 0 or not re.search(r"Total lost packets 0 \(", result.stdout)
    sock, key, allocation = allocated(server.port, USER, PASSWORD)
    try:
        answer = request(
            sock,
            server.port,
            Message(
                Method.CREATE_PERMISSION,
                Class.REQUEST,
                new_id(),
                [(Attr.XOR_PEER_ADDRESS, (HOST, 5000)), *auth(allocation)],
            ),
            key,
        )
        assert answer.get(Attr.ERROR_CODE).code == 403  # type: ignore[union-attr]
    finally:
        sock.close()


def test_a_user_over_quota_gets_486(processes: Processes) -> None:
    server = start_restund(processes, *STATIC, "--user-quota", "2")
    sockets = []
    try:
        for _ in range(2):
            sock, _, _ = allocated(server.port, USER, PASSWORD)
            sockets.append(sock)
        answer = allocate(server.port, USER, PASSWORD)
        assert answer.message_class is Class.ERROR
        assert answer.get(Attr.ERROR_CODE).code == 486  # type: ignore[union-attr]
    finally:
        for sock in sockets:
            sock.close()


def test_aioice_allocates_and_relays(processes: Processes) -> None:
    turn = pytest.importorskip("aioice.turn")
    server = start_restund(processes, *STATIC)

    async def exchange() -> bytes:
        loop = asyncio.get_running_loop()
        received: asyncio.Future[bytes] = loop.create_future()

        class Peer(asyncio.DatagramProtocol):
            @override
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if not received.done():
                    received.set_result(data)

        peer_transport, _ = await loop.create_datagram_endpoint(Peer, local_addr=(HOST, 0))
        peer = peer_transport.get_extra_info("sockname")
        transport, _ = await turn.create_turn_endpoint(
            asyncio.DatagramProtocol,
            server_addr=(HOST, server.port),
            username=USER,
            password=PASSWORD,
            lifetime=600,
            channel_refresh_time=300,
        )
        try:
            relayed = transport.get_extra_info("related_address")
            assert relayed[0] == HOST
            transport.sendto(b"through the relay", peer)
            data = await asyncio.wait_for(received, 10)
        finally:
            transport.close()
            peer_transport.close()
        return data

    assert asyncio.run(asyncio.wait_for(exchange(), PEER_TIMEOUT)) == b"through the relay"


# ---- a minimal STUN client over our codec (for the error answers the tools only print)


def new_id() -> bytes:
    return hashlib.sha256(str(time.monotonic_ns()).encode()).digest()[:12]


def request(
    sock: socket.socket, port: int, message: Message, key: Optional[bytes] = None
) -> Message:
    sock.sendto(message.encode(key) if key else bytes(message), (HOST, port))
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        answer = parse_message(sock.recv(65536))
        if answer.transaction_id == message.transaction_id:
            return answer


@attrs.frozen
class _Auth:
    username: str
    realm: str
    nonce: str


def auth(state: _Auth) -> list[tuple[AttributeKey, Any]]:
    return [(Attr.USERNAME, state.username), (Attr.REALM, state.realm), (Attr.NONCE, state.nonce)]


def _allocate(sock: socket.socket, port: int, user: str, password: str) -> tuple[Message, _Auth]:
    transport: list[tuple[AttributeKey, Any]] = [(Attr.REQUESTED_TRANSPORT, 17)]
    first = request(sock, port, Message(Method.ALLOCATE, Class.REQUEST, new_id(), transport))
    assert first.get(Attr.ERROR_CODE).code == 401  # type: ignore[union-attr]
    state = _Auth(user, str(first.get(Attr.REALM)), str(first.get(Attr.NONCE)))
    key = hashlib.md5((user + ":" + state.realm + ":" + password).encode()).digest()
    second = Message(Method.ALLOCATE, Class.REQUEST, new_id(), [*transport, *auth(state)])
    return request(sock, port, second, key), state


def allocate(port: int, user: str, password: str) -> Message:
    """One Allocate with long-term credentials from a new UDP socket: the answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return _allocate(sock, port, user, password)[0]


def allocated(port: int, user: str, password: str) -> tuple[socket.socket, bytes, _Auth]:
    """A UDP socket holding an allocation, with its key and credentials."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    answer, state = _allocate(sock, port, user, password)
    assert answer.message_class is Class.SUCCESS, answer
    key = hashlib.md5((user + ":" + state.realm + ":" + password).encode()).digest()
    return sock, key, state


def test_uclient_with_a_subscribers_sip_credentials_from_homestead(
    processes: Processes, tmp_path: Path
) -> None:
    # Clearwater's scheme: username = the IMPI, key = the digest HA1 homestead holds for it.
    from tests.integration.test_homestead_service import provision, start_homestead

    http_port, prov_port = free_port(), free_port()
    start_homestead(processes, "sqlite:" + str(tmp_path / "hs.db"), http_port, prov_port)
    created = provision("--server", "http://" + HOST + ":" + str(prov_port), "create-user",
                        "sip:bob@example.com", "--password", "pw")  # fmt: skip
    assert created.returncode == 0, describe(created)
    homestead = HOST + ":" + str(http_port)
    server = start_restund(processes, "--hs-hostname", homestead, "--allow-loopback-peers")
    impi = "bob@example.com"
    uclient(server, "-y", "-n", "5", "-m", "2", "-l", "170", "-u", impi, "-w", "pw")
    answer = allocate(server.port, impi, "not-pw")
    assert answer.get(Attr.ERROR_CODE).code == 401  # type: ignore[union-attr]
    answer = allocate(server.port, "nobody@example.com", "pw")
    assert answer.get(Attr.ERROR_CODE).code == 401  # type: ignore[union-attr]
