# -*- test-case-name: tests.unit.testing.test_cdf -*-
"""A scripted CDF: the server end of Rf (3GPP TS 32.299 §6.2.2-§6.2.3, RFC 6733 §9.7; spec
§7.2), recording the Accounting-Requests ralf sends.

:class:`ScriptedCdf` answers each ACR with an ACA of its ``result_code`` (DIAMETER_SUCCESS by
default; e.g. DIAMETER_UNABLE_TO_DELIVER, 3002, to make ralf fail over to the next CCF),
echoing the record type and number, with ``acct_interim_interval`` if set. Every ACR that parses
is recorded (:attr:`ScriptedCdf.records`, with the raw :attr:`~ScriptedCdf.requests`) whatever
the answer; one that does not (:func:`~clearwater.diameter.apps.rf.parse_acr`) is answered
with the codec's result code and Failed-AVP and not recorded. ``stall`` makes it never
answer.

``python -m clearwater.testing.cdf`` runs one as a process::

    python -m clearwater.testing.cdf --identity cdf1.example.com --realm example.com \\
        --listen 127.0.0.1:3869 --record /tmp/cdf1.jsonl [--result-code 3002]

writing one JSON object per line per ACR received (:meth:`AcrRecord.to_json`: ``session_id``,
``record_type`` (``"START"`` ...), ``record_number``, ``received`` (Unix seconds),
``origin_host``, ``destination_host``, ``result_code`` answered (null when stalled) and
``event``, the ACR's AVPs in ralf's JSON shape, :func:`~clearwater.diameter.apps.rf.avps_json`),
flushed per line, so that a test can read them while it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import IO, Any, Callable, Optional, Union

import attrs
from twisted.application import service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from typing_extensions import override

from clearwater.diameter.apps.rf import RF, AcrRequest, aca, parse_acr
from clearwater.diameter.dictionary import APP_ACCOUNTING
from clearwater.diameter.interfaces import IDiameterNode, PeerInfo
from clearwater.diameter.message import DiameterDecodeError, Message
from clearwater.diameter.results import ResultCode
from clearwater.testing.hss import parse_listen, serve, start_logging

__all__ = ["DEFAULT_MAX_RECORDS", "AcrRecord", "ScriptedCdf", "main"]

_log = Logger(namespace="clearwater.testing.cdf")

#: How many ACRs :attr:`ScriptedCdf.records` keeps (the oldest go first).
DEFAULT_MAX_RECORDS = 10_000


@attrs.frozen
class AcrRecord:
    """One ACR received: what :func:`~clearwater.diameter.apps.rf.parse_acr` read, the
    peer's Origin-Host, when (``received``, seconds on the CDF's clock) and the Result-Code
    answered (None: stalled)."""

    acr: AcrRequest
    origin_host: str
    received: float
    result_code: Optional[int]

    def to_json(self) -> dict[str, Any]:
        """The JSON object of a ``--record`` line (module docstring)."""
        return {
            "session_id": self.acr.session_id,
            "record_type": self.acr.record_type.name,
            "record_number": self.acr.record_number,
            "received": self.received,
            "origin_host": self.origin_host,
            "destination_host": self.acr.destination_host,
            "result_code": self.result_code,
            "event": self.acr.event,
        }


class ScriptedCdf:
    """Answers ACRs on ``node`` (module docstring). ``result_code``, ``acct_interim_interval``
    and ``stall`` may be changed at any time. ``on_record`` is called with each
    :class:`AcrRecord`; ``now`` gives its ``received`` time."""

    def __init__(
        self,
        node: IDiameterNode,
        *,
        result_code: int = ResultCode.DIAMETER_SUCCESS,
        acct_interim_interval: Optional[int] = None,
        stall: bool = False,
        on_record: Optional[Callable[[AcrRecord], None]] = None,
        max_records: int = DEFAULT_MAX_RECORDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self.node = node
        self.result_code = int(result_code)
        self.acct_interim_interval = acct_interim_interval
        self.stall = stall
        self.on_record = on_record
        self.max_records = max_records
        #: Every ACR that parsed, oldest first (at most ``max_records``).
        self.records: list[AcrRequest] = []
        #: Every request received, oldest first (at most ``max_records``).
        self.requests: list[Message] = []
        self._now = now

    def install(self) -> None:
        """Answer the node's accounting requests (application 3)."""
        self.node.set_handler(APP_ACCOUNTING, self.handle)

    def handle(self, request: Message, peer: PeerInfo) -> Union[Message, Deferred[Message]]:
        """The ACA to ``request`` from ``peer`` (a
        :data:`~clearwater.diameter.interfaces.RequestHandler`)."""
        _append(self.requests, request, self.max_records)
        host, realm = self.node.identity, self.node.realm
        try:
            acr = parse_acr(request)
        except DiameterDecodeError as e:
            _log.warn("CDF: bad ACR from {peer}: {error}", peer=peer.host, error=e)
            return aca(
                request,
                result_code=e.result_code,
                origin_host=host,
                origin_realm=realm,
                failed_avp=e.failed_avp,
            )
        except ValueError:  # not an ACR: the node only delivers ACRs of application 3
            return aca(
                request,
                result_code=ResultCode.DIAMETER_COMMAND_UNSUPPORTED,
                origin_host=host,
                origin_realm=realm,
            )
        _append(self.records, acr, self.max_records)
        code = None if self.stall else self.result_code
        _log.info(
            "CDF: {record_type} {record_number} of {session_id} from {peer} answered {code}",
            record_type=acr.record_type.name,
            record_number=acr.record_number,
            session_id=acr.session_id,
            peer=peer.host,
            code=code,
        )
        if self.on_record is not None:
            origin_host = RF.get(request, "Origin-Host") or peer.host
            self.on_record(AcrRecord(acr, origin_host, self._now(), code))
        if code is None:
            return Deferred()  # never fires: ralf's request times out
        return aca(
            request,
            result_code=code,
            acct_interim_interval=self.acct_interim_interval,
            origin_host=host,
            origin_realm=realm,
        )


def _append(items: list[Any], item: Any, limit: int) -> None:
    items.append(item)
    if len(items) > limit:
        del items[0]


# --------------------------------------------------------------------------- command line


class _RecordFile(service.Service):
    """Writes each :class:`AcrRecord` as a JSON line to a file opened for appending; closes
    it when stopped."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file: Optional[IO[str]] = None

    def open(self) -> None:
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  # closed at stop

    def write(self, record: AcrRecord) -> None:
        if self.file is not None and not self.file.closed:
            self.file.write(json.dumps(record.to_json(), default=str) + "\n")
            self.file.flush()

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        if self.file is not None:
            self.file.close()
        return succeed(None)


def _listen_argument(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _result_code_argument(text: str) -> int:
    if not text.isdigit() or not 1000 <= int(text) <= 9999:
        raise argparse.ArgumentTypeError("expected a result code (1000-9999), not " + repr(text))
    return int(text)


def _seconds_argument(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("expected whole seconds, not " + repr(text))
    return int(text)


def _watchdog_argument(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds, not " + repr(text)) from None
    if not value >= 6:
        raise argparse.ArgumentTypeError("Tw must be at least 6 s (RFC 3539 §3.4.1)")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clearwater.testing.cdf",
        description="A scripted CDF answering Rf Accounting-Requests and recording them.",
    )
    parser.add_argument("--identity", required=True, help="our Diameter identity (Origin-Host)")
    parser.add_argument("--realm", required=True, help="our Diameter realm (Origin-Realm)")
    parser.add_argument(
        "--listen",
        type=_listen_argument,
        default=("127.0.0.1", 3868),
        metavar="HOST:PORT",
        help="where to accept Diameter peers (default 127.0.0.1:3868; port 0: any)",
    )
    parser.add_argument(
        "--result-code",
        type=_result_code_argument,
        default=int(ResultCode.DIAMETER_SUCCESS),
        help="the Result-Code of every ACA (default 2001; 3002 makes ralf fail over)",
    )
    parser.add_argument(
        "--acct-interim-interval",
        type=_seconds_argument,
        help="Acct-Interim-Interval to put in ACAs (default: none)",
    )
    parser.add_argument(
        "--record", metavar="FILE", help="append one JSON line per ACR received to FILE"
    )
    parser.add_argument(
        "--tw", type=_watchdog_argument, default=6.0, help="watchdog interval Tw (default 6 s)"
    )
    parser.add_argument("--verbose", action="store_true", help="log debug events too")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m clearwater.testing.cdf``: see the module docstring and ``--help``."""
    parser = _parser()
    args = parser.parse_args(argv)
    from clearwater.diameter.node import Application, DiameterNode

    record_file = None
    if args.record:
        record_file = _RecordFile(args.record)
        try:
            record_file.open()
        except OSError as e:
            parser.error("--record: cannot open " + args.record + ": " + str(e.strerror))

    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    start_logging(args.verbose)
    host, port = args.listen
    node = DiameterNode(
        reactor,
        args.identity,
        args.realm,
        [Application(APP_ACCOUNTING, accounting=True, dictionary=RF)],
        listen=(port, host),
        accept_unknown=True,
        product_name="clearwater scripted CDF",
        watchdog_interval=args.tw,
    )
    cdf = ScriptedCdf(
        node,
        result_code=args.result_code,
        acct_interim_interval=args.acct_interim_interval,
        on_record=None if record_file is None else record_file.write,
        now=reactor.seconds,
    )
    cdf.install()
    top = service.MultiService()
    if record_file is not None:
        record_file.setServiceParent(top)  # type: ignore[no-untyped-call]
    node.setServiceParent(top)  # type: ignore[no-untyped-call]

    def started() -> None:
        _log.info(
            "Scripted CDF {identity} (realm {realm}) listening for Rf on {host}:{port}; "
            "answering {code}; recording to {record}",
            identity=args.identity,
            realm=args.realm,
            host=host,
            port=node.port,
            code=args.result_code,
            record=args.record or "nowhere",
        )

    return serve(reactor, top, started)


if __name__ == "__main__":
    sys.exit(main())
