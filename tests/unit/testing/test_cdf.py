"""The scripted CDF (clearwater.testing.cdf): ACAs (TS 32.299 §6.2.3), the ACRs it records, its
test controls and its command line's argument checks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import attrs
import pytest
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from typing_extensions import override

from clearwater.diameter.apps.rf import (
    RF,
    AccountingRecordType,
    AcrRequest,
    acr,
    parse_aca,
)
from clearwater.diameter.dictionary import APP_ACCOUNTING
from clearwater.diameter.interfaces import PeerInfo
from clearwater.diameter.message import FLAG_ERROR, Message, parse_message
from clearwater.diameter.node import Application, DiameterNode, PeerConfig
from clearwater.testing.cdf import AcrRecord, ScriptedCdf, main
from clearwater.testing.diameter import DiameterNetwork
from tests.unit.testing.test_hss import FakeNode

DOMAIN = "example.com"
RALF = "ralf.example.com"
PEER = PeerInfo(RALF, DOMAIN, "127.0.0.1:40000")
NOW = 1700000000.25
EVENT: dict[str, Any] = {
    "Event-Timestamp": 1700000000,
    "Service-Information": {
        "IMS-Information": {
            "Event-Type": {"SIP-Method": "INVITE"},
            "Role-Of-Node": 0,
            "Node-Functionality": 0,
            "User-Session-Id": "call-1",
            "Calling-Party-Address": ["sip:alice@example.com"],
            "Called-Party-Address": "sip:bob@example.com",
        }
    },
}


def make_acr(
    record_type: int = AccountingRecordType.START,
    number: int = 0,
    session_id: str = "ralf.example.com;1;1",
    interim: Optional[int] = None,
) -> Message:
    message = acr(
        session_id=session_id,
        origin_host=RALF,
        origin_realm=DOMAIN,
        destination_realm=DOMAIN,
        destination_host="cdf1.example.com",
        record_type=record_type,
        record_number=number,
        event=EVENT,
        acct_interim_interval=interim,
    )
    return attrs.evolve(message, hop_by_hop=7, end_to_end=8)


class CdfTests(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.node = FakeNode()
        self.node.identity = "cdf1.example.com"
        self.seen: list[AcrRecord] = []
        self.cdf = ScriptedCdf(self.node, on_record=self.seen.append, now=lambda: NOW)

    def answer(self, request: Message) -> Message:
        result: Union[Message, Deferred[Message]] = self.cdf.handle(request, PEER)
        assert isinstance(result, Message)
        assert (result.hop_by_hop, result.end_to_end) == (7, 8) and not result.is_request
        answer = parse_message(bytes(result))
        assert answer.avps[0].code == 263
        assert RF.get(answer, "Session-Id") == RF.get(request, "Session-Id")
        assert RF.get(answer, "Origin-Host") == "cdf1.example.com"
        return answer

    def test_install(self) -> None:
        self.cdf.install()
        assert list(self.node.handlers) == [APP_ACCOUNTING]
        result = self.node.handlers[APP_ACCOUNTING](make_acr(), PEER)
        assert isinstance(result, Message)
        assert parse_aca(result).result_code == 2001

    def test_start_interim_stop_are_answered_and_recorded(self) -> None:
        kinds = [AccountingRecordType.START, AccountingRecordType.INTERIM]
        kinds.append(AccountingRecordType.STOP)
        for number, kind in enumerate(kinds):
            aca = parse_aca(self.answer(make_acr(kind, number)))
            assert (aca.result_code, aca.record_type, aca.record_number) == (2001, kind, number)
            assert aca.acct_interim_interval is None
        assert [(r.record_type, r.record_number) for r in self.cdf.records] == list(
            zip(kinds, range(3))
        )
        first = self.cdf.records[0]
        assert first == AcrRequest(
            "ralf.example.com;1;1",
            AccountingRecordType.START,
            0,
            "cdf1.example.com",
            first.event,
        )
        assert first.event["Service-Information"] == EVENT["Service-Information"]
        assert first.event["Accounting-Record-Type"] == 2

    def test_fixed_result_code(self) -> None:
        self.cdf.result_code = 3002
        answer = self.answer(make_acr())
        assert parse_aca(answer).result_code == 3002
        assert answer.flags & FLAG_ERROR
        assert len(self.cdf.records) == 1
        assert self.seen[0].result_code == 3002

    def test_acct_interim_interval(self) -> None:
        self.cdf.acct_interim_interval = 300
        assert parse_aca(self.answer(make_acr())).acct_interim_interval == 300

    def test_stall_records_and_never_answers(self) -> None:
        self.cdf.stall = True
        result = self.cdf.handle(make_acr(), PEER)
        assert isinstance(result, Deferred)
        self.assertNoResult(result)  # type: ignore[no-untyped-call]
        assert len(self.cdf.records) == 1
        assert [r.result_code for r in self.seen] == [None]

    def test_on_record(self) -> None:
        self.answer(make_acr(AccountingRecordType.EVENT, 5))
        [record] = self.seen
        assert record == AcrRecord(self.cdf.records[0], RALF, NOW, 2001)
        line = json.loads(json.dumps(record.to_json()))
        assert line == {
            "session_id": "ralf.example.com;1;1",
            "record_type": "EVENT",
            "record_number": 5,
            "received": NOW,
            "origin_host": RALF,
            "destination_host": "cdf1.example.com",
            "result_code": 2001,
            "event": line["event"],
        }
        ims = line["event"]["Service-Information"]["IMS-Information"]
        assert ims["User-Session-Id"] == "call-1"

    def test_bad_acr_is_answered_with_failed_avp_and_not_recorded(self) -> None:
        request = make_acr()
        request = attrs.evolve(request, avps=tuple(a for a in request.avps if a.code != 485))
        answer = self.answer(request)
        assert parse_aca(answer).result_code == 5005
        failed = RF.find(answer, "Failed-AVP", "Accounting-Record-Number")
        assert failed is not None and failed.data == bytes(4)
        assert self.cdf.records == [] and self.seen == []
        assert self.cdf.requests == [request]

    def test_records_are_bounded(self) -> None:
        self.cdf.max_records = 2
        for number in range(3):
            self.answer(make_acr(AccountingRecordType.INTERIM, number))
        assert [r.record_number for r in self.cdf.records] == [1, 2]
        assert len(self.cdf.requests) == 2

    def test_max_records_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="max_records"):
            ScriptedCdf(self.node, max_records=0)


class NodePairTests(SynchronousTestCase):
    def test_acr_over_a_connection(self) -> None:
        net = DiameterNetwork()
        apps = [Application(APP_ACCOUNTING, accounting=True, dictionary=RF)]
        cdf_node = DiameterNode(
            net.reactor("10.0.0.2"), "cdf1.example.com", DOMAIN, apps, listen=(3868, "")
        )
        ralf = DiameterNode(
            net.reactor("10.0.0.1"),
            RALF,
            DOMAIN,
            apps,
            peers=[PeerConfig("cdf1.example.com", "10.0.0.2")],
        )
        cdf = ScriptedCdf(cdf_node, acct_interim_interval=600, now=net.clock.seconds)
        cdf.install()
        cdf_node.startService()
        ralf.startService()
        net.pump()
        d = ralf.request(make_acr())
        net.pump()
        aca = parse_aca(self.successResultOf(d))
        assert (aca.result_code, aca.acct_interim_interval) == (2001, 600)
        assert [r.record_type for r in cdf.records] == [AccountingRecordType.START]
        ralf.stopService()
        cdf_node.stopService()
        net.pump()


def usage_error(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


BASE_ARGS = ["--identity", "cdf1.example.com", "--realm", DOMAIN]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--identity", "cdf1.example.com"], "--realm"),
        ([*BASE_ARGS, "--listen", "127.0.0.1"], "expected HOST:PORT"),
        ([*BASE_ARGS, "--result-code", "ok"], "expected a result code"),
        ([*BASE_ARGS, "--result-code", "99999"], "expected a result code"),
        ([*BASE_ARGS, "--acct-interim-interval", "-1"], "whole seconds"),
        ([*BASE_ARGS, "--tw", "5"], "at least 6"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in usage_error(argv, capsys)


def test_record_file_that_cannot_be_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing" / "acrs.jsonl"
    err = usage_error([*BASE_ARGS, "--record", str(path)], capsys)
    assert "--record: cannot open " + str(path) in err
