"""Every Diameter message clearwater emits, judged by two decoders that are not ours (issue #8's
must-show): Wireshark's (tshark) with no expert info, and pycrate's, each reading the expected
command code, flags and AVPs.

The base protocol's CER, DWR and DPR (and the CEA, DWA and DPA answering a peer's) are what a
:class:`~clearwater.diameter.node.DiameterNode` writes on a connection; UAR, MAR, SAR, LIR, RTA
and PPA come from :mod:`clearwater.diameter.apps.cx`, ACR from :mod:`clearwater.diameter.apps.rf`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport

from clearwater.diameter import APP_CX, VENDOR_3GPP, Application, DiameterNode, PeerConfig
from clearwater.diameter.apps import cx, rf
from clearwater.diameter.dictionary import BASE
from clearwater.diameter.message import Framer, Message, parse_message
from tests.integration._diameter_peers import (
    DecodedDiameter,
    DiameterAvp,
    pycrate_available,
    pycrate_decode,
    tshark_decode,
    tshark_path,
)

HOMESTEAD = "homestead.example.com"
HSS = "hss.example.com"
REALM = "example.com"
IMPI = "alice@example.com"
IMPU = "sip:alice@example.com"
SCSCF = "sip:scscf.sprout.example.com:5054;transport=tcp"


def _base_messages() -> Iterator[tuple[str, bytes]]:
    """CER, then DWR after Tw, then DPR on stop, as a node writes them on its connection; and
    the DWA and CEA a node answers a peer's DWR and CER with."""
    reactor = MemoryReactorClock()  # type: ignore[no-untyped-call]  # untyped
    node = DiameterNode(
        reactor,  # type: ignore[arg-type]
        HOMESTEAD,
        REALM,
        [Application(APP_CX, VENDOR_3GPP, dictionary=cx.CX)],
        peers=[PeerConfig(HSS, "127.0.0.1", 3868)],
        watchdog_interval=6,
        jitter=lambda: 0.0,
    )
    node.startService()
    factory = reactor.tcpClients[0][2]
    protocol = factory.buildProtocol(None)
    assert protocol is not None
    transport = StringTransport()  # type: ignore[no-untyped-call]  # untyped
    protocol.makeConnection(transport)
    framer = Framer()

    def written() -> list[bytes]:
        frames = framer.feed(transport.value())  # type: ignore[no-untyped-call]  # untyped
        transport.clear()  # type: ignore[no-untyped-call]  # untyped
        return frames

    cer = parse_message(written()[0])
    yield "CER", bytes(cer)
    cea = Message(
        257,
        0,
        (
            BASE.avp("Result-Code", 2001),
            BASE.avp("Origin-Host", HSS),
            BASE.avp("Origin-Realm", REALM),
            BASE.avp("Host-IP-Address", "127.0.0.1"),
            BASE.avp("Vendor-Id", 0),
            BASE.avp("Product-Name", "hss"),
            BASE.avp("Auth-Application-Id", APP_CX),
        ),
        0,
        cer.hop_by_hop,
        cer.end_to_end,
    )
    protocol.dataReceived(bytes(cea))
    assert node.usable_peers() == [HSS]
    reactor.advance(6)
    dwr = parse_message(written()[0])
    yield "DWR", bytes(dwr)
    peer_dwr = Message(
        280, 0, (BASE.avp("Origin-Host", HSS), BASE.avp("Origin-Realm", REALM)), 0x80, 7, 8
    )
    protocol.dataReceived(bytes(peer_dwr))
    yield "DWA", written()[0]
    node.stopService()
    yield "DPR", written()[0]


def _cx_and_rf_messages() -> Iterator[tuple[str, bytes]]:
    yield (
        "UAR",
        bytes(
            cx.uar(
                session_id=f"{HOMESTEAD};1;1",
                impi=IMPI,
                impu=IMPU,
                visited_network=REALM,
                origin_host=HOMESTEAD,
                origin_realm=REALM,
                destination_realm=REALM,
                destination_host=HSS,
            )
        ),
    )
    yield (
        "MAR",
        bytes(
            cx.mar(
                session_id=f"{HOMESTEAD};1;2",
                impi=IMPI,
                impu=IMPU,
                scheme=cx.SCHEME_DIGEST,
                server_name=SCSCF,
                origin_host=HOMESTEAD,
                origin_realm=REALM,
                destination_realm=REALM,
                destination_host=HSS,
            )
        ),
    )
    yield (
        "SAR",
        bytes(
            cx.sar(
                session_id=f"{HOMESTEAD};1;3",
                impi=IMPI,
                impu=IMPU,
                server_name=SCSCF,
                assignment_type=cx.ServerAssignmentType.REGISTRATION,
                origin_host=HOMESTEAD,
                origin_realm=REALM,
                destination_realm=REALM,
                destination_host=HSS,
            )
        ),
    )
    yield (
        "LIR",
        bytes(
            cx.lir(
                session_id=f"{HOMESTEAD};1;4",
                impu=IMPU,
                originating=True,
                origin_host=HOMESTEAD,
                origin_realm=REALM,
                destination_realm=REALM,
                destination_host=HSS,
            )
        ),
    )
    rtr = cx.rtr(
        session_id=f"{HSS};1;5",
        reason_code=cx.ReasonCode.PERMANENT_TERMINATION,
        impi=IMPI,
        impus=(IMPU,),
        origin_host=HSS,
        origin_realm=REALM,
        destination_realm=REALM,
        destination_host=HOMESTEAD,
    )
    yield "RTA", bytes(cx.rta(rtr, origin_host=HOMESTEAD, origin_realm=REALM, result_code=2001))
    ppr = cx.ppr(
        session_id=f"{HSS};1;6",
        impi=IMPI,
        user_data="<IMSSubscription/>",
        origin_host=HSS,
        origin_realm=REALM,
        destination_realm=REALM,
        destination_host=HOMESTEAD,
    )
    yield "PPA", bytes(cx.ppa(ppr, origin_host=HOMESTEAD, origin_realm=REALM, result_code=2001))
    event = {
        "Accounting-Record-Type": 2,
        "Event-Timestamp": 1_800_000_000,
        "Service-Information": {
            "IMS-Information": {
                "Event-Type": {"SIP-Method": "INVITE"},
                "Role-Of-Node": 0,
                "Node-Functionality": 0,
                "User-Session-Id": "call-1@example.com",
                "Calling-Party-Address": ["sip:alice@example.com"],
                "Called-Party-Address": "sip:bob@example.com",
                "IMS-Charging-Identifier": "icid-1",
            }
        },
    }
    yield (
        "ACR",
        bytes(
            rf.acr(
                session_id="ralf.example.com;1;1",
                origin_host="ralf.example.com",
                origin_realm=REALM,
                destination_realm=REALM,
                destination_host="cdf.example.com",
                record_type=rf.AccountingRecordType.START,
                record_number=1,
                event=event,
            )
        ),
    )


EXPECTED = {
    # name: (command code, request flag, application id, codes of AVPs that must be there)
    "CER": (257, True, 0, (264, 296, 257, 266, 269, 260)),
    "DWR": (280, True, 0, (264, 296)),
    "DWA": (280, False, 0, (268, 264, 296)),
    "DPR": (282, True, 0, (264, 296, 273)),
    "UAR": (300, True, APP_CX, (263, 260, 277, 264, 296, 293, 283, 1, 601, 600)),
    "MAR": (303, True, APP_CX, (263, 1, 601, 612, 608, 607, 602)),
    "SAR": (301, True, APP_CX, (263, 1, 601, 602, 614, 624)),
    "LIR": (302, True, APP_CX, (263, 633, 601)),
    "RTA": (304, False, APP_CX, (263, 268, 277, 264, 296)),
    "PPA": (305, False, APP_CX, (263, 268, 264, 296)),
    "ACR": (271, True, 3, (263, 480, 485, 259, 461, 873, 876, 829, 862)),
}

MESSAGES = dict([*_base_messages(), *_cx_and_rf_messages()])


def _walk(avps: tuple[DiameterAvp, ...]) -> Iterator[DiameterAvp]:
    for avp in avps:
        yield avp
        yield from _walk(avp.children)


def _check(name: str, decoded: DecodedDiameter, raw: bytes) -> None:
    code, is_request, app, required = EXPECTED[name]
    ours = parse_message(raw)
    assert (decoded.command_code, decoded.request, decoded.application_id) == (
        code,
        is_request,
        app,
    )
    assert (decoded.hop_by_hop, decoded.end_to_end) == (ours.hop_by_hop, ours.end_to_end)
    assert decoded.proxiable == ours.is_proxiable and not decoded.error
    assert decoded.length == len(raw)
    assert [(a.code, a.vendor or 0) for a in decoded.avps] == [a.key for a in ours.avps]
    codes = {avp.code for avp in _walk(decoded.avps)}
    assert set(required) <= codes, f"{name}: missing {set(required) - codes}"
    unknown = [avp.code for avp in _walk(decoded.avps) if avp.name is None]
    assert unknown == [], f"{name}: AVPs the decoder does not know: {unknown}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tshark_decodes_what_we_emit_without_expert_info(name: str) -> None:
    tshark_path()
    raw = MESSAGES[name]
    (decoded,) = tshark_decode([raw])
    assert decoded.expert == (), f"{name}: {decoded.expert}"
    assert decoded.extra_layers == ()
    _check(name, decoded, raw)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pycrate_decodes_what_we_emit(name: str) -> None:
    if not pycrate_available():
        pytest.skip("pycrate is not installed")
    raw = MESSAGES[name]
    _check(name, pycrate_decode(raw), raw)
