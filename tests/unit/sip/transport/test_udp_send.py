"""The UDP shim's direct send path (``_UdpProtocol.send``) on real loopback sockets."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from typing import cast

import pytest

from clearwater.sip.transport import TransportLayer
from clearwater.sip.transport._layer import _UdpProtocol


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    yield sender, receiver
    sender.close()
    receiver.close()


def _protocol(sock: socket.socket) -> _UdpProtocol:
    protocol = _UdpProtocol(cast(TransportLayer, None))  # sending never touches the layer
    protocol._socket = sock
    return protocol


def test_datagram_reaches_the_peer(sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    _protocol(sender).send(b"OPTIONS sip:x SIP/2.0\r\n\r\n", receiver.getsockname())
    assert receiver.recv(100) == b"OPTIONS sip:x SIP/2.0\r\n\r\n"


def test_oversized_datagram_raises(sockets: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = sockets
    with pytest.raises(OSError):
        _protocol(sender).send(b"x" * 70000, receiver.getsockname())


class _FlakySocket:
    """Raises the given errors from its first sendto calls, then records what it sends."""

    def __init__(self, *errors: OSError) -> None:
        self.errors = list(errors)
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((data, addr))
        return len(data)


def _flaky(*errors: OSError) -> tuple[_UdpProtocol, _FlakySocket]:
    sock = _FlakySocket(*errors)
    return _protocol(cast(socket.socket, sock)), sock


def test_interrupted_send_is_retried() -> None:
    protocol, sock = _flaky(InterruptedError(errno.EINTR, "interrupted"))
    protocol.send(b"data", ("127.0.0.1", 5060))
    assert sock.sent == [(b"data", ("127.0.0.1", 5060))]


@pytest.mark.parametrize(
    "error",
    [
        BlockingIOError(errno.EAGAIN, "full"),
        OSError(errno.ENOBUFS, "no buffers"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    ],
)
def test_full_buffer_or_stale_icmp_error_drops_the_datagram(error: OSError) -> None:
    protocol, sock = _flaky(error)
    protocol.send(b"data", ("127.0.0.1", 5060))  # nothing raised: UDP is lossy
    assert sock.sent == []


def test_other_socket_errors_are_raised() -> None:
    protocol, _ = _flaky(OSError(errno.ENETUNREACH, "unreachable"))
    with pytest.raises(OSError, match="unreachable"):
        protocol.send(b"data", ("192.0.2.1", 5060))
