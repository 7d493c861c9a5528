"""Choosing and ordering the bindings a terminating request is forked to
(clearwater.scscf.callerprefs): RFC 3841 §7.2 caller preferences with RFC 3840 §9 feature
parameters, RFC 5627 public GRUU targeting and the fork cap of spec §3.10.

Requests are parsed from wire text; bindings carry Contact parameters as the registrar stores
them (values as written, ``""`` for a flag, q as ``priority``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from clearwater.scscf.callerprefs import MAX_FEATURE_VALUES, target_bindings
from clearwater.sip import NameAddr, Request, parse_message
from clearwater.stores.records import Binding

UUID_A = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
UUID_B = "urn:uuid:00000000-0000-1000-8000-aabbccddeeff"
MMTEL = '+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"'


def request(*headers: str, method: str = "INVITE", uri: str = "sip:bob@example.com") -> Request:
    lines = [
        method + " " + uri + " SIP/2.0",
        "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK776asdhds",
        "Max-Forwards: 70",
        "From: <sip:alice@example.com>;tag=1928301774",
        "To: <sip:bob@example.com>",
        "Call-ID: a84b4c76e66710@192.0.2.1",
        "CSeq: 1 " + method,
        *headers,
        "Content-Length: 0",
        "",
        "",
    ]
    message = parse_message("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


def binding(contact: str) -> Binding:
    """A binding as the registrar stores ``contact`` (q as priority, other params kept)."""
    value = NameAddr.parse(contact)
    params = tuple(
        (name, "" if v is None else v)
        for name, v in value.params
        if name.lower() not in ("q", "expires")
    )
    q = value.q
    return Binding(
        uri=str(value.uri),
        cid="reg@192.0.2.1",
        cseq=1,
        expires=2_000_000_000,
        priority=0 if q is None else round(q * 1000),
        params=params,
    )


def bindings(*contacts: str) -> list[tuple[str, Binding]]:
    """Bindings with ids b1, b2, ... in the order given."""
    return [("b" + str(i), binding(c)) for i, c in enumerate(contacts, 1)]


def ids(targets: Sequence[tuple[str, Binding]]) -> list[str]:
    return [binding_id for binding_id, _ in targets]


# --------------------------------------------------------------------------- RFC 3841 example


# Modelled on the example of RFC 3841 §7.2.5 (five registered contacts; a Reject-Contact and
# three Accept-Contact values like those of §9). The expected results were worked out by hand
# with the rules of §7.2.4, not copied from the RFC.
EXAMPLE_CONTACTS = (
    # b1: Qa = (1 + 0 + [methods mismatch: left out]) / 2 = 0.5
    '<sip:u4@h.example.com>;audio;methods="INVITE,OPTIONS";q=0.2',
    # b2: audio="FALSE" fails "audio;require": removed
    '<sip:u2@h.example.com>;audio="FALSE";methods="INVITE";actor="msg-taker";q=0.2',
    # b3: has actor="msg-taker" and video: removed by the Reject-Contact
    '<sip:u3@h.example.com>;audio;actor="msg-taker";methods="INVITE";video;q=0.3',
    # b4: Qa = (1 + 1 + 1/2) / 3
    '<sip:u1@h.example.com>;audio;video;methods="INVITE,BYE";q=0.2',
    # b5: no feature parameters: immune, Qa = 1
    "<sip:u5@h.example.com>;q=0.5",
)
EXAMPLE_HEADERS = (
    'Reject-Contact: *;actor="msg-taker";video',
    "Accept-Contact: *;audio;require",
    "Accept-Contact: *;video;explicit",
    'Accept-Contact: *;methods="BYE";class="business"',
)


def test_rfc3841_example() -> None:
    targets = target_bindings(request(*EXAMPLE_HEADERS), bindings(*EXAMPLE_CONTACTS))
    # q first (u5 at 0.5), then Qa among the q=0.2 contacts: u1 (0.83) before u4 (0.5).
    assert ids(targets) == ["b5", "b4", "b1"]
    assert [b.uri for _, b in targets] == [
        "sip:u5@h.example.com",
        "sip:u1@h.example.com",
        "sip:u4@h.example.com",
    ]


def test_rfc3841_example_headers_one_at_a_time() -> None:
    contacts = bindings(*EXAMPLE_CONTACTS)
    # The Reject-Contact alone removes u3 only (u2 has no video); Qa is 1 for everyone.
    assert ids(target_bindings(request(EXAMPLE_HEADERS[0]), contacts)) == [
        "b5",
        "b1",
        "b2",
        "b4",
    ]
    # "audio;require" removes u2 (audio="FALSE") only.
    assert ids(target_bindings(request(EXAMPLE_HEADERS[1]), contacts)) == [
        "b5",
        "b3",
        "b1",
        "b4",
    ]
    # "video;explicit" removes nobody; u4 and u2 (no video) score 0, after u1.
    assert ids(target_bindings(request(EXAMPLE_HEADERS[2]), contacts)) == [
        "b5",
        "b3",
        "b4",
        "b1",
        "b2",
    ]


# --------------------------------------------------------------------------- feature parameters


def test_contact_without_feature_parameters_is_immune() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;+sip.instance="<' + UUID_A + '>";reg-id=1;video="FALSE"',
        '<sip:b@192.0.2.11>;+sip.instance="<' + UUID_B + '>";reg-id=1;ob',
    )
    # b2's parameters are no feature tags: it survives a required preference and a
    # Reject-Contact; b1 (video="FALSE") does not survive "video;require".
    assert ids(target_bindings(request("Accept-Contact: *;video;require"), contacts)) == ["b2"]
    assert ids(target_bindings(request('Reject-Contact: *;video="FALSE"'), contacts)) == ["b2"]


def test_sip_instance_in_accept_contact_is_not_a_feature() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;+sip.instance="<' + UUID_A + '>";audio',
        '<sip:b@192.0.2.11>;+sip.instance="<' + UUID_B + '>";audio',
    )
    header = 'Accept-Contact: *;+sip.instance="<' + UUID_B + '>";require;explicit'
    assert ids(target_bindings(request(header), contacts)) == ["b1", "b2"]


def test_plus_feature_tags_and_base_tag_spelling() -> None:
    contacts = bindings(
        "<sip:a@192.0.2.10>;+g.3gpp.smsip",
        "<sip:b@192.0.2.11>;" + MMTEL,
        "<sip:c@192.0.2.12>;+sip.audio",  # the same tag as "audio"
    )
    header = "Accept-Contact: *;" + MMTEL + ";require;explicit"
    assert ids(target_bindings(request(header), contacts)) == ["b2"]
    header = "Accept-Contact: *;audio;require;explicit"
    assert ids(target_bindings(request(header), contacts)) == ["b3"]
    # Tag names are case-insensitive.
    header = "Accept-Contact: *;+G.3GPP.SMSIP;require;explicit"
    assert ids(target_bindings(request(header), contacts)) == ["b1"]


def test_token_lists_are_disjunctions_and_case_insensitive() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;methods="INVITE,BYE"',
        '<sip:b@192.0.2.11>;methods="MESSAGE"',
        '<sip:c@192.0.2.12>;methods="invite"',
    )
    header = 'Accept-Contact: *;methods="BYE,INVITE";require'
    assert ids(target_bindings(request(header), contacts)) == ["b1", "b3"]


def test_negated_tokens() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;language="fr"',
        '<sip:b@192.0.2.11>;language="en,fr"',
        '<sip:c@192.0.2.12>;language="!fr"',
    )
    header = 'Accept-Contact: *;language="!fr";require'
    # "en" satisfies !fr; so does any language but fr.
    assert ids(target_bindings(request(header), contacts)) == ["b2", "b3"]
    header = 'Accept-Contact: *;language="fr";require'
    assert ids(target_bindings(request(header), contacts)) == ["b1", "b2"]


def test_booleans() -> None:
    contacts = bindings(
        "<sip:a@192.0.2.10>;automata",
        '<sip:b@192.0.2.11>;automata="FALSE"',
        '<sip:c@192.0.2.12>;automata="TRUE"',
    )
    assert ids(target_bindings(request("Reject-Contact: *;automata"), contacts)) == ["b2"]
    header = 'Reject-Contact: *;automata="!TRUE"'
    assert ids(target_bindings(request(header), contacts)) == ["b1", "b3"]


@pytest.mark.parametrize(
    ("preference", "expected"),
    [
        ("#>=5", ["b1", "b2"]),  # [3, 7] and [5, 5] reach 5; [0, 2] does not
        ("#<=2", ["b3"]),
        ("#=7", ["b1"]),
        ("#6:10", ["b1"]),
        ("#-1:0.5", ["b3"]),
        ("!#3:7", ["b3"]),  # a value outside [3, 7]: only "#<=2" has one
        ("#2.5:2.9", []),
        ("!#2:5", ["b1", "b3"]),  # 6 from [3, 7], anything below 2 from "#<=2"
    ],
)
def test_numeric_ranges(preference: str, expected: list[str]) -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;+x.size="#3:7"',
        '<sip:b@192.0.2.11>;+x.size="#=5"',
        '<sip:c@192.0.2.12>;+x.size="#<=2"',
    )
    header = 'Accept-Contact: *;+x.size="' + preference + '";require'
    assert ids(target_bindings(request(header), contacts)) == expected


def test_numeric_range_needs_a_point_inside_both() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;+x.size="#3:4,#6:7"',
        '<sip:b@192.0.2.11>;+x.size="#4.5:5.5"',
    )
    # [4, 6] and not 5: 4 (b1) and 4.5..5.5 minus 5 (b2) both qualify; a bare 5 would not.
    header = 'Accept-Contact: *;+x.size="#4:6";+x.size="!#=5";require'
    assert ids(target_bindings(request(header), contacts)) == ["b1", "b2"]
    contacts = bindings('<sip:c@192.0.2.12>;+x.size="#=5"')
    assert target_bindings(request(header), contacts) == []


def test_numeric_open_interval() -> None:
    # Neither bound of [1, 3] qualifies for "not <= 1 and not >= 3", a point between does.
    contacts = bindings('<sip:a@192.0.2.10>;+x.size="#1:3"', '<sip:b@192.0.2.11>;+x.size="#=3"')
    header = 'Accept-Contact: *;+x.size="!#<=1";+x.size="!#>=3";require'
    assert ids(target_bindings(request(header), contacts)) == ["b1"]
    # Only a value above every bound qualifies.
    contacts = bindings('<sip:a@192.0.2.10>;+x.size="#>=10"', '<sip:b@192.0.2.11>;+x.size="#=9"')
    header = 'Accept-Contact: *;+x.size="!#<=10";require'
    assert ids(target_bindings(request(header), contacts)) == ["b1"]


def test_numbers_tokens_and_strings_do_not_match_each_other() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;+x.v="#=5"',
        '<sip:b@192.0.2.11>;+x.v="five"',
        '<sip:c@192.0.2.12>;+x.v="<five>"',
    )
    for preference, expected in (('"#>=5"', "b1"), ('"five"', "b2"), ('"<five>"', "b3")):
        header = "Accept-Contact: *;+x.v=" + preference + ";require"
        assert ids(target_bindings(request(header), contacts)) == [expected]


def test_string_values_are_case_sensitive() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;description="<Bob\'s desk phone, 2nd floor>"',
        '<sip:b@192.0.2.11>;description="<bob\'s desk phone, 2nd floor>"',
    )
    header = 'Accept-Contact: *;description="<Bob\'s desk phone, 2nd floor>";require'
    assert ids(target_bindings(request(header), contacts)) == ["b1"]


def test_quoted_pairs_are_unescaped() -> None:
    contacts = bindings('<sip:a@192.0.2.10>;description="<desk\\ phone>"')
    header = 'Accept-Contact: *;description="<desk phone>";require'
    assert ids(target_bindings(request(header), contacts)) == ["b1"]
    header = 'Accept-Contact: *;description="<desk\\\\ phone>";require'
    assert target_bindings(request(header), contacts) == []


# --------------------------------------------------------------------------- Reject-Contact


def test_reject_contact_applies_only_when_the_contact_has_every_tag() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;actor="msg-taker"',
        '<sip:b@192.0.2.11>;actor="msg-taker";automata',
        '<sip:c@192.0.2.12>;actor="principal";automata',
    )
    header = 'Reject-Contact: *;actor="msg-taker";automata'
    # b1 lacks automata (not rejected), b3's actor differs (no match), b2 matches.
    assert ids(target_bindings(request(header), contacts)) == ["b1", "b3"]


def test_reject_contacts_apply_one_by_one_and_compact_form() -> None:
    contacts = bindings(
        "<sip:a@192.0.2.10>;video",
        "<sip:b@192.0.2.11>;audio",
        "<sip:c@192.0.2.12>;audio;video;q=0.9",
    )
    req = request("j: *;video", "Reject-Contact: *;audio;automata")
    assert ids(target_bindings(req, contacts)) == ["b2"]
    req = request("j: *;video, *;audio")
    assert target_bindings(req, contacts) == []


# --------------------------------------------------------------------------- Accept-Contact


def test_accept_contact_without_require_reorders_only() -> None:
    contacts = bindings(
        "<sip:a@192.0.2.10>;audio",
        "<sip:b@192.0.2.11>;video",
        "<sip:c@192.0.2.12>;audio;video",
    )
    # Both match (a tag a contact leaves out is unconstrained); the score is the share of the
    # preference's tags the contact has: b3 1, b1 and b2 0.5.
    req = request("a: *;audio;video")
    assert ids(target_bindings(req, contacts)) == ["b3", "b1", "b2"]
    # A value mismatch without require leaves the predicate out (Qa 0 when none matched).
    contacts = bindings('<sip:a@192.0.2.10>;video="FALSE"', "<sip:b@192.0.2.11>;video")
    assert ids(target_bindings(request("a: *;video"), contacts)) == ["b2", "b1"]


def test_accept_contact_require() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;video="FALSE"',
        "<sip:b@192.0.2.11>;audio",  # video unconstrained: matches, scores 0
        "<sip:c@192.0.2.12>;video",
    )
    req = request("Accept-Contact: *;video;require")
    assert ids(target_bindings(req, contacts)) == ["b3", "b2"]


def test_accept_contact_explicit() -> None:
    contacts = bindings(
        "<sip:a@192.0.2.10>;audio",
        "<sip:b@192.0.2.11>;audio;video",
    )
    # explicit alone: b1 lacks video, scores 0, stays after b2.
    req = request("Accept-Contact: *;audio;video;explicit")
    assert ids(target_bindings(req, contacts)) == ["b2", "b1"]
    # explicit and require: b1 goes.
    req = request("Accept-Contact: *;audio;video;explicit;require")
    assert ids(target_bindings(req, contacts)) == ["b2"]


def test_qa_is_the_mean_over_matching_predicates() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;audio;video;+x.a;methods="INVITE"',  # (1 + 1 + 2/2) / 3 = 1
        "<sip:b@192.0.2.11>;audio;video",  # (1 + 1 + 0/2) / 3 = 2/3
        '<sip:c@192.0.2.12>;audio;methods="MESSAGE"',  # (1 + 0/1 + [no match]) / 2 = 1/2
        '<sip:d@192.0.2.13>;audio="FALSE"',  # ([no match] + 0/1 + 0/2) / 2 = 0
    )
    req = request(
        "Accept-Contact: *;audio",
        "Accept-Contact: *;video",
        'Accept-Contact: *;+x.a;methods="INVITE"',
    )
    assert ids(target_bindings(req, contacts)) == ["b1", "b2", "b3", "b4"]


def test_unmatched_predicate_is_left_out_of_qa() -> None:
    contacts = bindings(
        "<sip:a@192.0.2.10>;video;audio",  # video 1, (audio, x.a) 1/2: Qa 3/4
        '<sip:b@192.0.2.11>;video="FALSE";audio;+x.a',  # video left out, 2/2: Qa 1
    )
    req = request("Accept-Contact: *;video", "Accept-Contact: *;audio;+x.a")
    assert ids(target_bindings(req, contacts)) == ["b2", "b1"]


def test_empty_accept_contact_prefers_nothing() -> None:
    contacts = bindings('<sip:a@192.0.2.10>;methods="BYE"', "<sip:b@192.0.2.11>;audio")
    # "*" with only require/explicit is no preference; it also turns off the implicit one.
    assert ids(target_bindings(request("Accept-Contact: *;require;explicit"), contacts)) == [
        "b1",
        "b2",
    ]


# --------------------------------------------------------------------------- implicit


def test_implicit_method_preference() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;methods="INVITE,BYE"',
        "<sip:b@192.0.2.11>;audio",
        '<sip:c@192.0.2.12>;methods="MESSAGE"',
        "<sip:d@192.0.2.13>",
    )
    # Required, not explicit: b2 (no methods) stays, scoring 0; b4 is immune.
    assert ids(target_bindings(request(method="MESSAGE"), contacts)) == ["b3", "b4", "b2"]
    assert ids(target_bindings(request(), contacts)) == ["b1", "b4", "b2"]


def test_implicit_event_preference() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;events="presence,dialog"',
        '<sip:b@192.0.2.11>;events="dialog"',
        '<sip:c@192.0.2.12>;methods="SUBSCRIBE";events="presence"',
    )
    req = request("Event: presence;id=7", method="SUBSCRIBE")
    # One predicate, methods=SUBSCRIBE and events=presence: b2 fails it; b1 has events
    # only (1/2), b3 both (1).
    assert ids(target_bindings(req, contacts)) == ["b3", "b1"]


def test_no_implicit_preference_beside_explicit_ones() -> None:
    contacts = bindings('<sip:a@192.0.2.10>;methods="INVITE"', "<sip:b@192.0.2.11>;video")
    assert ids(target_bindings(request("j: *;video", method="MESSAGE"), contacts)) == ["b1"]


# --------------------------------------------------------------------------- GRUU


def gruu_bindings() -> list[tuple[str, Binding]]:
    return bindings(
        '<sip:a@192.0.2.10;transport=tcp>;+sip.instance="<' + UUID_A + '>";reg-id=1',
        '<sip:b@192.0.2.11;transport=tcp>;+sip.instance="<' + UUID_B + '>";reg-id=1;q=0.9',
        '<sip:c@192.0.2.12;transport=tcp>;+sip.instance="<' + UUID_A + '>";reg-id=2;q=0.5',
        "<sip:d@192.0.2.13>",
    )


def test_pub_gruu_targets_its_instance() -> None:
    req = request(uri="sip:bob@example.com;gr=" + UUID_A)
    assert ids(target_bindings(req, gruu_bindings())) == ["b3", "b1"]
    req = request(uri="sip:bob@example.com;gr=" + UUID_B.upper().replace("URN:UUID", "urn:uuid"))
    assert ids(target_bindings(req, gruu_bindings())) == ["b2"]


def test_pub_gruu_instance_compared_case_insensitively() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;+sip.instance="<URN:UUID:ABCDEF00-0000-1000-8000-AABBCCDDEEFF>"',
        '<sip:b@192.0.2.11>;+sip.instance="<' + UUID_A + '>"',
    )
    req = request(uri="sip:bob@example.com;gr=urn:uuid:abcdef00-0000-1000-8000-aabbccddeeff")
    assert ids(target_bindings(req, contacts)) == ["b1"]


def test_pub_gruu_escaped() -> None:
    req = request(uri="sip:bob@example.com;gr=urn%3Auuid%3A" + UUID_B[len("urn:uuid:") :])
    assert ids(target_bindings(req, gruu_bindings())) == ["b2"]


def test_gruu_with_no_binding_has_no_target() -> None:
    req = request(uri="sip:bob@example.com;gr=urn:uuid:99999999-0000-1000-8000-000000000000")
    assert target_bindings(req, gruu_bindings()) == []
    # A temporary GRUU form (gr without a value) names no instance either.
    assert target_bindings(request(uri="sip:tgruu.7hs@example.com;gr"), gruu_bindings()) == []


def test_gruu_then_caller_preferences() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;+sip.instance="<' + UUID_A + '>";reg-id=1;video="FALSE"',
        '<sip:b@192.0.2.11>;+sip.instance="<' + UUID_A + '>";reg-id=2;video',
    )
    req = request("Accept-Contact: *;video;require", uri="sip:bob@example.com;gr=" + UUID_A)
    assert ids(target_bindings(req, contacts)) == ["b2"]


def test_no_gruu_no_filter() -> None:
    assert ids(target_bindings(request(), gruu_bindings())) == ["b2", "b3", "b1", "b4"]
    # tel: Request-URIs have no gr.
    assert len(target_bindings(request(uri="tel:+15551234567"), gruu_bindings())) == 4


# --------------------------------------------------------------------------- order and cap


def test_order_by_q_then_input_order() -> None:
    contacts = bindings(
        "<sip:a@192.0.2.10>;q=0.5",
        "<sip:b@192.0.2.11>",
        "<sip:c@192.0.2.12>;q=1.0",
        "<sip:d@192.0.2.13>;q=0.5",
        "<sip:e@192.0.2.14>",
    )
    assert ids(target_bindings(request(), contacts)) == ["b3", "b1", "b4", "b2", "b5"]
    assert ids(target_bindings(request(), list(reversed(contacts)))) == [
        "b3",
        "b4",
        "b1",
        "b5",
        "b2",
    ]


def test_q_outranks_caller_preference_score() -> None:
    contacts = bindings("<sip:a@192.0.2.10>;audio;q=0.4", "<sip:b@192.0.2.11>;video;q=0.6")
    req = request("Accept-Contact: *;audio;explicit")
    assert ids(target_bindings(req, contacts)) == ["b2", "b1"]


def test_cap_at_ten_forks_keeps_the_best() -> None:
    contacts = [
        ("b" + str(i), binding("<sip:u" + str(i) + "@192.0.2.1>;q=0." + str(i)))
        for i in range(1, 10)
    ] + [("x" + str(i), binding("<sip:x" + str(i) + "@192.0.2.2>;q=1")) for i in range(1, 4)]
    targets = target_bindings(request(), contacts)
    assert ids(targets) == ["x1", "x2", "x3", "b9", "b8", "b7", "b6", "b5", "b4", "b3"]
    assert ids(target_bindings(request(), contacts, max_forks=2)) == ["x1", "x2"]
    assert target_bindings(request(), contacts, max_forks=0) == []


def test_no_bindings() -> None:
    assert target_bindings(request("Accept-Contact: *;audio"), []) == []


def test_request_disposition_no_fork_is_ignored() -> None:
    contacts = bindings("<sip:a@192.0.2.10>", "<sip:b@192.0.2.11>")
    req = request("Request-Disposition: no-fork, sequential")
    assert ids(target_bindings(req, contacts)) == ["b1", "b2"]


def test_returns_the_given_objects() -> None:
    contacts = bindings("<sip:a@192.0.2.10>;audio")
    [(binding_id, value)] = target_bindings(request(), contacts)
    assert binding_id == "b1"
    assert value is contacts[0][1]


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "value",
    [
        "+x.y",  # no "*"
        "sip:x@example.com;+x.y",
        '*;+x.size="#big"',
        '*;+x.size="#7:3"',  # an empty range
        '*;+x.m="INVITE,,BYE"',
        '*;+x.m=""',
        '*;+x.m="!"',
        '*;+x.m="!!A"',
        '*;+x.d="<unterminated"',
        '*;+x.d="<a>b>"',
        '*;+x.l="!<fr>"',
        '*;+x.m="' + ",".join(["A"] * (MAX_FEATURE_VALUES + 1)) + '"',
    ],
)
def test_malformed_values_are_ignored(value: str) -> None:
    contacts = bindings('<sip:a@192.0.2.10>;methods="BYE"', "<sip:b@192.0.2.11>;audio")
    # Taken as a preference, the value would remove both contacts (neither has its tag).
    # Ignored, the well-formed value beside it still applies: it removes b1.
    req = request(
        "Accept-Contact: " + value + ";require;explicit",
        'Accept-Contact: *;methods="INVITE";require',
    )
    assert ids(target_bindings(req, contacts)) == ["b2"]
    # Alone, as if absent: the implicit preference (methods=INVITE, required) removes b1;
    # taken as a Reject-Contact, it would have turned the implicit preference off.
    for header in ("Accept-Contact: ", "Reject-Contact: "):
        assert ids(target_bindings(request(header + value), contacts)) == ["b2"]
    # The same with a well-formed value: no implicit preference, both stay.
    assert ids(target_bindings(request("Reject-Contact: *;+x.y"), contacts)) == ["b1", "b2"]


def test_unterminated_quote_line_is_ignored() -> None:
    contacts = bindings("<sip:a@192.0.2.10>;audio", "<sip:b@192.0.2.11>;video")
    # The first line does not split into values (a quote is left open): it is dropped whole.
    req = request(
        'Accept-Contact: *;audio, *;audio="TRUE;require',
        "Accept-Contact: *;video;require;explicit",
    )
    assert ids(target_bindings(req, contacts)) == ["b2"]


def test_malformed_contact_feature_parameter_is_left_out() -> None:
    contacts = bindings(
        '<sip:a@192.0.2.10>;+x.size="#huge";audio',
        '<sip:b@192.0.2.11>;+x.size="#=1";audio',
    )
    # b1's size is unknown (unconstrained), so "#>=5" matches it but scores 0 on that tag.
    req = request('Accept-Contact: *;+x.size="#>=5";require')
    assert ids(target_bindings(req, contacts)) == ["b1"]
    # A contact whose only feature parameter is malformed is immune.
    contacts = bindings('<sip:a@192.0.2.10>;+x.size="#huge"')
    req = request('Accept-Contact: *;+x.size="#>=5";require;explicit')
    assert ids(target_bindings(req, contacts)) == ["b1"]


def test_malformed_event_header_gives_method_only_implicit_preference() -> None:
    contacts = bindings('<sip:a@192.0.2.10>;events="presence"', '<sip:b@192.0.2.11>;events="x"')
    req = request("Event: ;;", method="SUBSCRIBE")
    assert ids(target_bindings(req, contacts)) == ["b1", "b2"]
