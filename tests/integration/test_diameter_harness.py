"""The Diameter interop harness itself (tests/integration/_diameter_peers.py): tshark and pycrate
decode hand-made RFC 6733 messages correctly and flag broken ones, and freeDiameterd peers start,
exchange CER/CEA (RFC 6733 §5.3), reach STATE_OPEN (§5.6), notice a stalled peer through the
watchdog (RFC 3539 §3.4) and stop.

The messages here are built with :mod:`struct` only, independently of ``clearwater.diameter``.
"""

from __future__ import annotations

import socket
import struct
from typing import Optional

import pytest

from tests.integration._diameter_peers import (
    ConnectPeer,
    DecodedDiameter,
    FreeDiameterd,
    PycrateDecodeError,
    TsharkError,
    message_pattern,
    pycrate_decode,
    tshark_decode,
)
from tests.integration._peers import HOST, Processes, free_port, processes

__all__ = ["processes"]  # fixtures

VENDOR_3GPP = 10415
CX = 16777216


def avp(code: int, data: bytes, vendor: Optional[int] = None, mandatory: bool = True) -> bytes:
    """One AVP (RFC 6733 §4.1), padded to 32 bits."""
    flags = (0x80 if vendor is not None else 0) | (0x40 if mandatory else 0)
    header = struct.pack("!I", code)
    length = 8 + (4 if vendor is not None else 0) + len(data)
    header += struct.pack("!I", flags << 24 | length)
    if vendor is not None:
        header += struct.pack("!I", vendor)
    return header + data + b"\x00" * (-len(data) % 4)


def u32(value: int) -> bytes:
    return struct.pack("!I", value)


def message(
    code: int,
    avps: list[bytes],
    *,
    flags: int = 0x80,
    application: int = 0,
    hop_by_hop: int = 0x1234,
    end_to_end: int = 0x5678,
) -> bytes:
    """A message (RFC 6733 §3): version 1, Message Length, flags, command, ids, AVPs."""
    body = b"".join(avps)
    return (
        struct.pack("!I", 1 << 24 | (20 + len(body)))
        + struct.pack("!I", flags << 24 | code)
        + struct.pack("!III", application, hop_by_hop, end_to_end)
        + body
    )


def cer(origin_host: str = "homestead.localdomain", hop_by_hop: int = 0x1234) -> bytes:
    """A CER advertising Cx (Auth-Application-Id 16777216 for vendor 10415) and Rf's
    accounting application (Acct-Application-Id 3)."""
    return message(
        257,
        [
            avp(264, origin_host.encode()),  # Origin-Host
            avp(296, b"localdomain"),  # Origin-Realm
            avp(257, b"\x00\x01" + socket.inet_aton(HOST)),  # Host-IP-Address
            avp(266, u32(0)),  # Vendor-Id
            avp(269, b"clearwater", mandatory=False),  # Product-Name
            avp(265, u32(VENDOR_3GPP)),  # Supported-Vendor-Id
            avp(260, avp(266, u32(VENDOR_3GPP)) + avp(258, u32(CX))),  # Vendor-Specific-App-Id
            avp(259, u32(3)),  # Acct-Application-Id
        ],
        hop_by_hop=hop_by_hop,
    )


def cx_answer() -> bytes:
    """A proxiable Cx-style answer with 3GPP vendor AVPs, one of them Grouped."""
    return message(
        300,
        [
            avp(263, b"homestead.localdomain;1;2"),  # Session-Id
            avp(268, u32(2001)),  # Result-Code
            avp(601, b"sip:alice@example.com", vendor=VENDOR_3GPP),  # Public-Identity
            avp(
                628,  # Supported-Features
                avp(629, u32(1), vendor=VENDOR_3GPP) + avp(630, u32(0x0F), vendor=VENDOR_3GPP),
                vendor=VENDOR_3GPP,
            ),
        ],
        flags=0x40,
        application=CX,
        hop_by_hop=0xFFFFFFFE,
        end_to_end=0x80000001,
    )


def with_avp_length(data: bytes, offset: int, length: int) -> bytes:
    """``data`` with the AVP Length of the AVP at ``offset`` replaced (flags kept)."""
    broken = bytearray(data)
    struct.pack_into("!I", broken, offset + 4, broken[offset + 4] << 24 | length)
    return bytes(broken)


def check_cer_header(decoded: DecodedDiameter) -> None:
    assert decoded.command_code == 257
    assert (decoded.request, decoded.proxiable, decoded.error, decoded.retransmit) == (
        True,
        False,
        False,
        False,
    )
    assert decoded.application_id == 0
    assert (decoded.hop_by_hop, decoded.end_to_end) == (0x1234, 0x5678)
    assert decoded.length == len(cer())


# ---- tshark


def test_tshark_decodes_a_cer() -> None:
    (decoded,) = tshark_decode([cer()])
    check_cer_header(decoded)
    assert [(a.code, a.vendor, a.name) for a in decoded.avps] == [
        (264, None, "Origin-Host"),
        (296, None, "Origin-Realm"),
        (257, None, "Host-IP-Address"),
        (266, None, "Vendor-Id"),
        (269, None, "Product-Name"),
        (265, None, "Supported-Vendor-Id"),
        (260, None, "Vendor-Specific-Application-Id"),
        (259, None, "Acct-Application-Id"),
    ]
    assert decoded.avp("Origin-Host").value == "homestead.localdomain"
    assert decoded.avp("Origin-Realm").value == "localdomain"
    assert decoded.avp("Host-IP-Address").value == "00:01:7f:00:00:01"
    assert decoded.avp("Product-Name").value == "clearwater"
    assert decoded.avp("Acct-Application-Id").value == "3"
    application = decoded.avp("Vendor-Specific-Application-Id")
    assert [(a.code, a.name, a.value) for a in application.children] == [
        (266, "Vendor-Id", "10415"),
        (258, "Auth-Application-Id", "16777216"),
    ]
    assert decoded.expert == ()
    assert decoded.extra_layers == ()


def test_tshark_keeps_messages_apart_and_reads_vendor_avps() -> None:
    first, second = tshark_decode([cer(), cx_answer()], port=3869)
    check_cer_header(first)
    assert second.command_code == 300
    assert (second.request, second.proxiable) == (False, True)
    assert second.application_id == CX
    assert (second.hop_by_hop, second.end_to_end) == (0xFFFFFFFE, 0x80000001)
    assert second.avp("Result-Code").value == "2001"
    identity = second.avp("Public-Identity")
    assert (identity.code, identity.vendor, identity.value) == (
        601,
        VENDOR_3GPP,
        "sip:alice@example.com",
    )
    features = second.avp("Supported-Features")
    assert features.vendor == VENDOR_3GPP
    assert [(a.code, a.vendor, a.name, a.value) for a in features.children] == [
        (629, VENDOR_3GPP, "Feature-List-ID", "1"),
        (630, VENDOR_3GPP, "Feature-List", "15"),
    ]
    assert [a.value for a in second.all("Feature-List")] == ["15"]
    assert (first.expert, second.expert) == ((), ())


def test_tshark_flags_broken_avp_length() -> None:
    good = cer()
    too_long = with_avp_length(good, 20, 200)  # Origin-Host claims to run past the end
    too_short = with_avp_length(good, 20, 6)  # shorter than an AVP header
    decoded = tshark_decode([good, too_long, too_short])
    assert decoded[0].expert == ()
    for broken in decoded[1:]:
        check_cer_header(broken)
        malformed = [e for e in broken.expert if e.group == "malformed"]
        assert malformed, broken.expert
        assert all(e.severity == "error" for e in malformed)
    assert any("Wrong AVP(264) length 200" in e.message for e in decoded[1].expert)


def test_tshark_flags_unknown_avps_and_wrong_message_length() -> None:
    unknown = message(280, [avp(264, b"a.localdomain"), avp(99999, b"xy")])
    base = cer()
    long_header = base[:1] + struct.pack("!I", len(base) + 40)[1:] + base[4:]
    short_header = base[:1] + struct.pack("!I", len(base) - 12)[1:] + base[4:]
    first, second, third = tshark_decode([unknown, long_header, short_header])
    (avp_99999,) = [a for a in first.avps if a.code == 99999]
    assert (avp_99999.name, avp_99999.value) == (None, "78:79")
    assert [(e.severity, e.group) for e in first.expert] == [("warning", "undecoded")]
    assert "Unknown AVP 99999" in first.expert[0].message
    assert second.length == len(base) + 40
    assert [(e.severity, e.group) for e in second.expert] == [("note", "reassemble")]
    assert third.length == len(base) - 12
    assert third.extra_layers[:1] == ("diameter",)  # the last 12 bytes, as a second message
    assert "Unknown Diameter Version (decoding as RFC 3588)" in [e.message for e in third.expert]


def test_tshark_rejects_a_frame_without_diameter() -> None:
    base = cer()
    with pytest.raises(TsharkError, match="frame 2"):
        tshark_decode([base, b"\x02" + base[1:]])  # version 2: not Diameter to tshark


# ---- pycrate


def test_pycrate_decodes_a_cer() -> None:
    decoded = pycrate_decode(cer())
    check_cer_header(decoded)
    assert [(a.code, a.vendor, a.name, a.value) for a in decoded.avps if not a.children] == [
        (264, None, "Origin-Host", b"homestead.localdomain"),
        (296, None, "Origin-Realm", b"localdomain"),
        (257, None, "Host-IP-Address", "127.0.0.1"),
        (266, None, "Vendor-Id", 0),
        (269, None, "Product-Name", "clearwater"),
        (265, None, "Supported-Vendor-Id", VENDOR_3GPP),
        (259, None, "Acct-Application-Id", 3),
    ]
    application = decoded.avp("Vendor-Specific-Application-Id")
    assert application.value is None
    assert [(a.code, a.name, a.value) for a in application.children] == [
        (266, "Vendor-Id", VENDOR_3GPP),
        (258, "Auth-Application-Id", CX),
    ]


def test_pycrate_names_3gpp_vendor_avps() -> None:
    decoded = pycrate_decode(cx_answer())
    assert (decoded.command_code, decoded.request, decoded.proxiable) == (300, False, True)
    assert decoded.application_id == CX
    assert decoded.avp("Public-Identity").value == "sip:alice@example.com"
    assert decoded.avp("Public-Identity").vendor == VENDOR_3GPP
    assert [(a.name, a.value) for a in decoded.avp("Supported-Features").children] == [
        ("Feature-List-ID", 1),
        ("Feature-List", 15),
    ]


@pytest.mark.parametrize("length", [200, 6])
def test_pycrate_rejects_broken_avp_length(length: int) -> None:
    # 200 runs past the end (pycrate quietly drops the AVPs: caught by the re-encoding check);
    # 6 is shorter than an AVP header (pycrate raises).
    with pytest.raises(PycrateDecodeError):
        pycrate_decode(with_avp_length(cer(), 20, length))


def test_pycrate_rejects_wrong_message_length() -> None:
    base = cer()
    with pytest.raises(PycrateDecodeError):
        pycrate_decode(base[:1] + struct.pack("!I", len(base) + 4)[1:] + base[4:])


# ---- freeDiameterd


def exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send one message on a new TCP connection to 127.0.0.1:``port`` and read one message."""
    with socket.create_connection((HOST, port), timeout=timeout) as connection:
        connection.sendall(request)
        head = read_exactly(connection, 4)
        return head + read_exactly(connection, int.from_bytes(head[1:4], "big") - 4)


def read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        assert chunk, "connection closed after " + str(len(data)) + " of " + str(size) + " bytes"
        data += chunk
    return data


def test_freediameterd_answers_a_cer(processes: Processes) -> None:
    peer = FreeDiameterd(processes, "hss.localdomain", allow_peers=["homestead.localdomain"])
    with peer:
        answer = exchange(peer.port, cer())
        (cea,) = tshark_decode([answer], port=peer.port)
        assert (cea.command_code, cea.request, cea.error) == (257, False, False)
        assert cea.hop_by_hop == 0x1234  # RFC 6733 §3: the answer keeps the request's ids
        assert cea.avp("Result-Code").value == "2001"
        assert cea.avp("Origin-Host").value == "hss.localdomain"
        assert "4294967295" in [a.value for a in cea.all("Auth-Application-Id")]  # relay
        assert cea.expert == ()
        peer.wait_for_log(message_pattern("RCV from", "<unknown>", 257, request=True))
        peer.wait_for_state("homestead.localdomain", "STATE_OPEN")
        peer.wait_for_state("homestead.localdomain", "STATE_CLOSED")  # we hung up
        # A peer neither allowed nor configured is refused in the CEA (RFC 6733 §5.3).
        refusal = exchange(peer.port, cer("stranger.localdomain", hop_by_hop=7))
        (refused,) = tshark_decode([refusal], port=peer.port)
        assert (refused.error, refused.hop_by_hop) == (True, 7)
        assert refused.avp("Result-Code").value == "3010"  # DIAMETER_UNKNOWN_PEER
    assert not peer.running


def test_freediameterd_without_relay_refuses_unknown_applications(
    processes: Processes,
) -> None:
    peer = FreeDiameterd(
        processes, "hss.localdomain", allow_peers=["homestead.localdomain"], relay=False
    )
    with peer:
        (cea,) = tshark_decode([exchange(peer.port, cer())], port=peer.port)
    assert cea.avp("Result-Code").value == "5010"  # DIAMETER_NO_COMMON_APPLICATION


def test_two_freediameterds_reach_open_and_stop(processes: Processes) -> None:
    port_a, port_b = free_port(), free_port()
    a = FreeDiameterd(
        processes,
        "a.localdomain",
        port=port_a,
        connect_peers=[ConnectPeer("b.localdomain", port_b)],
    )
    b = FreeDiameterd(
        processes,
        "b.localdomain",
        port=port_b,
        connect_peers=[ConnectPeer("a.localdomain", port_a)],
    )
    with a, b:
        a.wait_for_state("b.localdomain", "STATE_OPEN")
        b.wait_for_state("a.localdomain", "STATE_OPEN")
        assert a.states("b.localdomain")[-1] == "STATE_OPEN"
        mark = a.log_mark()
        assert b.stop() == 0  # b sends DPR (RFC 6733 §5.4); a answers and leaves OPEN
        a.wait_for_log("Peer 'b.localdomain' sent a DPR with cause: REBOOTING", since=mark)
        a.wait_for_log(message_pattern("SENT to", "b.localdomain", 282, False), since=mark)  # DPA
        a.wait_for_state("b.localdomain", "STATE_CLOSED", since=mark)
        assert a.running
    assert a.process is not None and a.process.returncode == 0


def test_paused_freediameterd_turns_suspect(processes: Processes) -> None:
    port_b = free_port()
    a = FreeDiameterd(
        processes,
        "a.localdomain",
        connect_peers=[ConnectPeer("b.localdomain", port_b, tw_timer=1)],
    )
    b = FreeDiameterd(processes, "b.localdomain", port=port_b, allow_peers=["a.localdomain"])
    with b, a:
        a.wait_for_state("b.localdomain", "STATE_OPEN")
        b.pause()
        mark = a.log_mark()
        # Tw = 1 s: a DWR goes out within 0-4 s (freeDiameter's jitter), then 1 s without DWA.
        a.wait_for_log(message_pattern("SENT to", "b.localdomain", 280, request=True), since=mark)
        a.wait_for_state("b.localdomain", "STATE_SUSPECT", timeout=10, since=mark)
        b.resume()
