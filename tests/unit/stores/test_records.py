"""The store records and their Clearwater JSON layouts (clearwater.stores.records; spec §3.2
IMPI store, §3.4 registration store): round trips, Clearwater-shaped records parsed and
written back with unknown members kept, and malformed JSON refused with ParseError only."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearwater.errors import ParseError
from clearwater.stores import records
from clearwater.stores.records import (
    AkaCredentials,
    AoR,
    AssociatedUri,
    Binding,
    Challenge,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    RegState,
    ServiceProfile,
    Subscription,
    challenges_from_json,
    challenges_to_json,
)

# --------------------------------------------------------------------------- Clearwater shapes

#: An AoR as clearwater-s4 wrote it (spec §3.4), with members we do not model at each level
#: we keep them: the record, a binding and a subscription.
CLEARWATER_AOR: dict[str, Any] = {
    "bindings": {
        "<urn:uuid:00000000-0000-0000-0000-b4dd32817622>:1": {
            "uri": "sip:6505550231@192.91.191.29:59934;transport=tcp;ob",
            "cid": "gfYHoZGaFaRNxhlV0WIwoS-f91NoJ2gq",
            "cseq": 3,
            "expires": 1700000300,
            "priority": 1000,
            "params": {
                "+sip.instance": '"<urn:uuid:00000000-0000-0000-0000-b4dd32817622>"',
                "reg-id": "1",
                "+sip.ice": "",
            },
            "path_headers": ["<sip:abcdefgh@bono-1.cw-ngv.com;lr;ob>"],
            "private_id": "6505550231@cw-ngv.com",
            "emergency_reg": False,
            "timer_id": "Deprecated",
        },
        "sip:6505550231@192.91.191.30:5060": {
            "uri": "sip:6505550231@192.91.191.30:5060",
            "cid": "second-call-id",
            "cseq": 9,
            "expires": 1700000100,
            "priority": 500,
            "params": {},
            "path_headers": [],
            "private_id": "6505550231@cw-ngv.com",
            "emergency_reg": True,
        },
    },
    "subscriptions": {
        "2d5f9a1c": {
            "req_uri": "sip:6505550231@192.91.191.29:59934;transport=tcp;ob",
            "from_uri": "<sip:6505550231@cw-ngv.com>",
            "from_tag": "a1b2c3",
            "to_uri": "<sip:6505550231@cw-ngv.com>",
            "to_tag": "2d5f9a1c",
            "cid": "subscribe-call-id",
            "routes": ["<sip:abcdefgh@bono-1.cw-ngv.com;lr;ob>"],
            "expires": 1700000200,
            "refreshed": True,
        }
    },
    "associated-uris": {
        "uris": [
            {"uri": "sip:6505550231@cw-ngv.com", "barring": False},
            {"uri": "tel:+16505550231", "barring": True},
        ],
        "wildcard-mapping": {
            "distinct": "sip:6505550231@cw-ngv.com",
            "wildcard": "sip:650555!.*!@cw-ngv.com",
        },
    },
    "notify_cseq": 7,
    "timer_id": "4e0b1c7a9d2f4e6b8a0c:1",
    "scscf-uri": "sip:scscf.sprout.cw-ngv.com:5054;transport=tcp",
    "s4-version": {"major": 1},
}

#: An IMPI record as sprout's impistore.cpp wrote it (spec §3.2), with an unknown member.
CLEARWATER_IMPI: dict[str, Any] = {
    "authChallenges": [
        {
            "type": "digest",
            "nonce": "7a3f9c21d4e8b6a0",
            "nc": 1,
            "expires": 1700000040,
            "correlator": "c0rr3l4t0r",
            "scscf-uri": "sip:scscf.sprout.cw-ngv.com:5054;transport=tcp",
            "timer_id": "auth-timer",
            "realm": "cw-ngv.com",
            "qop": "auth",
            "ha1": "0123456789abcdef0123456789abcdef",
        },
        {
            "type": "aka",
            "nonce": "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=",
            "nc": 2,
            "expires": 1700000030,
            "correlator": "",
            "scscf-uri": "",
            "timer_id": "",
            "response": "a54211d5e3ba50bf",
            "impu": "sip:6505550231@cw-ngv.com",
        },
    ]
}


def test_clearwater_aor_parses_and_writes_back_unchanged() -> None:
    aor = AoR.from_json(records.loads(json.dumps(CLEARWATER_AOR).encode(), "AoR"))
    assert [k for k, _ in aor.bindings] == list(CLEARWATER_AOR["bindings"])
    first = aor.bindings[0][1]
    assert first.params == (
        ("+sip.instance", '"<urn:uuid:00000000-0000-0000-0000-b4dd32817622>"'),
        ("reg-id", "1"),
        ("+sip.ice", ""),
    )
    assert first.extra == (("timer_id", "Deprecated"),)
    assert aor.bindings[1][1].emergency_reg is True
    assert aor.subscriptions[0][1].extra == (("refreshed", True),)
    assert aor.associated_uris == (
        AssociatedUri("sip:6505550231@cw-ngv.com"),
        AssociatedUri("tel:+16505550231", barring=True),
    )
    assert aor.wildcard_mapping == ("sip:6505550231@cw-ngv.com", "sip:650555!.*!@cw-ngv.com")
    assert (aor.notify_cseq, aor.scscf_uri) == (7, CLEARWATER_AOR["scscf-uri"])
    assert aor.extra == (("s4-version", {"major": 1}),)
    assert aor.expiry() == 1700000300
    assert json.loads(records.dumps(aor.to_json())) == CLEARWATER_AOR


def test_clearwater_impi_record_parses_and_writes_back_unchanged() -> None:
    challenges = challenges_from_json(records.loads(json.dumps(CLEARWATER_IMPI).encode(), "IMPI"))
    digest, aka = challenges
    assert (digest.type, digest.realm, digest.qop, digest.ha1) == (
        "digest",
        "cw-ngv.com",
        "auth",
        "0123456789abcdef0123456789abcdef",
    )
    assert (aka.type, aka.nc, aka.response) == ("aka", 2, "a54211d5e3ba50bf")
    assert aka.extra == (("impu", "sip:6505550231@cw-ngv.com"),)
    assert json.loads(records.dumps(challenges_to_json(challenges))) == CLEARWATER_IMPI


def test_minimal_records_take_clearwater_defaults() -> None:
    aor = AoR.from_json({})
    assert aor == AoR()
    assert aor.expiry() is None
    binding = Binding.from_json({"uri": "sip:a@192.0.2.1", "expires": 5})
    assert binding == Binding(uri="sip:a@192.0.2.1", cid="", cseq=0, expires=5)
    assert Challenge.from_json({"type": "digest"}).nc == 1
    assert challenges_from_json({}) == ()


def test_dumps_is_compact_and_keeps_member_order() -> None:
    assert records.dumps({"b": 1, "a": [1, {"c": None}]}) == b'{"b":1,"a":[1,{"c":null}]}'


def test_aor_to_json_without_wildcard_mapping_omits_it() -> None:
    body = AoR(associated_uris=(AssociatedUri("sip:a@x"),)).to_json()
    assert body["associated-uris"] == {"uris": [{"uri": "sip:a@x", "barring": False}]}


def test_challenge_to_json_writes_only_its_type_s_members() -> None:
    digest = Challenge("digest", "n", 10, realm="r", qop="auth", ha1="h", response="ignored")
    aka = Challenge("aka", "n", 10, realm="ignored", response="xres")
    assert set(digest.to_json()) - set(aka.to_json()) == {"realm", "qop", "ha1"}
    assert "response" not in digest.to_json()
    assert aka.to_json()["response"] == "xres"


def test_expiry_and_without_expired() -> None:
    aor = AoR(
        bindings=(("a", Binding("sip:a@x", "c", 1, 100)), ("b", Binding("sip:b@x", "c", 1, 200))),
        subscriptions=(("t", Subscription("r", "f", "ft", "t", "tt", "c", expires=300)),),
    )
    assert aor.expiry() == 300
    live = aor.without_expired(200)
    assert [k for k, _ in live.bindings] == []
    assert [k for k, _ in live.subscriptions] == ["t"]
    assert [k for k, _ in aor.without_expired(150).bindings] == ["b"]
    assert live.associated_uris == aor.associated_uris


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"\xff\xfe\x00garbage", b"[1, 2]", b'"text"', b"null", b"1e5", b"{'a': 1}"],
)
def test_loads_refuses_what_is_not_a_json_object(data: bytes) -> None:
    with pytest.raises(ParseError) as e:
        records.loads(data, "AoR")
    assert e.value.reason.startswith("Bad AoR JSON")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"bindings": []},
        {"bindings": {"b": "not an object"}},
        {"bindings": {"b": {"cseq": "3"}}},
        {"bindings": {"b": {"expires": 1.5}}},
        {"bindings": {"b": {"expires": True}}},
        {"bindings": {"b": {"params": {"reg-id": 1}}}},
        {"bindings": {"b": {"params": []}}},
        {"bindings": {"b": {"path_headers": "<sip:p>"}}},
        {"bindings": {"b": {"path_headers": [1]}}},
        {"bindings": {"b": {"emergency_reg": "false"}}},
        {"subscriptions": {"t": {"routes": [None]}}},
        {"subscriptions": {"t": {"expires": "soon"}}},
        {"associated-uris": []},
        {"associated-uris": {"uris": {}}},
        {"associated-uris": {"uris": ["sip:a@x"]}},
        {"associated-uris": {"uris": [{"uri": "sip:a@x", "barring": 0}]}},
        {"associated-uris": {"wildcard-mapping": {"distinct": 1}}},
        {"notify_cseq": None},
        {"notify_cseq": "7"},
        {"timer_id": 5},
        {"scscf-uri": ["sip:s"]},
    ],
)
def test_malformed_aor_raises_parse_error(body: Any) -> None:
    with pytest.raises(ParseError):
        AoR.from_json(body)


@pytest.mark.parametrize(
    "body",
    [
        {"authChallenges": {}},
        {"authChallenges": "none"},
        {"authChallenges": ["x"]},
        {"authChallenges": [{}]},
        {"authChallenges": [{"type": "AKAv1"}]},
        {"authChallenges": [{"type": "digest", "nc": "1"}]},
        {"authChallenges": [{"type": "digest", "expires": None, "nonce": 5}]},
        {"authChallenges": [{"type": "aka", "response": 1234}]},
    ],
)
def test_malformed_impi_record_raises_parse_error(body: dict[str, Any]) -> None:
    with pytest.raises(ParseError):
        challenges_from_json(body)


# --------------------------------------------------------------------------- properties

_text = st.text(max_size=12)
_json_scalar = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text
_json = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


def _extra(known: tuple[str, ...]) -> st.SearchStrategy[tuple[tuple[str, Any], ...]]:
    keys = _text.filter(lambda k: k not in known)
    return st.dictionaries(keys, _json, max_size=2).map(lambda d: tuple(d.items()))


_epoch = st.integers(0, 2**40)
_bindings = st.builds(
    Binding,
    uri=_text,
    cid=_text,
    cseq=st.integers(0, 2**31),
    expires=_epoch,
    priority=st.integers(0, 1000),
    params=st.dictionaries(_text, _text, max_size=3).map(lambda d: tuple(d.items())),
    path_headers=st.lists(_text, max_size=2).map(tuple),
    private_id=_text,
    emergency_reg=st.booleans(),
    extra=_extra(records._BINDING_KEYS),
)
_subscriptions = st.builds(
    Subscription,
    req_uri=_text,
    from_uri=_text,
    from_tag=_text,
    to_uri=_text,
    to_tag=_text,
    cid=_text,
    routes=st.lists(_text, max_size=2).map(tuple),
    expires=_epoch,
    extra=_extra(records._SUBSCRIPTION_KEYS),
)
_aors = st.builds(
    AoR,
    bindings=st.dictionaries(_text, _bindings, max_size=3).map(lambda d: tuple(d.items())),
    subscriptions=st.dictionaries(_text, _subscriptions, max_size=2).map(
        lambda d: tuple(d.items())
    ),
    associated_uris=st.lists(st.builds(AssociatedUri, _text, st.booleans()), max_size=3).map(tuple),
    wildcard_mapping=st.none() | st.tuples(_text, _text),
    notify_cseq=st.integers(0, 2**31),
    timer_id=_text,
    scscf_uri=_text,
    extra=_extra(records._AOR_KEYS),
)


@st.composite
def _challenges(draw: st.DrawFn) -> Challenge:
    kind = draw(st.sampled_from(["digest", "aka"]))
    challenge = Challenge(
        type=kind,
        nonce=draw(_text),
        expires=draw(_epoch),
        nc=draw(st.integers(0, 2**31)),
        correlator=draw(_text),
        scscf_uri=draw(_text),
        timer_id=draw(_text),
        extra=draw(_extra(records._CHALLENGE_KEYS)),
    )
    if kind == "aka":
        return attrs.evolve(challenge, response=draw(_text))
    return attrs.evolve(challenge, realm=draw(_text), qop=draw(_text), ha1=draw(_text))


@given(_aors)
def test_aor_round_trips_through_json_bytes(aor: AoR) -> None:
    assert AoR.from_json(records.loads(records.dumps(aor.to_json()), "AoR")) == aor


@given(st.lists(_challenges(), max_size=4).map(tuple))
def test_challenges_round_trip_through_json_bytes(challenges: tuple[Challenge, ...]) -> None:
    data = records.dumps(challenges_to_json(challenges))
    assert challenges_from_json(records.loads(data, "IMPI")) == challenges


@given(st.dictionaries(st.sampled_from([*records._AOR_KEYS, "x"]), _json, max_size=4))
def test_arbitrary_aor_json_parses_or_raises_parse_error(body: dict[str, Any]) -> None:
    with contextlib.suppress(ParseError):
        AoR.from_json(body)


@given(st.lists(st.dictionaries(st.sampled_from([*records._CHALLENGE_KEYS, "x"]), _json)))
def test_arbitrary_challenge_json_parses_or_raises_parse_error(items: list[Any]) -> None:
    with contextlib.suppress(ParseError):
        challenges_from_json({"authChallenges": items})


@given(st.binary(max_size=64))
def test_arbitrary_bytes_load_or_raise_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        records.loads(data, "AoR")


# --------------------------------------------------------------------------- subscriber records


def test_subscriber_records_are_immutable_values() -> None:
    aka = AkaCredentials(k=b"k" * 16, opc=b"o" * 16)
    assert (aka.amf, aka.sqn) == (b"\x80\x00", 0)
    private = PrivateIdentity("alice@example.com", "example.com", aka=aka)
    assert (private.digest_ha1, private.plaintext_password) == ("", None)
    assert private == PrivateIdentity("alice@example.com", "example.com", aka=aka)
    assert hash(private) == hash(PrivateIdentity("alice@example.com", "example.com", aka=aka))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        private.realm = "other"  # type: ignore[misc]
    public = PublicIdentity("sip:a@x", "irs", "sp", "<PublicIdentity/>")
    assert (public.barred, public.wildcard) == (False, None)
    assert ServiceProfile("irs", "sp").ifcs_xml == ""
    state = RegistrationState()
    assert (state.state, state.scscf, state.impi, state.updated) == (
        RegState.NOT_REGISTERED,
        "",
        "",
        0.0,
    )
    assert [s.value for s in RegState] == ["REGISTERED", "UNREGISTERED", "NOT_REGISTERED"]
