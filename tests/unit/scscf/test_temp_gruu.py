"""Temporary GRUUs (RFC 5627 §3.2, §5.1, §5.3; RFC 5628): the registrar's tokens
(clearwater.scscf.bindings), their index (clearwater.stores.typed.TempGruuStore), the 200 OK
and reg-event documents that carry them, and the S-CSCF routing a request for one, end to end
in process (the Core of test_scscf)."""

from __future__ import annotations

import re
from typing import Any, Optional

import attrs
import pytest
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase
from typing_extensions import override

from clearwater.scscf.bindings import (
    TEMP_GRUU_PREFIX,
    apply_register,
    contact_headers,
    holds_temp_gruu,
    is_temp_gruu,
    new_temp_gruu_token,
    parse_temp_gruu,
    temp_gruu_uri,
)
from clearwater.scscf.reginfo import parse_reginfo
from clearwater.sip import NameAddr, Request, Response, parse_uri
from clearwater.sip.ua import UserAgent
from clearwater.stores.interfaces import StoreUnavailableError
from clearwater.stores.records import AoR, Binding, TempGruu
from clearwater.stores.typed import TEMP_GRUU_TABLE, TempGruuTarget
from tests.unit.scscf.test_bindings import INSTANCE, UE, UUID, register
from tests.unit.scscf.test_reginfo import XMLLINT, xmllint
from tests.unit.scscf.test_scscf import ALICE, BOB, HOME, SCSCF_URI, WATCHER, Core

NOW = 1_700_000_000
MAX = 300
IMPI = "alice@example.com"
CONTACT = "<" + UE + ">;+sip.instance=" + INSTANCE
TOKENS = ("A" * 22, "B" * 22, "C" * 22)


def apply(aor: Optional[AoR], request: Request, *, temp_gruus: bool = True, now: int = NOW) -> AoR:
    tokens = iter(TOKENS if aor is None else TOKENS[1:])
    return apply_register(
        aor,
        request,
        now=now,
        reg_max_expires=MAX,
        private_id=IMPI,
        temp_gruus=temp_gruus,
        new_token=lambda: next(tokens),
    ).aor


def only(aor: AoR) -> Binding:
    [(_, binding)] = aor.bindings
    return binding


# --------------------------------------------------------------------------- tokens and URIs


def test_new_tokens_are_128_random_bits_url_safe() -> None:
    tokens = {new_temp_gruu_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", t) for t in tokens)


def test_a_register_asking_for_gruus_gives_an_instance_binding_a_token() -> None:
    binding = only(apply(None, register(CONTACT, cseq=5, supported="gruu")))
    assert binding.temp_gruu == TempGruu(TOKENS[0], 5)
    assert temp_gruu_uri(binding, HOME) == "sip:tgruu." + TOKENS[0] + ".5@example.com;gr"


def test_no_token_without_the_request_asking_or_without_an_instance() -> None:
    assert only(apply(None, register(CONTACT), temp_gruus=False)).temp_gruu is None
    no_instance = only(apply(None, register("<" + UE + ">")))
    assert no_instance.temp_gruu is None
    assert temp_gruu_uri(no_instance, HOME) is None


def test_a_refresh_keeps_the_token_and_hands_out_a_new_temp_gruu() -> None:
    first = apply(None, register(CONTACT, cseq=1))
    second = apply(first, register(CONTACT, cseq=2))
    third = apply(second, register(CONTACT, cseq=7), temp_gruus=False)
    uris = [temp_gruu_uri(only(a), HOME) for a in (first, second, third)]
    assert len(set(uris)) == 3  # a new temp-gruu at every refresh
    binding = only(third)
    assert binding.temp_gruu == TempGruu(TOKENS[0], 1)
    # Every temp-gruu handed out since the Call-ID was first seen is still valid.
    for uri in uris:
        assert uri is not None
        parsed = parse_temp_gruu(parse_uri(uri))
        assert parsed is not None and holds_temp_gruu(binding, *parsed)


def test_a_new_call_id_makes_a_new_token_and_drops_the_old() -> None:
    first = apply(None, register(CONTACT, cseq=9))
    moved = only(apply(first, register(CONTACT, call_id="reboot@192.0.2.10", cseq=1)))
    assert moved.temp_gruu == TempGruu(TOKENS[1], 1)
    assert not holds_temp_gruu(moved, TOKENS[0], 9)
    gone = apply(first, register(CONTACT, call_id="reboot@192.0.2.10", cseq=1), temp_gruus=False)
    assert only(gone).temp_gruu is None


def test_a_binding_first_asking_for_gruus_on_a_refresh_gets_its_token_then() -> None:
    plain = apply(None, register(CONTACT, cseq=1), temp_gruus=False)
    asked = only(apply(plain, register(CONTACT, cseq=2)))
    assert asked.temp_gruu == TempGruu(TOKENS[1], 2)
    assert not holds_temp_gruu(asked, TOKENS[1], 1)  # never handed out with CSeq 1


def test_holds_temp_gruu_checks_token_and_cseq_range() -> None:
    binding = Binding("sip:a@b", "c", cseq=8, expires=NOW, temp_gruu=TempGruu(TOKENS[0], 3))
    assert [holds_temp_gruu(binding, TOKENS[0], n) for n in (2, 3, 8, 9)] == [
        False,
        True,
        True,
        False,
    ]
    assert not holds_temp_gruu(binding, TOKENS[1], 5)
    assert not holds_temp_gruu(attrs.evolve(binding, temp_gruu=None), TOKENS[0], 5)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:tgruu." + TOKENS[0] + ".12@example.com;gr", (TOKENS[0], 12)),
        ("sip:tgruu." + TOKENS[0] + ".12@other.example;gr;transport=tcp", (TOKENS[0], 12)),
        ("sip:tgruu." + TOKENS[0] + ".12@example.com", None),  # no gr
        ("sip:tgruu." + TOKENS[0] + ".12@example.com;gr=urn:uuid:1", None),  # a pub-gruu
        ("sip:tgruu." + TOKENS[0] + "@example.com;gr", None),  # no CSeq
        ("sip:tgruu.short.1@example.com;gr", None),
        ("sip:tgruu." + "A" * 21 + "%41.1@example.com;gr", None),
        ("sip:alice@example.com;gr", None),
        ("tel:+15551234", None),
    ],
)
def test_parse_temp_gruu(uri: str, expected: Optional[tuple[str, int]]) -> None:
    assert parse_temp_gruu(parse_uri(uri)) == expected


def test_is_temp_gruu_is_about_the_form_only() -> None:
    assert is_temp_gruu(parse_uri("sip:tgruu.x@example.com;gr"))
    assert not is_temp_gruu(parse_uri("sip:tgruu.x@example.com;gr=1"))
    assert not is_temp_gruu(parse_uri("sip:Tgruu.x@example.com;gr"))


def test_contact_headers_carry_the_latest_temp_gruu_after_the_pub_gruu() -> None:
    aor = apply(apply(None, register(CONTACT, cseq=1)), register(CONTACT, cseq=4))
    [value] = contact_headers(
        aor, aor_uri="sip:alice@example.com", now=NOW, gruu=True, temp_gruu_domain=HOME
    )
    assert value == (
        "<" + UE + ">;expires=300;+sip.instance=" + INSTANCE
        + ';pub-gruu="sip:alice@example.com;gr=' + UUID + '"'
        + ';temp-gruu="sip:tgruu.' + TOKENS[0] + '.4@example.com;gr"'
    )  # fmt: skip
    [plain] = contact_headers(
        aor, aor_uri="sip:alice@example.com", now=NOW, gruu=False, temp_gruu_domain=HOME
    )
    [no_index] = contact_headers(aor, aor_uri="sip:alice@example.com", now=NOW, gruu=True)
    assert "gruu" not in plain
    assert "pub-gruu" in no_index and "temp-gruu" not in no_index


# --------------------------------------------------------------------------- end to end

ALICE_AOR = "sip:alice@example.com"
ALICE_UUID = "urn:uuid:00000000-0000-1000-8000-00000000a11c"


def send_register(
    core: Core,
    ua: UserAgent,
    *,
    contact: str,
    call_id: Optional[str] = None,
    cseq: Optional[int] = None,
    expires: int = 300,
    gruu: bool = True,
) -> Response:
    aor = "<" + ALICE_AOR + ">"
    request = ua.create_request("REGISTER", "sip:" + HOME, from_=aor, to=aor)
    if call_id is not None:
        request.headers.set("Call-ID", call_id)
    if cseq is not None:
        request.headers.set("CSeq", str(cseq) + " REGISTER")
    request.headers.set("Contact", contact)  # the UA's own Contact has no instance
    request.headers.add("Expires", str(expires))
    if gruu:
        request.headers.add("Supported", "gruu")
    return core.result(ua.send(request))


def gruu_contact(host: str = ALICE, uuid: str = ALICE_UUID) -> str:
    return "<sip:alice@" + host + ':5060>;+sip.instance="<' + uuid + '>"'


def temp_gruu_of(response: Response, host: str = ALICE) -> str:
    for value in response.headers.get_all("Contact"):
        contact = NameAddr.parse(value)
        if str(contact.uri) == "sip:alice@" + host + ":5060":
            temp = contact.param("temp-gruu")
            assert temp is not None, value
            return temp.strip('"')
    raise AssertionError("no contact for " + host)


def call(core: Core, uri: str) -> Response:
    request = core.bob.create_request("MESSAGE", uri)
    request.headers.add("Route", "<" + SCSCF_URI + ";lr;orig>")
    return core.result(core.bob.send(request))


def messages(core: Core) -> list[Request]:
    return [i.request for i in core.alice_seen if i.request.method == "MESSAGE"]


class _Recording:
    """Counts a CAS store's operations per table."""

    def __init__(self, core: Core) -> None:
        self.ops: list[tuple[str, str]] = []
        cas = core.cas
        get, set_ = cas.get_data, cas.set_data

        def get_data(table: str, key: str) -> Any:
            self.ops.append(("get", table))
            return get(table, key)

        def set_data(table: str, key: str, data: bytes, c: int, ttl: int) -> Any:
            self.ops.append(("set", table))
            return set_(table, key, data, c, ttl)

        cas.get_data = get_data  # type: ignore[method-assign]
        cas.set_data = set_data  # type: ignore[method-assign,assignment]


class TempGruuRoutingTests(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.core = Core()
        assert self.core.register(self.core.bob, "bob", BOB).status == 200
        self.ok = send_register(
            self.core, self.core.alice, contact=gruu_contact(), call_id="alice-reg-1", cseq=10
        )
        assert self.ok.status == 200
        self.temp_gruu = temp_gruu_of(self.ok)

    def test_the_200_ok_gives_a_temp_gruu_that_hides_the_aor(self) -> None:
        match = re.fullmatch(r"sip:tgruu\.([A-Za-z0-9_-]{22})\.11@example\.com;gr", self.temp_gruu)
        assert match is not None, self.temp_gruu  # CSeq 11: the answer to the 401
        assert "alice" not in self.temp_gruu and ALICE_UUID not in self.temp_gruu
        [contact] = self.ok.headers.get_all("Contact")
        assert 'pub-gruu="sip:alice@example.com;gr=' + ALICE_UUID + '"' in contact
        index = self.core.registrations.temp_gruus
        target = self.core.result(index.get_target(match.group(1)))
        assert target == TempGruuTarget(ALICE_AOR, "<" + ALICE_UUID + ">")

    def test_a_request_to_the_temp_gruu_reaches_that_binding_only(self) -> None:
        other = send_register(self.core, self.core.alice, contact="<sip:alice@10.0.0.7:5060>")
        assert other.status == 200
        assert call(self.core, self.temp_gruu).status == 200
        [message] = messages(self.core)
        assert str(message.uri) == "sip:alice@" + ALICE + ":5060"
        # RFC 5627 §3.2: nothing of the AoR; P-Called-Party-ID is the temp-gruu as sent.
        assert message.headers.get_all("P-Called-Party-ID") == ["<" + self.temp_gruu + ">"]
        assert ALICE_AOR not in message.to_bytes().decode()

    def test_every_refresh_gives_a_new_temp_gruu_and_the_old_ones_still_work(self) -> None:
        refreshed = send_register(
            self.core, self.core.alice, contact=gruu_contact(), call_id="alice-reg-1", cseq=20
        )
        newer = temp_gruu_of(refreshed)
        assert newer != self.temp_gruu
        assert newer.split(".")[1] == self.temp_gruu.split(".")[1]  # same token
        assert call(self.core, self.temp_gruu).status == 200
        assert call(self.core, newer).status == 200
        assert len(messages(self.core)) == 2

    def test_a_new_call_id_invalidates_the_old_temp_gruus(self) -> None:
        rebooted = send_register(
            self.core, self.core.alice, contact=gruu_contact(), call_id="alice-reg-2", cseq=1
        )
        newer = temp_gruu_of(rebooted)
        assert newer.split(".")[1] != self.temp_gruu.split(".")[1]
        assert call(self.core, self.temp_gruu).status == 404
        assert call(self.core, newer).status == 200

    def test_a_cseq_never_handed_out_is_404(self) -> None:
        assert call(self.core, self.temp_gruu.replace(".11@", ".12@")).status == 404
        assert call(self.core, self.temp_gruu.replace(".11@", ".10@")).status == 404

    def test_a_binding_gone_is_480_until_the_index_expires_then_404(self) -> None:
        gone = send_register(
            self.core,
            self.core.alice,
            contact=gruu_contact(),
            call_id="alice-reg-1",
            cseq=30,
            expires=0,
        )
        assert gone.status == 200
        assert call(self.core, self.temp_gruu).status == 480
        self.core.run(301)  # the binding's lifetime: the index record goes with it
        assert call(self.core, self.temp_gruu).status == 404

    def test_unknown_or_malformed_temp_gruus_are_404(self) -> None:
        assert call(self.core, "sip:tgruu." + "Z" * 22 + ".1@example.com;gr").status == 404
        assert call(self.core, "sip:tgruu.nonsense@example.com;gr").status == 404
        assert messages(self.core) == []

    def test_an_index_read_failure_is_504(self) -> None:
        index = self.core.manager.temp_gruus
        assert index is not None
        index.get_target = lambda token: fail(StoreUnavailableError("down"))  # type: ignore[method-assign]
        assert call(self.core, self.temp_gruu).status == 504

    def test_an_index_write_failure_still_registers(self) -> None:
        index = self.core.manager.temp_gruus
        assert index is not None
        failures: list[str] = []

        def set_target(*args: Any, **kwargs: Any) -> Deferred[None]:
            failures.append(args[0])
            return fail(StoreUnavailableError("down"))

        index.set_target = set_target  # type: ignore[method-assign]
        response = send_register(
            self.core, self.core.alice, contact=gruu_contact(), call_id="alice-reg-2", cseq=40
        )
        assert response.status == 200 and len(failures) == 1
        assert self.flushLoggedErrors() == []  # type: ignore[no-untyped-call]

    def test_reginfo_carries_the_temp_gruu_and_is_schema_valid(self) -> None:
        core = self.core
        sent: list[Request] = []
        send = core.manager.send

        def record(request: Request) -> Deferred[Response]:
            sent.append(request)  # (too big for UDP, it goes over TCP: not to our watcher)
            return send(request)

        core.manager.send = record
        aor = "<" + ALICE_AOR + ">"
        request = core.alice.create_request("SUBSCRIBE", ALICE_AOR, from_=aor, to=aor)
        request.headers.add("Event", "reg")
        request.headers.set("Contact", "<sip:alice@" + WATCHER + ":5060>")
        request.headers.add("Route", "<" + SCSCF_URI + ";lr>")
        assert core.result(core.alice.send(request)).status == 200
        [notify] = sent
        info = parse_reginfo(notify.body)
        contact = info.registrations[0].contacts[0]
        assert contact.temp_gruu == (self.temp_gruu, 11)
        assert contact.pub_gruu == ALICE_AOR + ";gr=" + ALICE_UUID
        if XMLLINT is not None:
            result = xmllint(notify.body)
            assert result.returncode == 0, result.stderr


class TempGruuCostTests(SynchronousTestCase):
    def test_a_register_without_gruu_touches_only_the_reg_table(self) -> None:
        core = Core()
        recording = _Recording(core)
        assert core.register(core.alice, "alice", ALICE).status == 200
        assert core.register(core.alice, "alice", ALICE).status == 200
        assert {table for _, table in recording.ops} == {"reg"}

    def test_a_gruu_register_indexes_once_and_each_refresh_extends_it(self) -> None:
        core = Core()
        recording = _Recording(core)
        send_register(core, core.alice, contact=gruu_contact(), call_id="c", cseq=1)
        assert [op for op in recording.ops if op[1] == TEMP_GRUU_TABLE] == [
            ("set", TEMP_GRUU_TABLE)  # a new token: written without a read
        ]
        recording.ops.clear()
        send_register(core, core.alice, contact=gruu_contact(), call_id="c", cseq=5)
        assert recording.ops.count(("set", TEMP_GRUU_TABLE)) == 0  # same expiry: nothing to do
        core.run(10)
        send_register(core, core.alice, contact=gruu_contact(), call_id="c", cseq=9)
        assert [op for op in recording.ops if op[1] == TEMP_GRUU_TABLE] == [
            ("get", TEMP_GRUU_TABLE),  # the CAS of the record, to extend its lifetime
            ("set", TEMP_GRUU_TABLE),
        ]

    def test_no_index_no_temp_gruu(self) -> None:
        core = Core()
        core.manager.temp_gruus = None
        response = send_register(core, core.alice, contact=gruu_contact(), call_id="c", cseq=1)
        [contact] = response.headers.get_all("Contact")
        assert "pub-gruu=" in contact and "temp-gruu" not in contact
        aor, _ = core.result(core.registrations.get_aor(ALICE_AOR))
        assert aor is not None and only(aor).temp_gruu is None


def test_prefix_constant() -> None:
    assert TEMP_GRUU_PREFIX == "tgruu."
