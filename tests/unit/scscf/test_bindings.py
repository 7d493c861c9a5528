"""The registrar's binding rules (clearwater.scscf.bindings): RFC 3261 §10.3, RFC 5626,
RFC 5627, RFC 3327 and spec §3.3 / §3.4, on REGISTERs parsed from wire text."""

from __future__ import annotations

from typing import Optional

import attrs
import pytest

from clearwater.scscf.bindings import (
    BindingChange,
    RegisterError,
    RegisterKind,
    RegisterOutcome,
    apply_register,
    binding_id_of,
    contact_headers,
    drop_expired,
    remove_bindings,
    requires_outbound,
)
from clearwater.scscf.reginfo import ContactEvent
from clearwater.sip import NameAddr, Request, parse_message
from clearwater.sip import headers as h
from clearwater.stores.records import AoR, AssociatedUri, Binding, Subscription

NOW = 1_700_000_000
MAX = 300
IMPI = "alice@example.com"
AOR_URI = "sip:alice@example.com"
UUID = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
INSTANCE = '"<' + UUID + '>"'
UE = "sip:alice@192.0.2.10:5060;transport=tcp;ob"


def register(
    *contacts: str,
    expires: Optional[str] = None,
    call_id: str = "reg-1@192.0.2.10",
    cseq: int = 1,
    paths: tuple[str, ...] = (),
    supported: Optional[str] = None,
    to: str = "<sip:alice@example.com>",
) -> Request:
    lines = [
        "REGISTER sip:example.com SIP/2.0",
        "Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK-" + str(cseq),
        "Max-Forwards: 70",
        "From: <sip:alice@example.com>;tag=ue1",
        "To: " + to,
        "Call-ID: " + call_id,
        "CSeq: " + str(cseq) + " REGISTER",
    ]
    lines += ["Path: " + p for p in paths]
    lines += ["Contact: " + c for c in contacts]
    if expires is not None:
        lines.append("Expires: " + expires)
    if supported is not None:
        lines.append("Supported: " + supported)
    lines.append("Content-Length: 0")
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def apply(
    aor: Optional[AoR], request: Request, *, now: int = NOW, min_expires: int = 0
) -> RegisterOutcome:
    return apply_register(
        aor, request, now=now, reg_max_expires=MAX, private_id=IMPI, min_expires=min_expires
    )


def error_of(aor: Optional[AoR], request: Request, **kwargs: int) -> RegisterError:
    with pytest.raises(RegisterError) as info:
        apply(aor, request, **kwargs)
    return info.value


def only(aor: AoR) -> tuple[str, Binding]:
    assert len(aor.bindings) == 1
    return aor.bindings[0]


def binding(
    uri: str = UE,
    *,
    expires: int = NOW + 100,
    cid: str = "reg-1@192.0.2.10",
    cseq: int = 1,
    params: tuple[tuple[str, str], ...] = (),
    private_id: str = IMPI,
    emergency: bool = False,
    priority: int = 0,
) -> Binding:
    return Binding(
        uri=uri,
        cid=cid,
        cseq=cseq,
        expires=expires,
        priority=priority,
        params=params,
        private_id=private_id,
        emergency_reg=emergency,
    )


# ------------------------------------------------------------------ binding ids (spec §3.3 step 4)


def test_binding_id_is_instance_and_reg_id() -> None:
    contact = NameAddr.parse("<" + UE + ">;+sip.instance=" + INSTANCE + ";reg-id=1")
    assert binding_id_of(contact) == "<" + UUID + ">:1"


def test_binding_id_is_instance_alone_without_reg_id() -> None:
    contact = NameAddr.parse("<" + UE + ">;+sip.instance=" + INSTANCE)
    assert binding_id_of(contact) == "<" + UUID + ">"


def test_binding_id_of_emergency_contact_has_sos_prefix() -> None:
    contact = NameAddr.parse("<sip:alice@192.0.2.10;sos>;+sip.instance=" + INSTANCE + ";reg-id=2")
    assert binding_id_of(contact) == "sos<" + UUID + ">:2"


def test_binding_id_without_instance_is_the_uri_text() -> None:
    contact = NameAddr.parse('"Alice" <' + UE + ">;reg-id=1;expires=60")
    assert binding_id_of(contact) == UE


# ------------------------------------------------------------------ a first REGISTER


def test_initial_register_stores_clearwater_binding_fields() -> None:
    request = register(
        "<" + UE + ">;+sip.instance=" + INSTANCE + ";reg-id=1;q=0.5;expires=200;+sip.ice;"
        '+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"',
        paths=("<sip:token@bono.example.com:5058;transport=TCP;lr;ob>",),
    )
    outcome = apply(None, request)
    binding_id, stored = only(outcome.aor)
    assert binding_id == "<" + UUID + ">:1"
    assert stored == Binding(
        uri=UE,
        cid="reg-1@192.0.2.10",
        cseq=1,
        expires=NOW + 200,
        priority=500,
        params=(
            ("+sip.instance", INSTANCE),
            ("reg-id", "1"),
            ("+sip.ice", ""),
            ("+g.3gpp.icsi-ref", '"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"'),
        ),
        path_headers=("<sip:token@bono.example.com:5058;transport=TCP;lr;ob>",),
        private_id=IMPI,
        emergency_reg=False,
    )
    assert stored.to_json()["params"] == {
        "+sip.instance": '"<' + UUID + '>"',
        "reg-id": "1",
        "+sip.ice": "",
        "+g.3gpp.icsi-ref": '"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"',
    }
    assert outcome.kind is RegisterKind.INITIAL
    assert outcome.changes == (BindingChange(binding_id, ContactEvent.CREATED, stored),)


def test_gruu_expires_and_q_params_are_not_stored() -> None:
    request = register(
        "<" + UE + '>;expires=60;q=1;pub-gruu="sip:x@y;gr=1";temp-gruu="sip:t@y;gr";foo=bar'
    )
    _, stored = only(apply(None, request).aor)
    assert stored.params == (("foo", "bar"),)
    assert stored.priority == 1000
    assert stored.expires == NOW + 60


def test_contact_uri_round_trips_exactly() -> None:
    uri = "sips:alice@[2001:db8::1]:5071;transport=tls;ob;X-Odd=%41b"
    outcome = apply(None, register('"Alice Smith" <' + uri + ">;expires=60"))
    binding_id, stored = only(outcome.aor)
    assert binding_id == uri
    assert stored.uri == uri
    assert contact_headers(outcome.aor, aor_uri=AOR_URI, now=NOW, gruu=False) == [
        "<" + uri + ">;expires=60"
    ]


def test_every_path_value_is_stored_in_order() -> None:
    request = register(
        "<" + UE + ">",
        paths=(
            "<sip:p1.example.com;lr;ob>, <sip:p2.example.com;lr>",
            "<sip:p3.example.com;lr>",
        ),
    )
    _, stored = only(apply(None, request).aor)
    assert stored.path_headers == (
        "<sip:p1.example.com;lr;ob>",
        "<sip:p2.example.com;lr>",
        "<sip:p3.example.com;lr>",
    )


def test_bad_path_is_400() -> None:
    error = error_of(None, register("<" + UE + ">", paths=("sip:p1.example.com;lr",)))
    assert (error.status, error.reason) == (400, "Bad Path")


def test_several_contacts_make_several_bindings() -> None:
    request = register("<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>;expires=30", expires="120")
    outcome = apply(None, request)
    assert [(k, b.expires) for k, b in outcome.aor.bindings] == [
        ("sip:a@192.0.2.1", NOW + 120),
        ("sip:b@192.0.2.2", NOW + 30),
    ]
    assert [c.event for c in outcome.changes] == [ContactEvent.CREATED, ContactEvent.CREATED]


def test_repeated_binding_in_one_request_takes_the_first() -> None:
    request = register("<sip:a@192.0.2.1>;expires=100", "<sip:a@192.0.2.1>;expires=50")
    outcome = apply(None, request)
    assert only(outcome.aor)[1].expires == NOW + 100
    assert len(outcome.changes) == 1


def test_non_sip_contacts_are_ignored() -> None:
    outcome = apply(None, register("<tel:+15551234567>", "<sip:a@192.0.2.1>"))
    assert [k for k, _ in outcome.aor.bindings] == ["sip:a@192.0.2.1"]


# ------------------------------------------------------------------ To URI


def test_to_uri_must_be_sip_or_tel() -> None:
    error = error_of(None, register("<" + UE + ">", to="<mailto:alice@example.com>"))
    assert (error.status, error.reason, error.headers) == (404, "Not Found", ())


def test_tel_and_sips_to_uris_are_accepted() -> None:
    assert apply(None, register("<" + UE + ">", to="<tel:+15551234567>")).aor.bindings
    assert apply(None, register("<" + UE + ">", to="<sips:alice@example.com>")).aor.bindings


# ------------------------------------------------------------------ expiry


def test_expiry_from_contact_param_beats_expires_header() -> None:
    _, stored = only(apply(None, register("<" + UE + ">;expires=30", expires="100")).aor)
    assert stored.expires == NOW + 30


def test_expiry_from_expires_header() -> None:
    _, stored = only(apply(None, register("<" + UE + ">", expires="100")).aor)
    assert stored.expires == NOW + 100


def test_expiry_defaults_to_reg_max_expires() -> None:
    _, stored = only(apply(None, register("<" + UE + ">")).aor)
    assert stored.expires == NOW + MAX


def test_expiry_is_clamped_to_reg_max_expires() -> None:
    outcome = apply(None, register("<sip:a@192.0.2.1>;expires=7200", "<sip:b@192.0.2.2>"))
    assert [b.expires for _, b in outcome.aor.bindings] == [NOW + MAX, NOW + MAX]
    outcome = apply(None, register("<" + UE + ">", expires="3600"))
    assert only(outcome.aor)[1].expires == NOW + MAX


def test_expiry_below_min_expires_is_423_with_min_expires() -> None:
    error = error_of(None, register("<" + UE + ">;expires=30"), min_expires=60)
    assert (error.status, error.reason) == (423, "Interval Too Brief")
    assert error.headers == (("Min-Expires", "60"),)
    error = error_of(None, register("<" + UE + ">", expires="59"), min_expires=60)
    assert error.status == 423


def test_min_expires_allows_equal_zero_and_is_off_by_default() -> None:
    assert only(apply(None, register("<" + UE + ">;expires=60"), min_expires=60).aor)
    assert apply(None, register("<" + UE + ">;expires=0"), min_expires=60).aor.bindings == ()
    assert only(apply(None, register("<" + UE + ">;expires=1")).aor)[1].expires == NOW + 1


@pytest.mark.parametrize(
    ("contact", "expires", "reason"),
    [
        ("<" + UE + ">;expires=soon", None, "Bad Contact expires"),
        ("<" + UE + ">;expires=99999999999", None, "Bad Contact expires"),
        ("<" + UE + ">", "-1", "Bad Expires"),
        ("<" + UE + ">", "ten", "Bad Expires"),
        ("<" + UE + ">;q=2", None, "Bad Contact q"),
    ],
)
def test_malformed_expiry_or_q_is_400(contact: str, expires: Optional[str], reason: str) -> None:
    error = error_of(None, register(contact, expires=expires))
    assert (error.status, error.reason) == (400, reason)


# ------------------------------------------------------------------ re-registration and events


def stored_aor(*bindings: tuple[str, Binding]) -> AoR:
    return AoR(
        bindings=tuple(bindings),
        subscriptions=(
            ("tag1", Subscription("sip:ue", "sip:a", "f", "sip:a", "tag1", "c", (), NOW + 99)),
        ),
        associated_uris=(AssociatedUri(AOR_URI),),
        notify_cseq=7,
        timer_id="timer-1",
        scscf_uri="sip:scscf.example.com:5054;transport=tcp",
    )


def test_reregister_refreshes_and_keeps_other_record_fields() -> None:
    old = stored_aor((UE, binding(expires=NOW + 100, cseq=1)))
    outcome = apply(old, register("<" + UE + ">;expires=200", cseq=2))
    _, new = only(outcome.aor)
    assert (new.expires, new.cseq) == (NOW + 200, 2)
    assert outcome.kind is RegisterKind.REREGISTER
    assert outcome.changes == (BindingChange(UE, ContactEvent.REFRESHED, new),)
    assert outcome.aor == attrs.evolve(old, bindings=((UE, new),))


def test_refresh_keeps_unknown_json_members_of_the_binding() -> None:
    old_binding = attrs.evolve(binding(), extra=(("paths", ["<sip:old>"]),))
    outcome = apply(stored_aor((UE, old_binding)), register("<" + UE + ">", cseq=2))
    assert only(outcome.aor)[1].to_json()["paths"] == ["<sip:old>"]


def test_same_expiry_is_refreshed_and_earlier_is_shortened() -> None:
    old = stored_aor((UE, binding(expires=NOW + 100)))
    outcome = apply(old, register("<" + UE + ">;expires=100", cseq=2))
    assert outcome.changes[0].event is ContactEvent.REFRESHED
    outcome = apply(old, register("<" + UE + ">;expires=99", cseq=2))
    assert outcome.changes[0].event is ContactEvent.SHORTENED
    assert only(outcome.aor)[1].expires == NOW + 99


def test_new_binding_added_to_existing_ones_keeps_their_order() -> None:
    old = stored_aor(("sip:a@192.0.2.1", binding("sip:a@192.0.2.1")))
    outcome = apply(old, register("<sip:b@192.0.2.2>", cseq=2))
    assert [k for k, _ in outcome.aor.bindings] == ["sip:a@192.0.2.1", "sip:b@192.0.2.2"]
    assert outcome.kind is RegisterKind.REREGISTER
    assert [c.event for c in outcome.changes] == [ContactEvent.CREATED]


def test_instance_binding_is_updated_when_the_contact_uri_changes() -> None:
    params = (("+sip.instance", INSTANCE), ("reg-id", "1"))
    old = stored_aor(("<" + UUID + ">:1", binding("sip:alice@192.0.2.10:5060", params=params)))
    request = register(
        "<sip:alice@198.51.100.7:6000>;+sip.instance=" + INSTANCE + ";reg-id=1", cseq=2
    )
    binding_id, new = only(apply(old, request).aor)
    assert (binding_id, new.uri) == ("<" + UUID + ">:1", "sip:alice@198.51.100.7:6000")


@pytest.mark.parametrize("cseq", [1, 0])
def test_same_call_id_and_cseq_not_higher_fails_with_500(cseq: int) -> None:
    old = stored_aor((UE, binding(cseq=1)))
    error = error_of(old, register("<" + UE + ">", cseq=cseq))
    assert (error.status, error.reason) == (500, "Out of order REGISTER")


def test_stale_contact_fails_the_whole_request() -> None:
    old = stored_aor((UE, binding(cseq=5)))
    request = register("<sip:new@192.0.2.99>", "<" + UE + ">;expires=0", cseq=5)
    assert error_of(old, request).status == 500


def test_new_call_id_may_use_a_lower_cseq() -> None:
    old = stored_aor((UE, binding(cseq=9)))
    outcome = apply(old, register("<" + UE + ">", cseq=1, call_id="rebooted@192.0.2.10"))
    _, new = only(outcome.aor)
    assert (new.cid, new.cseq) == ("rebooted@192.0.2.10", 1)


def test_expiry_zero_removes_the_binding() -> None:
    old_binding = binding("sip:a@192.0.2.1")
    old = stored_aor(("sip:a@192.0.2.1", old_binding), (UE, binding()))
    outcome = apply(old, register("<sip:a@192.0.2.1>;expires=0", cseq=2))
    assert [k for k, _ in outcome.aor.bindings] == [UE]
    assert outcome.changes == (
        BindingChange("sip:a@192.0.2.1", ContactEvent.UNREGISTERED, old_binding),
    )
    assert outcome.kind is RegisterKind.REREGISTER


def test_removing_the_last_binding_is_deregister() -> None:
    old = stored_aor((UE, binding()))
    outcome = apply(old, register("<" + UE + ">", expires="0", cseq=2))
    assert outcome.aor.bindings == ()
    assert outcome.aor.subscriptions == old.subscriptions
    assert outcome.kind is RegisterKind.DEREGISTER
    assert [c.event for c in outcome.changes] == [ContactEvent.UNREGISTERED]


def test_removing_an_unknown_binding_changes_nothing() -> None:
    old = stored_aor((UE, binding()))
    outcome = apply(old, register("<sip:other@192.0.2.3>;expires=0", cseq=2))
    assert outcome.aor == old
    assert outcome.changes == ()
    assert outcome.kind is RegisterKind.REREGISTER


# ------------------------------------------------------------------ Contact: *


def test_star_with_expires_zero_removes_every_normal_binding() -> None:
    a = binding("sip:a@192.0.2.1")
    sos = binding("sip:e@192.0.2.5;sos", emergency=True)
    old = stored_aor(("sip:a@192.0.2.1", a), ("sip:e@192.0.2.5;sos", sos), (UE, binding()))
    outcome = apply(old, register("*", expires="0", cseq=2))
    assert outcome.aor.bindings == (("sip:e@192.0.2.5;sos", sos),)
    assert [(c.binding_id, c.event) for c in outcome.changes] == [
        ("sip:a@192.0.2.1", ContactEvent.UNREGISTERED),
        (UE, ContactEvent.UNREGISTERED),
    ]
    assert outcome.kind is RegisterKind.REREGISTER


def test_star_removing_everything_is_deregister() -> None:
    outcome = apply(stored_aor((UE, binding())), register("*", expires="0", cseq=2))
    assert outcome.aor.bindings == ()
    assert outcome.kind is RegisterKind.DEREGISTER


@pytest.mark.parametrize(
    ("contacts", "expires", "reason"),
    [
        (("*",), "300", "Contact * needs Expires: 0"),
        (("*",), None, "Contact * needs Expires: 0"),
        (("*", "<" + UE + ">"), "0", "Contact * must be the only Contact"),
        (("<" + UE + ">", "*"), "0", "Contact * must be the only Contact"),
    ],
)
def test_star_misuse_is_400(contacts: tuple[str, ...], expires: Optional[str], reason: str) -> None:
    error = error_of(stored_aor((UE, binding())), register(*contacts, expires=expires, cseq=2))
    assert (error.status, error.reason) == (400, reason)


# ------------------------------------------------------------------ emergency bindings


SOS_URI = "sip:alice@192.0.2.10:5060;sos"
SOS_CONTACT = "<" + SOS_URI + ">;+sip.instance=" + INSTANCE + ";reg-id=1"
SOS_ID = "sos<" + UUID + ">:1"


def test_emergency_binding_is_flagged_and_prefixed() -> None:
    binding_id, stored = only(apply(None, register(SOS_CONTACT + ";expires=200")).aor)
    assert binding_id == SOS_ID
    assert stored.emergency_reg is True
    assert stored.uri == SOS_URI


def test_emergency_binding_is_not_shortened() -> None:
    old = stored_aor((SOS_ID, binding(SOS_URI, expires=NOW + 200, emergency=True)))
    outcome = apply(old, register(SOS_CONTACT + ";expires=50", cseq=2, call_id="c2"))
    _, new = only(outcome.aor)
    assert new.expires == NOW + 200
    assert (new.cid, new.cseq) == ("c2", 2)
    assert outcome.changes[0].event is ContactEvent.REFRESHED


def test_emergency_binding_may_be_extended() -> None:
    old = stored_aor((SOS_ID, binding(SOS_URI, expires=NOW + 20, emergency=True)))
    outcome = apply(old, register(SOS_CONTACT + ";expires=250", cseq=2))
    assert only(outcome.aor)[1].expires == NOW + 250


def test_register_that_only_deregisters_emergency_bindings_is_501() -> None:
    old = stored_aor((SOS_ID, binding(SOS_URI, emergency=True)))
    error = error_of(old, register(SOS_CONTACT + ";expires=0", cseq=2))
    assert (error.status, error.reason) == (501, "Not Implemented")


def test_emergency_deregister_with_a_non_sip_contact_is_not_501() -> None:
    sos = binding(SOS_URI, expires=NOW + 200, emergency=True)
    request = register(SOS_CONTACT + ";expires=0", "<tel:+1555>", cseq=2)
    outcome = apply(stored_aor((SOS_ID, sos)), request)
    assert only(outcome.aor)[1].expires == NOW + 200
    assert outcome.kind is RegisterKind.REREGISTER


def test_emergency_contact_with_expiry_zero_among_others_is_kept() -> None:
    sos = binding(SOS_URI, expires=NOW + 200, emergency=True)
    old = stored_aor((SOS_ID, sos))
    outcome = apply(old, register(SOS_CONTACT + ";expires=0", "<" + UE + ">", cseq=2))
    assert [(k, b.expires) for k, b in outcome.aor.bindings] == [
        (SOS_ID, NOW + 200),
        (UE, NOW + MAX),
    ]
    assert [c.event for c in outcome.changes] == [ContactEvent.REFRESHED, ContactEvent.CREATED]


# ------------------------------------------------------------------ fetch, expiry, kinds


def test_register_without_contact_is_fetch() -> None:
    old = stored_aor((UE, binding()))
    outcome = apply(old, register(cseq=2))
    assert outcome.kind is RegisterKind.FETCH
    assert outcome.aor == old
    assert outcome.changes == ()


def test_fetch_of_an_empty_aor() -> None:
    outcome = apply(None, register())
    assert (outcome.kind, outcome.aor, outcome.changes) == (RegisterKind.FETCH, AoR(), ())


def test_expired_bindings_are_dropped_and_register_is_initial() -> None:
    gone = binding("sip:a@192.0.2.1", expires=NOW)
    old = stored_aor(("sip:a@192.0.2.1", gone))
    outcome = apply(old, register("<" + UE + ">", cseq=2))
    assert [k for k, _ in outcome.aor.bindings] == [UE]
    assert [(c.binding_id, c.event) for c in outcome.changes] == [
        ("sip:a@192.0.2.1", ContactEvent.EXPIRED),
        (UE, ContactEvent.CREATED),
    ]
    assert outcome.changes[0].binding == gone
    assert outcome.kind is RegisterKind.INITIAL


def test_an_expired_binding_comes_back_as_created_even_with_the_same_cseq() -> None:
    old = stored_aor((UE, binding(expires=NOW - 5, cseq=3)))
    outcome = apply(old, register("<" + UE + ">", cseq=3))
    assert [c.event for c in outcome.changes] == [ContactEvent.EXPIRED, ContactEvent.CREATED]


def test_drop_expired() -> None:
    a, b = binding("sip:a@192.0.2.1", expires=NOW), binding("sip:b@192.0.2.2", expires=NOW + 1)
    old = stored_aor(("sip:a@192.0.2.1", a), ("sip:b@192.0.2.2", b))
    aor, changes = drop_expired(old, NOW)
    assert aor == attrs.evolve(old, bindings=(("sip:b@192.0.2.2", b),))
    assert changes == (BindingChange("sip:a@192.0.2.1", ContactEvent.EXPIRED, a),)
    assert drop_expired(aor, NOW) == (aor, ())


def test_remove_bindings_all_or_by_private_id() -> None:
    a = binding("sip:a@192.0.2.1", private_id="alice@example.com")
    b = binding("sip:b@192.0.2.2", private_id="alice2@example.com")
    old = stored_aor(("sip:a@192.0.2.1", a), ("sip:b@192.0.2.2", b))
    aor, changes = remove_bindings(old, private_id="alice2@example.com")
    assert aor.bindings == (("sip:a@192.0.2.1", a),)
    assert changes == (BindingChange("sip:b@192.0.2.2", ContactEvent.DEACTIVATED, b),)
    aor, changes = remove_bindings(old, event=ContactEvent.UNREGISTERED)
    assert aor == attrs.evolve(old, bindings=())
    assert [(c.binding_id, c.event) for c in changes] == [
        ("sip:a@192.0.2.1", ContactEvent.UNREGISTERED),
        ("sip:b@192.0.2.2", ContactEvent.UNREGISTERED),
    ]


# ------------------------------------------------------------------ the 200 OK


def test_contact_headers_carry_remaining_expiry_q_and_params() -> None:
    request = register(
        "<" + UE + ">;+sip.instance=" + INSTANCE + ";reg-id=1;+sip.ice;q=0.5;expires=200",
        "<sip:b@192.0.2.2>;q=1",
        "<sip:c@192.0.2.3>;q=0.05",
        "<sip:d@192.0.2.4>",
    )
    aor = apply(None, request).aor
    assert contact_headers(aor, aor_uri=AOR_URI, now=NOW + 50, gruu=False) == [
        "<" + UE + ">;expires=150;q=0.5;+sip.instance=" + INSTANCE + ";reg-id=1;+sip.ice",
        "<sip:b@192.0.2.2>;expires=250;q=1",
        "<sip:c@192.0.2.3>;expires=250;q=0.05",
        "<sip:d@192.0.2.4>;expires=250",
    ]


def test_contact_headers_add_pub_gruu_when_supported() -> None:
    request = register("<" + UE + ">;+sip.instance=" + INSTANCE + ";reg-id=1", "<sip:b@192.0.2.2>")
    aor = apply(None, request).aor
    assert contact_headers(aor, aor_uri=AOR_URI, now=NOW, gruu=True) == [
        "<" + UE + ">;expires=300;+sip.instance=" + INSTANCE + ";reg-id=1"
        ';pub-gruu="sip:alice@example.com;gr=' + UUID + '"',
        "<sip:b@192.0.2.2>;expires=300",
    ]
    assert contact_headers(aor, aor_uri="tel:+15551234567", now=NOW, gruu=True) == [
        "<" + UE + ">;expires=300;+sip.instance=" + INSTANCE + ";reg-id=1",
        "<sip:b@192.0.2.2>;expires=300",
    ]


def test_pub_gruu_escapes_characters_not_allowed_in_a_uri_parameter() -> None:
    stored = binding(params=(("+sip.instance", '"<urn:x:a b;c>"'),), expires=NOW + 10)
    aor = AoR(bindings=(("x", stored),))
    assert contact_headers(aor, aor_uri=AOR_URI, now=NOW, gruu=True) == [
        "<" + UE + '>;expires=10;+sip.instance="<urn:x:a b;c>"'
        ';pub-gruu="sip:alice@example.com;gr=urn:x:a%20b%3Bc"'
    ]


def test_contact_headers_skip_expired_bindings_and_stored_gruus() -> None:
    live = binding("sip:a@192.0.2.1", expires=NOW + 1, params=(("pub-gruu", '"sip:x"'),))
    aor = AoR(bindings=(("a", live), ("b", binding("sip:b@192.0.2.2", expires=NOW))))
    assert contact_headers(aor, aor_uri=AOR_URI, now=NOW, gruu=False) == [
        "<sip:a@192.0.2.1>;expires=1"
    ]


# ------------------------------------------------------------------ Require: outbound


OB_PATH = "<sip:token@bono.example.com:5058;transport=TCP;lr;ob>"
OUTBOUND_CONTACT = "<" + UE + ">;+sip.instance=" + INSTANCE + ";reg-id=1"


@pytest.mark.parametrize(
    ("contact", "paths", "supported", "expected"),
    [
        (OUTBOUND_CONTACT, (OB_PATH,), "path, outbound", True),
        (OUTBOUND_CONTACT, (OB_PATH,), "path", False),
        (OUTBOUND_CONTACT, (OB_PATH,), None, False),
        (OUTBOUND_CONTACT, ("<sip:bono.example.com;lr>", OB_PATH), "outbound", False),
        (OUTBOUND_CONTACT, (), "outbound", False),
        ("<" + UE + ">;+sip.instance=" + INSTANCE, (OB_PATH,), "outbound", False),
        ("<" + UE + ">;reg-id=1", (OB_PATH,), "outbound", False),
    ],
)
def test_requires_outbound(
    contact: str, paths: tuple[str, ...], supported: Optional[str], expected: bool
) -> None:
    request = register(contact, paths=paths, supported=supported)
    aor = apply(None, request).aor
    assert requires_outbound(request, aor) is expected


def test_requires_outbound_needs_bindings() -> None:
    request = register(OUTBOUND_CONTACT, expires="0", paths=(OB_PATH,), supported="outbound")
    aor = apply(None, request).aor
    assert aor.bindings == ()
    assert requires_outbound(request, aor) is False
    assert request.headers.first(h.SUPPORTED) == "outbound"


def test_register_error_carries_status_reason_and_headers() -> None:
    error = RegisterError(423, "Interval Too Brief", [("Min-Expires", "60")])
    assert (error.status, error.reason, error.headers) == (
        423,
        "Interval Too Brief",
        (("Min-Expires", "60"),),
    )
    assert str(error) == "423 Interval Too Brief"
