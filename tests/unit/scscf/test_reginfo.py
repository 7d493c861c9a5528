"""``application/reginfo+xml`` (RFC 3680 §5, GRUUs RFC 5628; spec §3.7): the documents
:func:`build_reginfo` writes, byte for byte and against the RFC schemas (tests/data/reginfo/,
checked with xmllint when it is installed), and what :func:`parse_reginfo` accepts and refuses.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearwater._xml import MAX_XML_DEPTH
from clearwater.errors import ParseError
from clearwater.scscf.reginfo import (
    GRUUINFO_NAMESPACE,
    REGINFO_CONTENT_TYPE,
    REGINFO_NAMESPACE,
    ContactEvent,
    ContactInfo,
    Reginfo,
    RegistrationInfo,
    build_reginfo,
    parse_reginfo,
)

SCHEMA = Path(__file__).resolve().parents[2] / "data" / "reginfo" / "reginfo-gruu.xsd"
XMLLINT = shutil.which("xmllint")
needs_xmllint = pytest.mark.skipif(
    XMLLINT is None, reason="xmllint not installed (Debian package libxml2-utils)"
)

R = "{" + REGINFO_NAMESPACE + "}"
GR = "{" + GRUUINFO_NAMESPACE + "}"

INSTANCE = "<urn:uuid:00000000-0000-0000-0000-b4dd32817622>"

#: Alice's two bindings, as Clearwater's registrar reports them (spec §3.7): one with an
#: instance id and its GRUUs, one keyed by its contact URI.
ALICE_PHONE = ContactInfo(
    id=INSTANCE + ":1",
    state="active",
    event=ContactEvent.CREATED,
    uri="sip:alice@192.0.2.10:5060;transport=tcp;ob",
    expires=300,
    q="0.5",
    callid="a84b4c76e66710@pc33",
    cseq=2,
    display_name="Alice",
    pub_gruu="sip:alice@example.com;gr=urn:uuid:00000000-0000-0000-0000-b4dd32817622",
    temp_gruu=("sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@example.com;gr", 2),
    unknown_params=(("+sip.instance", '"' + INSTANCE + '"'), ("reg-id", "1"), ("ob", "")),
)
ALICE_DESK = ContactInfo(
    id="sip:alice@192.0.2.11",
    state="terminated",
    event=ContactEvent.EXPIRED,
    uri="sip:alice@192.0.2.11",
    expires=0,
)
ALICE = Reginfo(
    version=7,
    state="full",
    registrations=(
        RegistrationInfo(
            aor="sip:alice@example.com",
            id="as9f",
            state="active",
            contacts=(ALICE_PHONE, ALICE_DESK),
        ),
        RegistrationInfo(aor="tel:+15551234", id="as9f", state="active", contacts=(ALICE_DESK,)),
    ),
)

ALICE_BYTES = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo"'
    b' xmlns:gr="urn:ietf:params:xml:ns:gruuinfo" version="7" state="full">'
    b'<registration aor="sip:alice@example.com" id="as9f" state="active">'
    b'<contact id="&lt;urn:uuid:00000000-0000-0000-0000-b4dd32817622&gt;:1" state="active"'
    b' event="created" expires="300" q="0.5" callid="a84b4c76e66710@pc33" cseq="2">'
    b"<uri>sip:alice@192.0.2.10:5060;transport=tcp;ob</uri>"
    b"<display-name>Alice</display-name>"
    b'<unknown-param name="+sip.instance">'
    b'"&lt;urn:uuid:00000000-0000-0000-0000-b4dd32817622&gt;"</unknown-param>'
    b'<unknown-param name="reg-id">1</unknown-param>'
    b'<unknown-param name="ob" />'
    b'<gr:pub-gruu uri="sip:alice@example.com;gr=urn:uuid:00000000-0000-0000-0000-b4dd32817622" />'
    b'<gr:temp-gruu uri="sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@example.com;gr"'
    b' first-cseq="2" />'
    b"</contact>"
    b'<contact id="sip:alice@192.0.2.11" state="terminated" event="expired" expires="0">'
    b"<uri>sip:alice@192.0.2.11</uri></contact>"
    b"</registration>"
    b'<registration aor="tel:+15551234" id="as9f" state="active">'
    b'<contact id="sip:alice@192.0.2.11" state="terminated" event="expired" expires="0">'
    b"<uri>sip:alice@192.0.2.11</uri></contact>"
    b"</registration>"
    b"</reginfo>"
)

HOSTILE = "\"'<>&]]></uri><uri>x</uri>&amp;&#13;<!--x--><![CDATA[y]]>\t\r\n\u00e9\U0001f600"


def xmllint(document: bytes) -> subprocess.CompletedProcess[bytes]:
    assert XMLLINT is not None
    return subprocess.run(
        [XMLLINT, "--noout", "--nonet", "--schema", str(SCHEMA), "-"],
        input=document,
        capture_output=True,
        timeout=60,
        check=False,
    )


def assert_schema_valid(document: bytes) -> None:
    result = xmllint(document)
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")


# --------------------------------------------------------------------------- strategies

XML_CHARS = st.one_of(
    st.characters(codec="utf-8", min_codepoint=0x20, exclude_characters="\ufffe\uffff"),
    st.sampled_from("\t\n\r<>&\"'"),
)
TEXT = st.text(XML_CHARS, max_size=12)
#: A URI-typed value: any text but no surrounding white space (anyURI collapses it).
URI_TEXT = TEXT.map(lambda s: s.strip(" \t\n\r"))
UNSIGNED = st.integers(min_value=0, max_value=(1 << 64) - 1)
QVALUE = st.sampled_from(["0", "0.", "0.5", "0.001", "1", "1.0", "1.000"])


def contacts(
    uris: st.SearchStrategy[str], text: st.SearchStrategy[str]
) -> st.SearchStrategy[ContactInfo]:
    return st.builds(
        ContactInfo,
        id=text,
        state=st.sampled_from(["active", "terminated"]),
        event=st.sampled_from(ContactEvent),
        uri=uris,
        expires=st.none() | UNSIGNED,
        q=st.none() | QVALUE,
        callid=st.none() | text,
        cseq=st.none() | UNSIGNED,
        display_name=st.none() | text,
        pub_gruu=st.none() | uris,
        temp_gruu=st.none() | st.tuples(uris, UNSIGNED),
        unknown_params=st.lists(st.tuples(text, text), max_size=3).map(tuple),
    )


def documents(
    uris: st.SearchStrategy[str], text: st.SearchStrategy[str]
) -> st.SearchStrategy[Reginfo]:
    registrations = st.builds(
        RegistrationInfo,
        aor=uris,
        id=text,
        state=st.sampled_from(["init", "active", "terminated"]),
        contacts=st.lists(contacts(uris, text), max_size=3).map(tuple),
    )
    return st.builds(
        Reginfo,
        version=UNSIGNED,
        state=st.sampled_from(["full", "partial"]),
        registrations=st.lists(registrations, max_size=3).map(tuple),
    )


#: SIP and tel URIs as registrars really report them (libxml2 checks xs:anyURI values; it
#: refuses, for one, IPv6 references in an opaque URI, so none are generated here).
TOKEN = st.from_regex(r"[a-z0-9][a-z0-9.+_-]{0,8}", fullmatch=True)
SIP_URIS = st.one_of(
    st.builds(
        lambda user, host, params: "sip:" + user + "@" + host + "".join(";" + p for p in params),
        TOKEN,
        st.sampled_from(["example.com", "192.0.2.1:5060", "sprout.example.net"]),
        st.lists(st.sampled_from(["ob", "transport=tcp", "gr=urn:uuid:1-2", "lr"]), max_size=2),
    ),
    st.from_regex(r"tel:\+[0-9]{4,12}", fullmatch=True),
)


# --------------------------------------------------------------------------- building


def test_content_type() -> None:
    assert REGINFO_CONTENT_TYPE == "application/reginfo+xml"


def test_known_document_bytes() -> None:
    assert build_reginfo(ALICE) == ALICE_BYTES


def test_known_document_reads_the_same_through_a_namespace_aware_parser() -> None:
    # A second opinion on the namespaces: ElementTree's own (namespace-processing) parser.
    root = ET.fromstring(build_reginfo(ALICE))
    assert root.tag == R + "reginfo"
    contact = root.find(R + "registration/" + R + "contact")
    assert contact is not None
    assert [child.tag for child in contact] == [
        R + "uri",
        R + "display-name",
        R + "unknown-param",
        R + "unknown-param",
        R + "unknown-param",
        GR + "pub-gruu",
        GR + "temp-gruu",
    ]
    assert contact.attrib == {
        "id": INSTANCE + ":1",
        "state": "active",
        "event": "created",
        "expires": "300",
        "q": "0.5",
        "callid": "a84b4c76e66710@pc33",
        "cseq": "2",
    }


def test_known_document_round_trips() -> None:
    assert parse_reginfo(ALICE_BYTES) == ALICE


def test_empty_document() -> None:
    info = Reginfo(version=0, state="full")
    assert build_reginfo(info) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo"'
        b' xmlns:gr="urn:ietf:params:xml:ns:gruuinfo" version="0" state="full" />'
    )
    assert parse_reginfo(build_reginfo(info)) == info


def test_registration_without_contacts() -> None:
    info = Reginfo(1, "partial", (RegistrationInfo("sip:bob@example.com", "r1", "terminated"),))
    assert b'<registration aor="sip:bob@example.com" id="r1" state="terminated" />' in (
        build_reginfo(info)
    )
    assert parse_reginfo(build_reginfo(info)) == info


def test_hostile_strings_are_escaped() -> None:
    contact = ContactInfo(
        id=HOSTILE,
        state="active",
        event=ContactEvent.REGISTERED,
        uri="sip:x@example.com;p=" + HOSTILE,
        callid=HOSTILE,
        display_name=HOSTILE,
        pub_gruu="sip:x@example.com;gr=" + HOSTILE,
        temp_gruu=("sip:t@example.com;gr=" + HOSTILE, 1),
        unknown_params=((HOSTILE, HOSTILE),),
    )
    registration = RegistrationInfo("sip:x@example.com;" + HOSTILE, "i", "active", (contact,))
    info = Reginfo(0, "full", (registration,))
    document = build_reginfo(info)
    # No markup gets through: every < is escaped, so the only elements are the builder's.
    assert b"</uri><uri>" not in document
    assert b"<!--" not in document
    assert b"<![CDATA[" not in document
    assert b"]]>" not in document
    assert b"&amp;amp;" in document and b"&amp;#13;" in document
    assert "\u00e9\U0001f600".encode() in document  # non-ASCII as UTF-8, not as references
    root = ET.fromstring(document)
    assert [element.tag for element in root.iter()] == [
        R + "reginfo",
        R + "registration",
        R + "contact",
        R + "uri",
        R + "display-name",
        R + "unknown-param",
        GR + "pub-gruu",
        GR + "temp-gruu",
    ]
    # CR and tab survive in attributes and text alike (no end-of-line or attribute
    # normalisation eats them).
    assert root[0][0].get("callid") == HOSTILE
    assert root[0][0][1].text == HOSTILE
    assert parse_reginfo(document) == info


@pytest.mark.parametrize(
    "change",
    [
        {"state": "none"},
        {"version": -1},
        {"version": 1 << 64},
        {"version": True},
        {"registrations": (RegistrationInfo("sip:a@b", "1", "registered"),)},
        {"registrations": (RegistrationInfo(" sip:a@b", "1", "active"),)},
        {"registrations": (RegistrationInfo("sip:a@b", "1\x00", "active"),)},
    ],
    ids=repr,
)
def test_build_refuses_bad_document(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_reginfo(attrs.evolve(Reginfo(0, "full"), **change))


@pytest.mark.parametrize(
    "change",
    [
        {"state": "full"},
        {"state": "expired"},
        {"event": "gone"},
        {"uri": "sip:a@b\n"},
        {"uri": "sip:a\x1b@b"},
        {"id": "\ud800"},
        {"id": "\ufffe"},
        {"expires": -1},
        {"expires": 1 << 64},
        {"cseq": -5},
        {"q": "0.5000"},
        {"q": "1.5"},
        {"q": "high"},
        {"q": ""},
        {"callid": "a\x0cb"},
        {"display_name": "\x07"},
        {"pub_gruu": " sip:a@b;gr"},
        {"temp_gruu": ("sip:a@b;gr", -1)},
        {"temp_gruu": ("sip:a@b;gr\t", 1)},
        {"unknown_params": (("\x01", "x"),)},
        {"unknown_params": (("x", "\x01"),)},
    ],
    ids=repr,
)
def test_build_refuses_bad_contact(change: dict[str, Any]) -> None:
    contact = attrs.evolve(ALICE_DESK, **change)
    info = Reginfo(0, "full", (RegistrationInfo("sip:a@b", "1", "active", (contact,)),))
    with pytest.raises(ValueError):
        build_reginfo(info)


def test_every_event_builds() -> None:
    for event in ContactEvent:
        contact = attrs.evolve(ALICE_DESK, event=event)
        info = Reginfo(0, "full", (RegistrationInfo("sip:a@b", "1", "active", (contact,)),))
        assert ('event="' + event.value + '"').encode() in build_reginfo(info)
        assert parse_reginfo(build_reginfo(info)) == info


@settings(max_examples=60)
@given(documents(URI_TEXT, TEXT))
def test_round_trip(info: Reginfo) -> None:
    assert parse_reginfo(build_reginfo(info)) == info


# --------------------------------------------------------------------------- schema


@needs_xmllint
def test_known_document_is_schema_valid() -> None:
    assert_schema_valid(ALICE_BYTES)


@needs_xmllint
def test_hostile_strings_are_schema_valid() -> None:
    contact = attrs.evolve(
        ALICE_PHONE,
        id=HOSTILE,
        callid=HOSTILE,
        display_name=HOSTILE,
        unknown_params=((HOSTILE, HOSTILE), ("", "")),
    )
    info = Reginfo(0, "full", (RegistrationInfo("sip:a@example.com", HOSTILE, "init", (contact,)),))
    assert_schema_valid(build_reginfo(info))


@needs_xmllint
@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'event="created"', b'event="bogus"'),
        (b' first-cseq="2"', b""),
        (b'<gr:pub-gruu uri="', b'<gr:pub-gruu url="'),
        (b"<uri>sip:alice@192.0.2.11</uri></contact>", b"</contact>"),
        (b'expires="300"', b'expires="-1"'),
    ],
)
def test_schema_check_catches_invalid_documents(old: bytes, new: bytes) -> None:
    # The validator bites: the reginfo and the gruuinfo schemas are both in force.
    assert old in ALICE_BYTES
    result = xmllint(ALICE_BYTES.replace(old, new, 1))
    assert result.returncode != 0
    assert b"fails to validate" in result.stderr


@needs_xmllint
@settings(max_examples=25)
@given(documents(SIP_URIS, TEXT))
def test_built_documents_are_schema_valid(info: Reginfo) -> None:
    assert_schema_valid(build_reginfo(info))


# --------------------------------------------------------------------------- parsing

#: What Clearwater's sprout sends (its reg-event NOTIFY, pj_xml_print layout): the xsi and 3GPP
#: ere namespaces declared besides reginfo and gr, unknown params with escaped quotes and angle
#: brackets, a wildcarded identity (TS 24.229 §7.10) as an extension element of <registration>.
CLEARWATER_NOTIFY = b"""<?xml version="1.0" encoding="UTF-8"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" xmlns:gr="urn:ietf:params:xml:ns:gruuinfo" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ere="urn:3gpp:ns:extRegExp:1.0" \
version="2" state="full">
  <registration aor="sip:6505550001@example.com" id="8f2e0c1a" state="active">
    <contact id="&lt;urn:uuid:00000000-0000-0000-0000-b4dd32817622&gt;:1" state="active" \
event="refreshed">
      <uri>sip:6505550001@10.0.0.1:37651;transport=tcp;ob</uri>
      <unknown-param name="+sip.instance">&quot;&lt;urn:uuid:00000000-0000-0000-0000-b4dd32817622\
&gt;&quot;</unknown-param>
      <unknown-param name="reg-id">1</unknown-param>
      <unknown-param name="+sip.ice"/>
      <gr:pub-gruu uri="sip:6505550001@example.com;gr=urn:uuid:\
00000000-0000-0000-0000-b4dd32817622"/>
    </contact>
  </registration>
  <registration aor="sip:wildcardimpu@wildcard" id="8f2e0c1a" state="active">
    <contact id="sip:6505550002@10.0.0.2" state="terminated" event="expired">
      <uri>sip:6505550002@10.0.0.2</uri>
    </contact>
    <ere:wildcardedIdentity>sip:65055!.*!@example.com</ere:wildcardedIdentity>
  </registration>
</reginfo>
"""


def test_parse_clearwater_notify() -> None:
    pub_gruu = "sip:6505550001@example.com;gr=urn:uuid:00000000-0000-0000-0000-b4dd32817622"
    assert parse_reginfo(CLEARWATER_NOTIFY) == Reginfo(
        version=2,
        state="full",
        registrations=(
            RegistrationInfo(
                aor="sip:6505550001@example.com",
                id="8f2e0c1a",
                state="active",
                contacts=(
                    ContactInfo(
                        id=INSTANCE + ":1",
                        state="active",
                        event=ContactEvent.REFRESHED,
                        uri="sip:6505550001@10.0.0.1:37651;transport=tcp;ob",
                        pub_gruu=pub_gruu,
                        unknown_params=(
                            ("+sip.instance", '"' + INSTANCE + '"'),
                            ("reg-id", "1"),
                            ("+sip.ice", ""),
                        ),
                    ),
                ),
            ),
            RegistrationInfo(
                aor="sip:wildcardimpu@wildcard",
                id="8f2e0c1a",
                state="active",
                contacts=(
                    ContactInfo(
                        id="sip:6505550002@10.0.0.2",
                        state="terminated",
                        event=ContactEvent.EXPIRED,
                        uri="sip:6505550002@10.0.0.2",
                    ),
                ),
            ),
        ),
    )


#: An RFC 3680 document in the shape of the RFC's own examples (§6): no XML declaration
#: encoding, RFC attributes this model leaves out (duration-registered, retry-after), a
#: display-name with xml:lang, URIs laid out over several lines.
RFC3680_STYLE = b"""<?xml version="1.0"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo"
         version="1" state="partial">
  <registration aor="sip:joe@example.com" id="a7" state="active">
    <contact id="76" state="active" event="registered"
             duration-registered="7322" q="0.8">
      <uri>
        sip:joe@pc887.example.com
      </uri>
      <display-name xml:lang="en">Joe  Smith </display-name>
    </contact>
    <contact id="77" state="terminated" event="rejected" retry-after="3600"
             duration-registered="0" callid="x@y" cseq="007">
      <uri>sip:joe@university.edu</uri>
    </contact>
  </registration>
  <registration aor="sip:joe-alt@example.com" id="a8" state="init"/>
</reginfo>
"""


def test_parse_rfc3680_style_document() -> None:
    assert parse_reginfo(RFC3680_STYLE) == Reginfo(
        version=1,
        state="partial",
        registrations=(
            RegistrationInfo(
                aor="sip:joe@example.com",
                id="a7",
                state="active",
                contacts=(
                    ContactInfo(
                        id="76",
                        state="active",
                        event=ContactEvent.REGISTERED,
                        uri="sip:joe@pc887.example.com",
                        q="0.8",
                        display_name="Joe  Smith ",
                    ),
                    ContactInfo(
                        id="77",
                        state="terminated",
                        event=ContactEvent.REJECTED,
                        uri="sip:joe@university.edu",
                        callid="x@y",
                        cseq=7,
                    ),
                ),
            ),
            RegistrationInfo(aor="sip:joe-alt@example.com", id="a8", state="init"),
        ),
    )


@needs_xmllint
@pytest.mark.parametrize("document", [CLEARWATER_NOTIFY, RFC3680_STYLE], ids=["cw", "rfc"])
def test_real_documents_are_schema_valid(document: bytes) -> None:
    assert_schema_valid(document)


def test_parse_resolves_prefixes_not_spellings() -> None:
    # Any prefix may name the reginfo namespace, and gr may be declared where it is used;
    # extension elements and attributes of other namespaces (even nested reginfo-looking
    # names under them) are skipped.
    document = b"""<r:reginfo xmlns:r="urn:ietf:params:xml:ns:reginfo" xmlns:x="urn:example:x"
        version=" +0004 " state="full" x:state="bogus">
      <x:note><r:contact/></x:note>
      <r:registration aor=" sip:a@b " id="" state="active" x:extra="1">
        <r:contact id="c" state="active" event="shortened" expires=" 30 " q="1">
          <x:first/>
          <r:uri><!-- comment -->sip:<![CDATA[a@c]]></r:uri>
          <g:temp-gruu xmlns:g="urn:ietf:params:xml:ns:gruuinfo" uri="sip:t@b;gr"
              first-cseq="9" x:unused="1"><x:more/></g:temp-gruu>
          <unknown-param xmlns="urn:ietf:params:xml:ns:reginfo" name="n">v</unknown-param>
          <contact xmlns="urn:example:other"/>
        </r:contact>
      </r:registration>
    </r:reginfo>"""
    assert parse_reginfo(document) == Reginfo(
        version=4,
        state="full",
        registrations=(
            RegistrationInfo(
                aor="sip:a@b",
                id="",
                state="active",
                contacts=(
                    ContactInfo(
                        id="c",
                        state="active",
                        event=ContactEvent.SHORTENED,
                        uri="sip:a@c",
                        expires=30,
                        q="1",
                        temp_gruu=("sip:t@b;gr", 9),
                        unknown_params=(("n", "v"),),
                    ),
                ),
            ),
        ),
    )


def test_parse_non_utf8_document() -> None:
    document = (
        b'<?xml version="1.0" encoding="ISO-8859-1"?>'
        b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">'
        b'<registration aor="sip:a@b" id="r" state="active">'
        b'<contact id="c" state="active" event="registered"><uri>sip:a@c</uri>'
        b"<display-name>Jos\xe9</display-name></contact></registration></reginfo>"
    )
    contact = parse_reginfo(document).registrations[0].contacts[0]
    assert contact.display_name == "Jos\u00e9"


def _document(contact_attributes: str = "", contact_body: str = "<uri>sip:a@c</uri>") -> bytes:
    return (
        '<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" '
        'xmlns:gr="urn:ietf:params:xml:ns:gruuinfo" version="0" state="full">'
        '<registration aor="sip:a@b" id="r" state="active">'
        "<contact "
        + (contact_attributes or 'id="c" state="active" event="registered"')
        + ">"
        + contact_body
        + "</contact></registration></reginfo>"
    ).encode()


def test_document_helper_is_valid() -> None:
    assert parse_reginfo(_document()).registrations[0].contacts[0].uri == "sip:a@c"


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE reginfo [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">'
    b'<registration aor="&b;" id="r" state="init"/></reginfo>'
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE reginfo [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">'
    b'<registration aor="&e;" id="r" state="init"/></reginfo>'
)
DEEP = (
    b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">'
    + b"<x:a xmlns:x='urn:x'>" * MAX_XML_DEPTH
    + b"</x:a>" * MAX_XML_DEPTH
    + b"</reginfo>"
)

MALFORMED = {
    "empty": b"",
    "not xml": b"registered",
    "truncated": ALICE_BYTES[:-12],
    "trailing junk": ALICE_BYTES + b"<reginfo/>",
    "billion laughs": BILLION_LAUGHS,
    "external entity": EXTERNAL_ENTITY,
    "too deep": DEEP,
    "unknown encoding": b'<?xml version="1.0" encoding="base64"?><reginfo/>',
    "no such codec": b'<?xml version="1.0" encoding="x-klingon"?><reginfo/>',
    "bad UTF-8": _document().replace(b"sip:a@c", b"sip:\xff@c"),
    "no namespace": b'<reginfo version="0" state="full"/>',
    "wrong namespace": b'<reginfo xmlns="urn:ietf:params:xml:ns:pidf" version="0" state="full"/>',
    "wrong root": b'<registration xmlns="urn:ietf:params:xml:ns:reginfo" aor="a" id="1" '
    b'state="init"/>',
    "unbound prefix": b'<r:reginfo version="0" state="full"/>',
    "unbound attribute prefix": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" '
    b'state="full" q:x="1"/>',
    "undeclared prefix": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" xmlns:p="" '
    b'version="0" state="full"/>',
    "two colons": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" xmlns:a="u" version="0" '
    b'state="full"><a:b:c/></reginfo>',
    "empty prefix": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" '
    b'state="full"><:x/></reginfo>',
    "duplicate attribute": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" xmlns:a="u" '
    b'xmlns:b="u" version="0" state="full" a:x="1" b:x="2"/>',
    "no version": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" state="full"/>',
    "negative version": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="-1" '
    b'state="full"/>',
    "fraction version": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="1.0" '
    b'state="full"/>',
    "hex version": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0x1" state="full"/>',
    "unicode digit version": '<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="\u0661" '
    'state="full"/>'.encode(),
    "huge version": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" '
    b'version="18446744073709551616" state="full"/>',
    "enormous version": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="'
    + b"9" * 5000
    + b'" state="full"/>',
    "no state": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0"/>',
    "bad state": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="FULL"/>',
    "misplaced contact": b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" '
    b'state="full"><contact id="c" state="active" event="registered"><uri>u</uri></contact>'
    b"</reginfo>",
    "registration without aor": _document().replace(b'aor="sip:a@b" ', b""),
    "registration without id": _document().replace(b'id="r" ', b""),
    "registration bad state": _document().replace(b'state="active">', b'state="expired">', 1),
    "qualified registration attributes": _document().replace(
        b'<registration aor="sip:a@b"',
        b'<registration xmlns:q="urn:ietf:params:xml:ns:reginfo" q:aor="sip:a@b"',
    ),
    "contact without id": _document('state="active" event="registered"'),
    "contact without state": _document('id="c" event="registered"'),
    "contact without event": _document('id="c" state="active"'),
    "contact bad state": _document('id="c" state="init" event="registered"'),
    "contact bad event": _document('id="c" state="active" event="Registered"'),
    "contact bad expires": _document('id="c" state="active" event="registered" expires="soon"'),
    "contact negative cseq": _document('id="c" state="active" event="registered" cseq="-1"'),
    "contact without uri": _document(contact_body="<display-name>x</display-name>"),
    "contact with two uris": _document(contact_body="<uri>sip:a@c</uri><uri>sip:a@d</uri>"),
    "uri with markup": _document(contact_body="<uri>sip:<b>a</b>@c</uri>"),
    "two display names": _document(
        contact_body="<uri>u</uri><display-name>a</display-name><display-name>b</display-name>"
    ),
    "unknown-param without name": _document(
        contact_body="<uri>u</uri><unknown-param>v</unknown-param>"
    ),
    "unknown reginfo element": _document(contact_body="<uri>u</uri><duration>5</duration>"),
    "pub-gruu without uri": _document(contact_body="<uri>u</uri><gr:pub-gruu/>"),
    "two pub-gruus": _document(
        contact_body='<uri>u</uri><gr:pub-gruu uri="a"/><gr:pub-gruu uri="b"/>'
    ),
    "temp-gruu without first-cseq": _document(contact_body='<uri>u</uri><gr:temp-gruu uri="a"/>'),
    "temp-gruu without uri": _document(contact_body='<uri>u</uri><gr:temp-gruu first-cseq="1"/>'),
    "temp-gruu bad first-cseq": _document(
        contact_body='<uri>u</uri><gr:temp-gruu uri="a" first-cseq="1e3"/>'
    ),
    "two temp-gruus": _document(
        contact_body='<uri>u</uri><gr:temp-gruu uri="a" first-cseq="1"/>'
        '<gr:temp-gruu uri="b" first-cseq="2"/>'
    ),
}


#: The reason each malformed document is refused with (its start: expat adds positions).
MALFORMED_REASONS = {
    "empty": "Bad reginfo XML: no element found",
    "not xml": "Bad reginfo XML: syntax error",
    "truncated": "Bad reginfo XML: unclosed token",
    "trailing junk": "Bad reginfo XML: junk after document element",
    "billion laughs": "Bad reginfo XML: DOCTYPE and ENTITY declarations are not allowed",
    "external entity": "Bad reginfo XML: DOCTYPE and ENTITY declarations are not allowed",
    "too deep": "Bad reginfo XML: elements nested deeper than 50",
    "unknown encoding": "Bad reginfo XML: unknown encoding",
    "no such codec": "Bad reginfo XML: unknown encoding",
    "bad UTF-8": "Bad reginfo XML: not well-formed (invalid token)",
    "no namespace": "Bad reginfo: root element is not reginfo",
    "wrong namespace": "Bad reginfo: root element is not reginfo",
    "wrong root": "Bad reginfo: root element is not reginfo",
    "unbound prefix": "Bad reginfo XML: unbound prefix 'r'",
    "unbound attribute prefix": "Bad reginfo XML: unbound prefix 'q'",
    "undeclared prefix": "Bad reginfo XML: bad namespace declaration 'xmlns:p'",
    "two colons": "Bad reginfo XML: bad qualified name 'a:b:c'",
    "empty prefix": "Bad reginfo XML: bad qualified name ':x'",
    "duplicate attribute": "Bad reginfo XML: duplicate attribute '{u}x'",
    "no version": "Bad reginfo: reginfo has no version",
    "negative version": "Bad reginfo: reginfo version '-1'",
    "fraction version": "Bad reginfo: reginfo version '1.0'",
    "hex version": "Bad reginfo: reginfo version '0x1'",
    "unicode digit version": "Bad reginfo: reginfo version '?'",
    "huge version": "Bad reginfo: reginfo version '18446744073709551616'",
    "enormous version": "Bad reginfo: reginfo version '999999999999999999999999999999'",
    "no state": "Bad reginfo: reginfo has no state",
    "bad state": "Bad reginfo: reginfo state 'FULL'",
    "misplaced contact": "Bad reginfo: unexpected contact in reginfo",
    "registration without aor": "Bad reginfo: registration has no aor",
    "registration without id": "Bad reginfo: registration has no id",
    "registration bad state": "Bad reginfo: registration state 'expired'",
    "qualified registration attributes": "Bad reginfo: registration has no aor",
    "contact without id": "Bad reginfo: contact has no id",
    "contact without state": "Bad reginfo: contact has no state",
    "contact without event": "Bad reginfo: contact has no event",
    "contact bad state": "Bad reginfo: contact state 'init'",
    "contact bad event": "Bad reginfo: contact event 'Registered'",
    "contact bad expires": "Bad reginfo: contact expires 'soon'",
    "contact negative cseq": "Bad reginfo: contact cseq '-1'",
    "contact without uri": "Bad reginfo: contact has no uri",
    "contact with two uris": "Bad reginfo: contact has more than one uri",
    "uri with markup": "Bad reginfo: uri has child elements",
    "two display names": "Bad reginfo: contact has more than one display-name",
    "unknown-param without name": "Bad reginfo: unknown-param has no name",
    "unknown reginfo element": "Bad reginfo: unexpected duration in contact",
    "pub-gruu without uri": "Bad reginfo: pub-gruu has no uri",
    "two pub-gruus": "Bad reginfo: contact has more than one pub-gruu",
    "temp-gruu without first-cseq": "Bad reginfo: temp-gruu has no first-cseq",
    "temp-gruu without uri": "Bad reginfo: temp-gruu has no uri",
    "temp-gruu bad first-cseq": "Bad reginfo: temp-gruu first-cseq '1e3'",
    "two temp-gruus": "Bad reginfo: contact has more than one temp-gruu",
}


@pytest.mark.parametrize("name", MALFORMED)
def test_parse_refuses_malformed(name: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_reginfo(MALFORMED[name])
    assert caught.value.reason.startswith(MALFORMED_REASONS[name])
    assert caught.value.status == 400


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_reginfo(data)


@settings(max_examples=300)
@given(st.data())
def test_damaged_documents_raise_only_parse_error(data: st.DataObject) -> None:
    # Damage a valid document: splice random bytes in at random places, or cut it short.
    document = bytearray(ALICE_BYTES)
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.integers(0, len(document)))
        end = data.draw(st.integers(start, min(len(document), start + 8)))
        document[start:end] = data.draw(
            st.binary(max_size=6) | st.sampled_from([b"<", b">", b'"', b"&", b":", b"/>", b"x:"])
        )
    try:
        info = parse_reginfo(bytes(document))
    except ParseError:
        return
    assert isinstance(info, Reginfo)
