"""AKA registration against a real ``twistd sprout`` (issue #6; spec §3.2, RFC 3310, RFC 4169,
TS 33.102 §6.3.3 / §6.3.5): sprout's built-in S-CSCF with homestead in process over a SQLite
subscriber store, and our UA core with :class:`~clearwater.sip.auth.AkaClient` (MILENAGE) as
the UE, over real UDP sockets on 127.0.0.1.

pjsua2 cannot be the UE: the pjsua2-python wheel is built without ``PJSIP_HAS_DIGEST_AKA_AUTH``
and aborts (an assertion in ``pjsip_auth_clt_set_credentials``) when given AKA credentials;
PJSIP's AKA does not answer with ``auts`` either.

Everything that needs a reactor runs in a subprocess, this module run with ``-m``::

    python -m tests.integration.test_scscf_aka provision DB SQN   # the AKA subscriber
    python -m tests.integration.test_scscf_aka sqn DB             # the HSS's SQN
    python -m tests.integration.test_scscf_aka ue PORT [--sqn N] [--algorithm A] [--count N]

``ue`` registers ``--count`` times and prints one JSON line: per registration its final status
and, per REGISTER sent, the Authorization it carried (algorithm, whether it had ``auts``, the
SQN of the challenge it answered); and the USIM's SQN at the end. The UA core answers the
challenge that follows a resync answer (RFC 3310 §3.4) by itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional, cast

from twisted.internet import task
from twisted.internet.defer import Deferred

from clearwater._types import ISipReactor
from clearwater.aka import next_sqn, split_challenge, ue_check
from clearwater.homestead.provisioning import provision_subscriber
from clearwater.sip import Request, Response
from clearwater.sip import headers as h
from clearwater.sip.auth import AkaClient
from clearwater.sip.transaction import ClientTransaction
from clearwater.sip.ua import UserAgent
from clearwater.stores.records import AkaCredentials
from clearwater.stores.sqlite import ISqliteReactor, SqliteSubscriberStore
from tests.integration._peers import (
    HOST,
    Processes,
    describe,
    free_port,
    port_is_bound,
    processes,
    sprout_env,
    start_sprout,
    wait_until,
)

__all__ = ["processes"]  # the fixture

IMPI = "ue@example.com"
IMPU = "sip:ue@example.com"
# TS 35.208 test set 1's K and OPc.
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
AHEAD = 5000 << 5  # an SQN_MS far ahead of a fresh HSS (SEQ 5000, IND 0)
#: Seconds one helper subprocess may take (PyPy starts slowly).
HELPER_TIMEOUT = 60.0
#: Seconds the UE may spend on all its registrations.
UE_DEADLINE = 40.0


# --------------------------------------------------------------------------- the test side


def _helper(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.integration.test_scscf_aka", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=HELPER_TIMEOUT,
        env=sprout_env(),
        check=False,
    )


def _provision(db: Path, sqn: int = 0) -> None:
    done = _helper("provision", str(db), str(sqn))
    assert done.returncode == 0, describe(done)


def _hss_sqn(db: Path) -> int:
    done = _helper("sqn", str(db))
    assert done.returncode == 0, describe(done)
    return int(done.stdout.strip())


def _scscf(processes: Processes, db: Path) -> int:
    scscf = free_port()
    start_sprout(processes, "--scscf", str(scscf), "--subscriber-store", "sqlite:" + str(db))
    wait_until(lambda: port_is_bound("udp", scscf), 10, "the S-CSCF port")
    return scscf


def _ue(processes: Processes, scscf: int, *options: str) -> dict[str, Any]:
    done = _helper("ue", str(scscf), *options)
    assert done.returncode == 0, describe(done) + "\n--- sprout\n" + processes.log("sprout")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_akav1_registrations_and_a_resync(processes: Processes, tmp_path: Path) -> None:
    db = tmp_path / "hs.db"
    _provision(db)
    scscf = _scscf(processes, db)

    fresh = _ue(processes, scscf, "--count", "2")
    assert [r["status"] for r in fresh["registrations"]] == [200, 200]
    for registration, sqn in zip(fresh["registrations"], (32, 64)):
        unauthenticated, answer = registration["sent"]
        assert unauthenticated is None
        assert answer == {"algorithm": "AKAv1-MD5", "auts": False, "challenge_sqn": sqn}
    assert fresh["sqn"] == 64

    # Another run of the USIM, far ahead of the HSS: the UE answers with auts, the S-CSCF
    # fetches a re-synchronised vector and challenges again.
    ahead = _ue(processes, scscf, "--sqn", str(AHEAD))
    [registration] = ahead["registrations"]
    assert registration["status"] == 200
    assert registration["sent"] == [
        None,
        {"algorithm": "AKAv1-MD5", "auts": True, "challenge_sqn": 96},
        {"algorithm": "AKAv1-MD5", "auts": False, "challenge_sqn": next_sqn(AHEAD)},
    ]
    assert ahead["sqn"] == next_sqn(AHEAD) == _hss_sqn(db)


def test_akav2_registration_with_a_resync(processes: Processes, tmp_path: Path) -> None:
    db = tmp_path / "hs.db"
    _provision(db)
    scscf = _scscf(processes, db)
    result = _ue(processes, scscf, "--algorithm", "AKAv2-MD5", "--sqn", str(AHEAD), "--count", "2")
    first, second = result["registrations"]
    initial = {"algorithm": "AKAv2-MD5", "auts": False, "challenge_sqn": None}
    assert first == {
        "status": 200,
        "sent": [
            initial,
            {"algorithm": "AKAv2-MD5", "auts": True, "challenge_sqn": 32},
            {"algorithm": "AKAv2-MD5", "auts": False, "challenge_sqn": next_sqn(AHEAD)},
        ],
    }
    assert second == {
        "status": 200,
        "sent": [
            initial,
            {"algorithm": "AKAv2-MD5", "auts": False, "challenge_sqn": next_sqn(next_sqn(AHEAD))},
        ],
    }
    assert result["sqn"] == next_sqn(next_sqn(AHEAD)) == _hss_sqn(db)


# --------------------------------------------------------------------------- the subprocesses


async def _provision_main(reactor: ISqliteReactor, db: str, sqn: int) -> None:
    store = await SqliteSubscriberStore.open(reactor, db)
    try:
        await provision_subscriber(
            store, IMPI, [IMPU], realm="example.com", aka=AkaCredentials(K, OPC, sqn=sqn)
        )
    finally:
        await store.close()


async def _sqn_main(reactor: ISqliteReactor, db: str) -> None:
    store = await SqliteSubscriberStore.open(reactor, db)
    try:
        private = await store.get_private(IMPI)
    finally:
        await store.close()
    assert private is not None and private.aka is not None
    print(private.aka.sqn, flush=True)


def _summary(request: Request) -> Optional[dict[str, Any]]:
    """What a sent REGISTER's Authorization says; None without one."""
    found = request.headers.parsed(h.AUTHORIZATION)
    if not found:
        return None
    [credentials] = found
    sqn: Optional[int] = None
    if credentials.nonce:
        rand, autn = split_challenge(credentials.nonce)
        sqn = ue_check(K, OPC, rand, autn)[3]
    return {
        "algorithm": credentials.algorithm,
        "auts": credentials.auts is not None,
        "challenge_sqn": sqn,
    }


async def _register(
    ua: UserAgent, client: AkaClient, port: int, algorithm: Optional[str]
) -> dict[str, Any]:
    sent: list[Request] = []

    def keep(tsx: ClientTransaction) -> None:
        if tsx.request is not None:
            sent.append(tsx.request.copy())

    aor = "<" + IMPU + ">"
    request = ua.create_request("REGISTER", "sip:example.com", from_=aor, to=aor)
    request.headers.add("Contact", "<sip:ue@" + HOST + ":" + str(port) + ">")
    request.headers.add("Expires", "300")
    if algorithm is not None:
        initial = client.initial_credentials("example.com", "sip:example.com", algorithm)
        request.headers.add("Authorization", initial)
    response: Response = await ua.send(request, on_transaction=keep)
    return {"status": response.status, "sent": [_summary(r) for r in sent]}


async def _ue_main(
    reactor: ISipReactor, port: int, sqn: int, algorithm: Optional[str], count: int
) -> None:
    client = AkaClient(IMPI, K, OPC, sqn=sqn)
    ua = UserAgent(
        reactor,
        user="ue",
        outbound_proxy="sip:" + HOST + ":" + str(port),
        credentials=client,
    )
    spec = ua.listen("udp:" + HOST + ":0")
    registrations = []
    try:
        for _ in range(count):
            registrations.append(await _register(ua, client, spec.port, algorithm))
    finally:
        await ua.stop()
    print(json.dumps({"registrations": registrations, "sqn": client.sqn}), flush=True)


def main(argv: Optional[list[str]] = None) -> None:
    """The subprocess side (see the module docstring); exits 0 on success, 1 on failure."""
    parser = argparse.ArgumentParser(prog="test_scscf_aka")
    commands = parser.add_subparsers(dest="command", required=True)
    provision = commands.add_parser("provision")
    provision.add_argument("db")
    provision.add_argument("sqn", type=int)
    read = commands.add_parser("sqn")
    read.add_argument("db")
    ue = commands.add_parser("ue")
    ue.add_argument("port", type=int)
    ue.add_argument("--sqn", type=int, default=0)
    ue.add_argument("--algorithm")
    ue.add_argument("--count", type=int, default=1)
    args = parser.parse_args(argv)

    def run(reactor: Any) -> Deferred[None]:
        if args.command == "provision":
            coroutine = _provision_main(cast(ISqliteReactor, reactor), args.db, args.sqn)
        elif args.command == "sqn":
            coroutine = _sqn_main(cast(ISqliteReactor, reactor), args.db)
        else:
            coroutine = _ue_main(
                cast(ISipReactor, reactor), args.port, args.sqn, args.algorithm, args.count
            )
        return Deferred.fromCoroutine(coroutine).addTimeout(UE_DEADLINE, reactor)

    task.react(run)


if __name__ == "__main__":
    main()
