"""Homestead-prov's provisioning API (spec §6.6, crest ``docs/homestead_prov_api.md``).

Requests go through a real :class:`~twisted.web.server.Site` and its HTTP channel over a
``StringTransport`` on a ``MemoryReactorClock``; the store answers at once, so each response is
complete when ``dataReceived`` returns (the paced ``/public/`` listing waits for the clock).
Assertions are on the response bytes and on the store's records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Callable, Optional

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.web.server import Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from clearwater._xml import parse_xml
from clearwater.errors import ParseError
from clearwater.http.homestead_prov import (
    HomesteadProvResource,
    homestead_prov_children,
    homestead_prov_resource,
    parse_public_identity,
    parse_service_profile_ifcs,
)
from clearwater.sip.auth import digest_ha1
from clearwater.stores.interfaces import (
    ISubscriberStore,
    StoreTimeoutError,
    StoreUnavailableError,
)
from clearwater.stores.memory import MemorySubscriberStore
from clearwater.stores.records import (
    AkaCredentials,
    PrivateIdentity,
    PublicIdentity,
    ServiceProfile,
)

_PEER = IPv4Address("TCP", "127.0.0.1", 40000)
_HOST = IPv4Address("TCP", "127.0.0.1", 8889)
_DOMAIN = "example.com"

IFC = (
    "<InitialFilterCriteria><Priority>1</Priority><TriggerPoint><ConditionTypeCNF>0"
    "</ConditionTypeCNF><SPT><ConditionNegated>0</ConditionNegated><Group>0</Group>"
    "<Method>INVITE</Method></SPT></TriggerPoint><ApplicationServer>"
    "<ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling>"
    "</ApplicationServer></InitialFilterCriteria>"
)


# --------------------------------------------------------------------------- a store


def make_store() -> ISubscriberStore:
    """The subscriber store the tests run against (answers at once)."""
    return MemorySubscriberStore()


def test_store_provides_the_interface() -> None:
    assert verifyObject(ISubscriberStore, make_store())


# --------------------------------------------------------------------------- plumbing


class _Response:
    def __init__(self, raw: bytes) -> None:
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        assert sep, raw
        status_line, *lines = head.split(b"\r\n")
        version, code, _reason = status_line.split(b" ", 2)
        assert version == b"HTTP/1.1"
        self.code = int(code)
        self.headers: dict[bytes, list[bytes]] = {}
        for line in lines:
            name, _, value = line.partition(b": ")
            self.headers.setdefault(name.lower(), []).append(value)

    def header(self, name: bytes) -> Optional[bytes]:
        values = self.headers.get(name.lower())
        if values is None:
            return None
        (value,) = values
        return value

    def json(self) -> Any:
        assert self.header(b"content-type") == b"application/json"
        assert self.header(b"content-length") == b"%d" % len(self.body)
        return json.loads(self.body)

    def error(self) -> str:
        body = self.json()
        assert set(body) == {"error"}
        text = body["error"]
        assert isinstance(text, str)
        return text


class _Api:
    """A Site serving the API over one store, and a way to send it requests."""

    def __init__(
        self,
        store: Optional[ISubscriberStore] = None,
        *,
        pacing: float = 0.0,
        page_size: int = 1000,
        max_body: int = 256 * 1024,
    ) -> None:
        self.reactor = MemoryReactorClock()  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.store = make_store() if store is None else store
        resource = homestead_prov_resource(
            self.store,
            _DOMAIN,
            reactor=self.reactor,
            pacing=pacing,
            page_size=page_size,
            max_body=max_body,
        )
        self.site = Site(resource, reactor=self.reactor)  # type: ignore[no-untyped-call]

    def send(
        self, method: bytes, path: bytes, body: bytes = b"", headers: Iterable[bytes] = ()
    ) -> StringTransport:
        return self.connect(method, path, body, headers)[1]

    def connect(
        self, method: bytes, path: bytes, body: bytes = b"", headers: Iterable[bytes] = ()
    ) -> tuple[IProtocol, StringTransport]:
        protocol = self.site.buildProtocol(_PEER)  # type: ignore[no-untyped-call]
        assert IProtocol.providedBy(protocol)
        transport = StringTransport(hostAddress=_HOST, peerAddress=_PEER)  # type: ignore[no-untyped-call]
        protocol.makeConnection(transport)
        extra = b"".join(h + b"\r\n" for h in headers)
        protocol.dataReceived(
            method
            + b" "
            + path
            + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            + extra
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        return protocol, transport

    def call(
        self, method: bytes, path: bytes, body: bytes = b"", headers: Iterable[bytes] = ()
    ) -> _Response:
        transport = self.send(method, path, body, headers)
        response = _Response(transport.value())  # type: ignore[no-untyped-call]
        assert transport.disconnecting
        return response

    def put_json(self, path: bytes, value: Any) -> _Response:
        return self.call(
            b"PUT", path, json.dumps(value).encode(), [b"Content-Type: application/json"]
        )

    # -- building subscribers through the API

    def new_irs(self) -> str:
        response = self.call(b"POST", b"/irs/")
        assert response.code == 201, response.body
        location = response.header(b"location")
        assert location is not None and location.startswith(b"/irs/")
        return location[len(b"/irs/") :].decode()

    def new_sp(self, irs: str) -> str:
        response = self.call(b"POST", b"/irs/" + irs.encode() + b"/service_profiles")
        assert response.code == 201, response.body
        location = response.header(b"location")
        prefix = b"/irs/" + irs.encode() + b"/service_profiles/"
        assert location is not None and location.startswith(prefix)
        return location[len(prefix) :].decode()

    def put_public(self, irs: str, sp: str, impu: str, xml: Optional[str] = None) -> _Response:
        body = (
            xml
            if xml is not None
            else "<PublicIdentity><Identity>" + impu + "</Identity></PublicIdentity>"
        )
        return self.call(b"PUT", _sp_path(irs, sp) + b"/public_ids/" + _q(impu), body.encode())

    def subscriber(
        self, impu: str = "sip:alice@example.com", impi: str = "alice@example.com"
    ) -> tuple[str, str]:
        assert self.put_json(b"/private/" + _q(impi), {"plaintext_password": "secret"}).code == 200
        irs = self.new_irs()
        path = b"/private/" + _q(impi) + b"/associated_implicit_registration_sets/" + irs.encode()
        assert self.call(b"PUT", path).code == 200
        sp = self.new_sp(irs)
        assert self.put_public(irs, sp, impu).code == 200
        return irs, sp


def _q(text: str) -> bytes:
    from urllib.parse import quote

    return quote(text, safe="").encode()


def _sp_path(irs: str, sp: str) -> bytes:
    return b"/irs/" + irs.encode() + b"/service_profiles/" + sp.encode()


def _result(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "store call did not complete"
    return results[0]


@pytest.fixture
def api() -> _Api:
    return _Api()


# --------------------------------------------------------------------------- helpers


def test_digest_ha1_is_rfc2617_md5() -> None:
    expected = hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()
    assert digest_ha1("alice@example.com", "example.com", "secret") == expected


def test_resource_tree_provides_iresource() -> None:
    from twisted.web.resource import IResource

    root = homestead_prov_resource(make_store(), _DOMAIN)
    assert isinstance(root, HomesteadProvResource)
    assert verifyObject(IResource, root)
    children = homestead_prov_children(make_store(), _DOMAIN)
    assert sorted(children) == [b"irs", b"private", b"public"]
    for child in children.values():
        assert verifyObject(IResource, child)


def test_children_reject_bad_settings() -> None:
    with pytest.raises(ValueError, match="page_size"):
        homestead_prov_children(make_store(), _DOMAIN, page_size=0)
    with pytest.raises(ValueError, match="pacing"):
        homestead_prov_children(make_store(), _DOMAIN, pacing=-1)


def test_parse_xml_refuses_doctype_and_entities() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><PublicIdentity>&lol2;</PublicIdentity>'
    )
    with pytest.raises(ParseError, match="DOCTYPE and ENTITY declarations are not allowed"):
        parse_xml(laughs, "PublicIdentity")
    external = b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>'
    with pytest.raises(ParseError, match="DOCTYPE"):
        parse_xml(external, "x")


def test_parse_xml_refuses_deep_nesting() -> None:
    assert parse_xml(b"<a>" * 50 + b"</a>" * 50, "deep").tag == "a"
    with pytest.raises(ParseError, match="nested deeper than 50"):
        parse_xml(b"<a>" * 51 + b"</a>" * 51, "deep")


def test_deeply_nested_public_identity_is_400(api: _Api) -> None:
    irs = api.new_irs()
    sp = api.new_sp(irs)
    body = b"<PublicIdentity>" + b"<x>" * 5000 + b"</x>" * 5000 + b"</PublicIdentity>"
    response = api.call(b"PUT", _sp_path(irs, sp) + b"/public_ids/a", body)
    assert response.code == 400
    assert response.error() == "Bad PublicIdentity XML: elements nested deeper than 50"


@pytest.mark.parametrize(
    "data",
    [b"", b"<a>", b"<a></b>", b"<a/><b/>", b"not xml", b"\xff\xfe<", b"<a>&undefined;</a>"],
)
def test_parse_xml_malformed_raises_parse_error_only(data: bytes) -> None:
    with pytest.raises(ParseError, match=r"^Bad thing XML: "):
        parse_xml(data, "thing")


def test_parse_public_identity_reads_barring_and_wildcards() -> None:
    plain = parse_public_identity(
        b"<PublicIdentity>\n  <Identity> sip:a@example.com </Identity>\n</PublicIdentity>", "i", "s"
    )
    assert plain == PublicIdentity(
        impu="sip:a@example.com",
        irs="i",
        sp="s",
        xml="<PublicIdentity>\n  <Identity>sip:a@example.com</Identity>\n</PublicIdentity>",
    )
    barred = parse_public_identity(
        b"<PublicIdentity><BarringIndication>1</BarringIndication>"
        b"<Identity>sip:b@example.com</Identity></PublicIdentity>",
        "i",
        "s",
    )
    assert barred.barred and barred.wildcard is None
    unbarred = parse_public_identity(
        b"<PublicIdentity><BarringIndication>0</BarringIndication>"
        b"<Identity>sip:b@example.com</Identity></PublicIdentity>",
        "i",
        "s",
    )
    assert not unbarred.barred
    extension = parse_public_identity(
        b"<PublicIdentity><Identity>sip:c@example.com</Identity><Extension>"
        b"<IdentityType>3</IdentityType><WildcardedIMPU>sip:!.*!@example.com</WildcardedIMPU>"
        b"</Extension></PublicIdentity>",
        "i",
        "s",
    )
    assert extension.wildcard == "sip:!.*!@example.com"
    bang = parse_public_identity(
        b"<PublicIdentity><Identity>sip:!605.*!@example.com</Identity></PublicIdentity>", "i", "s"
    )
    assert bang.wildcard == "sip:!605.*!@example.com"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<Identity>sip:a@b</Identity>", "root element is Identity"),
        (b"<PublicIdentity/>", "no Identity"),
        (b"<PublicIdentity><Identity> </Identity></PublicIdentity>", "no Identity"),
        (b"<PublicIdentity><Identity>sip:a@b</Identity>", "Bad PublicIdentity XML"),
    ],
)
def test_parse_public_identity_rejects(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_public_identity(data, "i", "s")


def test_parse_service_profile_ifcs_keeps_ifcs_in_order() -> None:
    second = IFC.replace("<Priority>1</Priority>", "<Priority>2</Priority>")
    doc = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ServiceProfile>\n'
        + IFC
        + "\n"
        + second
        + "\n</ServiceProfile>"
    )
    assert parse_service_profile_ifcs(doc.encode()) == IFC + second
    with pytest.raises(ParseError, match="no InitialFilterCriteria"):
        parse_service_profile_ifcs(b"<ServiceProfile/>")
    with pytest.raises(ParseError, match="root element is InitialFilterCriteria"):
        parse_service_profile_ifcs(IFC.encode())
    with pytest.raises(ParseError, match="unsupported element PublicIdentity"):
        parse_service_profile_ifcs(b"<ServiceProfile><PublicIdentity/></ServiceProfile>")


# --------------------------------------------------------------------------- /private


def test_put_private_digest_then_get(api: _Api) -> None:
    ha1 = "0123456789abcdef0123456789ABCDEF"
    response = api.put_json(b"/private/alice%40example.com", {"digest_ha1": ha1})
    assert response.code == 200
    assert response.body == b""
    got = api.call(b"GET", b"/private/alice%40example.com")
    assert got.code == 200
    assert got.json() == {"digest_ha1": ha1.lower(), "realm": _DOMAIN}
    record = _result(api.store.get_private("alice@example.com"))
    assert record == PrivateIdentity(
        impi="alice@example.com", realm=_DOMAIN, digest_ha1=ha1.lower()
    )


def test_put_private_plaintext_computes_ha1_with_default_realm(api: _Api) -> None:
    assert api.put_json(b"/private/alice@example.com", {"plaintext_password": "secret"}).code == 200
    body = api.call(b"GET", b"/private/alice@example.com/").json()
    assert body == {
        "digest_ha1": hashlib.md5(b"alice@example.com:example.com:secret").hexdigest(),
        "realm": "example.com",
        "plaintext_password": "secret",
    }


def test_put_private_with_realm_and_digest_drops_plaintext(api: _Api) -> None:
    api.put_json(b"/private/bob", {"plaintext_password": "pw", "realm": "other.net"})
    assert api.call(b"GET", b"/private/bob").json()["digest_ha1"] == digest_ha1(
        "bob", "other.net", "pw"
    )
    assert api.put_json(b"/private/bob", {"digest_ha1": "a" * 32, "realm": "r"}).code == 200
    assert api.call(b"GET", b"/private/bob").json() == {"digest_ha1": "a" * 32, "realm": "r"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "Empty body"),
        (b"  ", "Empty body"),
        (b"{", "Invalid JSON: "),
        (b"[1]", "Invalid JSON: not an object"),
        (b"\xff", "Invalid JSON: "),
        (b"[" * 100000 + b"]" * 100000, "Invalid JSON"),
        (b'{"realm": "x"}', "Invalid JSON - missing keys"),
        (b'{"digest_ha1": "", "plaintext_password": ""}', "Invalid JSON - missing keys"),
        (
            b'{"digest_ha1": "' + b"a" * 32 + b'", "plaintext_password": "p"}',
            "Invalid JSON - too many keys",
        ),
        (b'{"digest_ha1": "xyz"}', "digest_ha1 must be 32 hex digits"),
        (b'{"digest_ha1": 5}', "digest_ha1 must be a string"),
        (b'{"plaintext_password": "p", "realm": 7}', "realm must be a string"),
    ],
)
def test_put_private_bad_bodies_are_400(api: _Api, body: bytes, message: str) -> None:
    response = api.call(b"PUT", b"/private/alice", body)
    assert response.code == 400
    assert message in response.error()
    assert _result(api.store.get_private("alice")) is None


def test_get_and_delete_private(api: _Api) -> None:
    response = api.call(b"GET", b"/private/nobody")
    assert response.code == 404
    assert response.error() == "No private identity nobody"
    api.put_json(b"/private/alice", {"plaintext_password": "pw"})
    deleted = api.call(b"DELETE", b"/private/alice")
    assert deleted.code == 200
    assert _result(api.store.get_private("alice")) is None
    again = api.call(b"DELETE", b"/private/alice")
    assert again.code == 204
    assert again.body == b""
    assert again.header(b"content-length") is None


# -- the AKA extension

_K = "465b5ce8b199b49faa5f0a2ee238a6bc"  # TS 35.208 §4.3 test set 1
_OP = "cdc202d5123e20f62b6d676ac72cb318"
_OPC = "cd63cb71954a9f4e48a5994e37a02baf"


def test_put_private_aka_with_op_derives_opc(api: _Api) -> None:
    body = {"aka": {"k": _K, "op": _OP, "amf": "b9b9", "sqn": 42}}
    assert api.put_json(b"/private/ue@example.com", body).code == 200
    record = _result(api.store.get_private("ue@example.com"))
    assert record == PrivateIdentity(
        impi="ue@example.com",
        realm=_DOMAIN,
        aka=AkaCredentials(k=bytes.fromhex(_K), opc=bytes.fromhex(_OPC), amf=b"\xb9\xb9", sqn=42),
    )
    shown = api.call(b"GET", b"/private/ue@example.com").json()
    assert shown == {"digest_ha1": "", "realm": _DOMAIN, "aka": {"amf": "b9b9", "sqn": 42}}
    assert _K not in json.dumps(shown) and _OPC not in json.dumps(shown)


def test_put_private_aka_with_opc_defaults_and_is_kept_by_a_password_put(api: _Api) -> None:
    assert api.put_json(b"/private/ue", {"aka": {"k": _K, "opc": _OPC}}).code == 200
    aka = AkaCredentials(k=bytes.fromhex(_K), opc=bytes.fromhex(_OPC), amf=b"\x80\x00", sqn=0)
    assert _result(api.store.get_private("ue")).aka == aka
    assert api.put_json(b"/private/ue", {"plaintext_password": "pw"}).code == 200
    record = _result(api.store.get_private("ue"))
    assert record.aka == aka and record.plaintext_password == "pw"
    assert api.put_json(b"/private/ue", {"plaintext_password": "pw", "aka": None}).code == 200
    assert _result(api.store.get_private("ue")).aka is None


@pytest.mark.parametrize(
    ("aka", "message"),
    [
        ("x", "aka must be an object"),
        ({"opc": _OPC}, "aka.k must be 32 hex"),
        ({"k": _K[:-2], "opc": _OPC}, "aka.k must be 32 hex"),
        ({"k": _K}, "exactly one of op and opc"),
        ({"k": _K, "op": _OP, "opc": _OPC}, "exactly one of op and opc"),
        ({"k": _K, "opc": "zz" * 16}, "aka.opc must be 32 hex"),
        ({"k": _K, "opc": _OPC, "amf": "8"}, "aka.amf must be 4 hex"),
        ({"k": _K, "opc": _OPC, "sqn": -1}, "aka.sqn"),
        ({"k": _K, "opc": _OPC, "sqn": 1 << 48}, "aka.sqn"),
        ({"k": _K, "opc": _OPC, "sqn": True}, "aka.sqn"),
        ({"k": _K, "opc": _OPC, "sqn": "1"}, "aka.sqn"),
    ],
)
def test_put_private_bad_aka_is_400(api: _Api, aka: Any, message: str) -> None:
    response = api.put_json(b"/private/ue", {"aka": aka})
    assert response.code == 400
    assert message in response.error()


# -- associations


def test_private_irs_associations(api: _Api) -> None:
    api.put_json(b"/private/alice", {"plaintext_password": "pw"})
    irs = api.new_irs()
    path = b"/private/alice/associated_implicit_registration_sets"
    assert api.call(b"GET", path).json() == {"associated_implicit_registration_sets": []}
    assert api.call(b"PUT", path + b"/" + irs.encode()).code == 200
    assert api.call(b"GET", path + b"/").json() == {"associated_implicit_registration_sets": [irs]}
    assert api.call(b"GET", b"/irs/" + irs.encode() + b"/private_ids").json() == {
        "private_ids": ["alice"]
    }
    not_empty = api.call(b"DELETE", path + b"/" + irs.encode(), b"x")
    assert not_empty.code == 400 and not_empty.error() == "Body not empty"
    assert api.call(b"DELETE", path + b"/" + irs.encode()).code == 200
    assert api.call(b"GET", path).json() == {"associated_implicit_registration_sets": []}


def test_private_association_errors(api: _Api) -> None:
    irs = api.new_irs()
    unknown_private = api.call(
        b"PUT", b"/private/nobody/associated_implicit_registration_sets/" + irs.encode()
    )
    assert unknown_private.code == 404
    assert "nobody" in unknown_private.error()
    api.put_json(b"/private/alice", {"plaintext_password": "pw"})
    unknown_irs = api.call(
        b"PUT", b"/private/alice/associated_implicit_registration_sets/no-such-irs"
    )
    assert unknown_irs.code == 404
    assert "no-such-irs" in unknown_irs.error()
    not_empty = api.call(
        b"PUT", b"/private/alice/associated_implicit_registration_sets/" + irs.encode(), b"{}"
    )
    assert not_empty.code == 400
    gone = api.call(
        b"DELETE", b"/private/nobody/associated_implicit_registration_sets/" + irs.encode()
    )
    assert gone.code == 204
    assert api.call(b"GET", b"/private/nobody/associated_implicit_registration_sets").code == 404
    assert api.call(b"GET", b"/private/nobody/associated_public_ids").code == 404


def test_associated_public_ids(api: _Api) -> None:
    api.subscriber("sip:alice@example.com", "alice@example.com")
    body = api.call(b"GET", b"/private/alice%40example.com/associated_public_ids").json()
    assert body == {"associated_public_ids": ["sip:alice@example.com"]}


# --------------------------------------------------------------------------- /irs


def test_post_irs_gives_201_and_location(api: _Api) -> None:
    response = api.call(b"POST", b"/irs")
    assert response.code == 201
    location = response.header(b"location")
    assert location is not None
    irs = location.decode().split("/")[-1]
    assert location == b"/irs/" + irs.encode()
    assert _result(api.store.privates_of_irs(irs)) == []
    assert api.call(b"POST", b"/irs", b"body").code == 400


def test_delete_irs_cascades_and_is_204_when_unknown(api: _Api) -> None:
    irs, _sp = api.subscriber()
    not_empty = api.call(b"DELETE", b"/irs/" + irs.encode(), b"x")
    assert not_empty.code == 400
    assert api.call(b"DELETE", b"/irs/" + irs.encode()).code == 200
    assert _result(api.store.get_public("sip:alice@example.com")) is None
    assert _result(api.store.irs_of_private("alice@example.com")) == []
    assert api.call(b"DELETE", b"/irs/" + irs.encode()).code == 204


def test_irs_public_and_private_ids(api: _Api) -> None:
    irs, sp = api.subscriber()
    assert api.put_public(irs, sp, "tel:+15551234").code == 200
    second = api.new_sp(irs)
    assert api.put_public(irs, second, "sip:alias@example.com").code == 200
    body = api.call(b"GET", b"/irs/" + irs.encode() + b"/public_ids").json()
    assert body == {
        "public_ids": ["sip:alice@example.com", "tel:+15551234", "sip:alias@example.com"]
    }
    privates = api.call(b"GET", b"/irs/" + irs.encode() + b"/private_ids/").json()
    assert privates == {"private_ids": ["alice@example.com"]}
    in_sp = api.call(b"GET", _sp_path(irs, sp) + b"/public_ids").json()
    assert in_sp == {"public_ids": ["sip:alice@example.com", "tel:+15551234"]}
    assert api.call(b"GET", _sp_path(irs, "nope") + b"/public_ids").code == 404


def test_unknown_irs_lists_are_404(api: _Api) -> None:
    for tail in (b"/public_ids", b"/private_ids"):
        response = api.call(b"GET", b"/irs/no-such-irs" + tail)
        assert response.code == 404
        assert response.error() == "No implicit registration set no-such-irs"


def test_mounted_beside_the_management_resource() -> None:
    from prometheus_client import CollectorRegistry

    from clearwater.http.management import management_resource

    store = make_store()
    root = management_resource(
        CollectorRegistry(), children=homestead_prov_children(store, _DOMAIN, pacing=0)
    )
    reactor = MemoryReactorClock()  # type: ignore[no-untyped-call]  # untyped in Twisted
    site = Site(root, reactor=reactor)  # type: ignore[no-untyped-call]  # untyped in Twisted
    api = _Api(store)
    api.site = site
    assert api.call(b"GET", b"/ping").body == b"OK"
    assert api.call(b"POST", b"/irs").code == 201
    assert api.call(b"GET", b"/private/nobody").error() == "No private identity nobody"


def test_irs_private_ids_put_and_delete(api: _Api) -> None:
    irs = api.new_irs()
    api.put_json(b"/private/bob", {"plaintext_password": "pw"})
    path = b"/irs/" + irs.encode() + b"/private_ids/bob"
    assert api.call(b"PUT", path).code == 200
    assert _result(api.store.irs_of_private("bob")) == [irs]
    assert api.call(b"PUT", b"/irs/" + irs.encode() + b"/private_ids/nobody").code == 404
    assert api.call(b"PUT", b"/irs/no-such-irs/private_ids/bob").code == 404
    assert api.call(b"DELETE", path).code == 200
    assert _result(api.store.irs_of_private("bob")) == []
    assert api.call(b"DELETE", b"/irs/" + irs.encode() + b"/private_ids/nobody").code == 404
    assert api.call(b"DELETE", b"/irs/no-such-irs/private_ids/bob").code == 404


# -- service profiles


def test_service_profiles(api: _Api) -> None:
    irs = api.new_irs()
    sp = api.new_sp(irs)
    assert _result(api.store.get_service_profile(irs, sp)) == ServiceProfile(irs=irs, sp=sp)
    unknown = api.call(b"POST", b"/irs/no-such-irs/service_profiles")
    assert unknown.code == 404
    assert "no-such-irs" in unknown.error()
    assert api.call(b"POST", b"/irs/" + irs.encode() + b"/service_profiles", b"x").code == 400
    assert api.call(b"DELETE", _sp_path(irs, sp)).code == 200
    assert _result(api.store.get_service_profile(irs, sp)) is None
    assert api.call(b"DELETE", _sp_path(irs, sp)).code == 204


def test_put_public_identity(api: _Api) -> None:
    irs = api.new_irs()
    sp = api.new_sp(irs)
    xml = (
        "<PublicIdentity><BarringIndication>1</BarringIndication>"
        "<Identity>sip:alice@example.com</Identity></PublicIdentity>"
    )
    assert api.put_public(irs, sp, "sip:alice@example.com", xml).code == 200
    assert _result(api.store.get_public("sip:alice@example.com")) == PublicIdentity(
        impu="sip:alice@example.com", irs=irs, sp=sp, xml=xml, barred=True
    )
    wildcard = "<PublicIdentity><Identity>sip:!.*!@example.com</Identity></PublicIdentity>"
    assert api.put_public(irs, sp, "sip:!.*!@example.com", wildcard).code == 200
    stored = _result(api.store.get_public("sip:!.*!@example.com"))
    assert stored.wildcard == "sip:!.*!@example.com"


def test_put_public_identity_errors(api: _Api) -> None:
    irs = api.new_irs()
    sp = api.new_sp(irs)
    path = _sp_path(irs, sp) + b"/public_ids/" + _q("sip:alice@example.com")
    mismatch = api.call(
        b"PUT", path, b"<PublicIdentity><Identity>sip:eve@example.com</Identity></PublicIdentity>"
    )
    assert mismatch.code == 403
    assert mismatch.error() == "Incorrect XML Identity"
    malformed = api.call(b"PUT", path, b"<PublicIdentity><Identity>")
    assert malformed.code == 400
    assert malformed.error().startswith("Bad PublicIdentity XML: ")
    empty = api.call(b"PUT", path)
    assert empty.code == 400 and empty.error() == "Body is empty"
    doctype = api.call(b"PUT", path, b'<!DOCTYPE x [<!ENTITY a "b">]><PublicIdentity/>')
    assert doctype.code == 400
    assert "DOCTYPE" in doctype.error()
    body = b"<PublicIdentity><Identity>sip:alice@example.com</Identity></PublicIdentity>"
    unknown_sp = api.call(
        b"PUT", _sp_path(irs, "nope") + b"/public_ids/" + _q("sip:alice@example.com"), body
    )
    assert unknown_sp.code == 404
    assert _result(api.store.get_public("sip:alice@example.com")) is None


def test_delete_public_identity(api: _Api) -> None:
    irs, sp = api.subscriber()
    other_irs = api.new_irs()
    other_sp = api.new_sp(other_irs)
    impu = _q("sip:alice@example.com")
    wrong = api.call(b"DELETE", _sp_path(other_irs, other_sp) + b"/public_ids/" + impu)
    assert wrong.code == 403
    assert wrong.error() == "Public ID not a child of Service Profile"
    assert api.call(b"DELETE", _sp_path(irs, sp) + b"/public_ids/" + impu).code == 200
    assert _result(api.store.get_public("sip:alice@example.com")) is None
    missing = api.call(b"DELETE", _sp_path(irs, sp) + b"/public_ids/" + impu)
    assert missing.code == 404
    assert missing.error() == "No public identity sip:alice@example.com"


def test_filter_criteria_put_and_get(api: _Api) -> None:
    irs, sp = api.subscriber()
    path = _sp_path(irs, sp) + b"/filter_criteria"
    none = api.call(b"GET", path)
    assert none.code == 404
    assert "No iFCs" in none.error()
    doc = (
        b'<?xml version="1.0" encoding="UTF-8"?><ServiceProfile>'
        + IFC.encode()
        + b"</ServiceProfile>"
    )
    assert api.call(b"PUT", path, doc, [b"Content-Type: application/xml"]).code == 200
    assert _result(api.store.get_service_profile(irs, sp)).ifcs_xml == IFC
    got = api.call(b"GET", path)
    assert got.code == 200
    assert got.header(b"content-type") == b"application/xml; charset=utf-8"
    assert got.body == doc
    assert parse_service_profile_ifcs(got.body) == IFC


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "Body is empty"),
        (b"<ServiceProfile>", "Bad ServiceProfile XML: "),
        (b"<ServiceProfile/>", "no InitialFilterCriteria"),
        (b"<IMSSubscription/>", "root element is IMSSubscription"),
    ],
)
def test_filter_criteria_bad_xml_is_400(api: _Api, body: bytes, message: str) -> None:
    irs, sp = api.subscriber()
    response = api.call(b"PUT", _sp_path(irs, sp) + b"/filter_criteria", body)
    assert response.code == 400
    assert message in response.error()


def test_filter_criteria_unknown_profile_is_404(api: _Api) -> None:
    irs = api.new_irs()
    doc = b"<ServiceProfile>" + IFC.encode() + b"</ServiceProfile>"
    assert api.call(b"PUT", _sp_path(irs, "nope") + b"/filter_criteria", doc).code == 404
    assert api.call(b"GET", _sp_path(irs, "nope") + b"/filter_criteria").code == 404


# --------------------------------------------------------------------------- /public


def test_public_redirects(api: _Api) -> None:
    irs, sp = api.subscriber()
    impu = b"sip%3Aalice%40example.com"
    to_sp = api.call(b"GET", b"/public/" + impu + b"/service_profile")
    assert to_sp.code == 303
    assert to_sp.header(b"location") == _sp_path(irs, sp)
    to_irs = api.call(b"GET", b"/public/" + impu + b"/irs/")
    assert to_irs.code == 303
    assert to_irs.header(b"location") == b"/irs/" + irs.encode()
    assert api.call(b"GET", b"/public/sip:alice@example.com/irs").code == 303
    privates = api.call(b"GET", b"/public/" + impu + b"/associated_private_ids").json()
    assert privates == {"private_ids": ["alice@example.com"]}
    for tail in (b"/service_profile", b"/irs/", b"/associated_private_ids"):
        missing = api.call(b"GET", b"/public/sip%3Abob%40example.com" + tail)
        assert missing.code == 404
        assert missing.error() == "No public identity sip:bob@example.com"


def _listing(api: _Api, query: bytes) -> Any:
    response = api.call(b"GET", b"/public/" + query)
    assert response.code == 200, response.body
    return response.json()


def test_public_listing_all_and_by_chunk(api: _Api) -> None:
    irs, sp = api.subscriber("sip:u00@example.com", "u00")
    impus = ["sip:u00@example.com"] + [f"sip:u{i:02d}@example.com" for i in range(1, 40)]
    for impu in impus[1:]:
        assert api.put_public(irs, sp, impu).code == 200
    full = _listing(api, b"")
    assert full == {"public_ids": [{"public_id": i, "sp": sp, "irs": irs} for i in sorted(impus)]}
    brief = _listing(api, b"?excludeuuids=true")
    assert brief == {"public_ids": [{"public_id": i} for i in sorted(impus)]}
    seen: list[str] = []
    sizes = []
    for chunk in range(4):
        part = _listing(api, b"?excludeuuids=true&chunk-proportion=4&chunk=%d" % chunk)
        names = [entry["public_id"] for entry in part["public_ids"]]
        sizes.append(len(names))
        seen.extend(names)
    assert sorted(seen) == sorted(impus)  # every IMPU in exactly one chunk
    assert all(0 < size < len(impus) for size in sizes)
    one = _listing(api, b"?chunk-proportion=1&chunk=0")
    assert one == full


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (b"?excludeuuids=yes", "excludeuuids must be true or false"),
        (b"?chunk-proportion=0", "chunk-proportion must be in 1..65536"),
        (b"?chunk-proportion=x", "chunk-proportion must be a non-negative integer"),
        (b"?chunk-proportion=4&chunk=4", "chunk must be in 0..3"),
        (b"?chunk=-1", "chunk must be a non-negative integer"),
        (b"?chunk=1&chunk=2", "Repeated query parameter chunk"),
        (b"?limit=0", "limit must be in 1..1000"),
        (b"?limit=1001", "limit must be in 1..1000"),
        (b"?limit=5&chunk=1", "limit and chunk cannot be combined"),
    ],
)
def test_public_listing_bad_parameters(api: _Api, query: bytes, message: str) -> None:
    response = api.call(b"GET", b"/public/" + query)
    assert response.code == 400
    assert response.error() == message


def test_public_listing_pages_with_after_and_limit(api: _Api) -> None:
    irs, sp = api.subscriber("sip:a@example.com", "a")
    for impu in ("sip:b@example.com", "sip:c@example.com"):
        api.put_public(irs, sp, impu)
    first = _listing(api, b"?excludeuuids=true&limit=2")
    assert first == {
        "public_ids": [{"public_id": "sip:a@example.com"}, {"public_id": "sip:b@example.com"}],
        "next": "sip:b@example.com",
    }
    second = _listing(api, b"?excludeuuids=true&limit=2&after=sip%3Ab%40example.com")
    assert second == {"public_ids": [{"public_id": "sip:c@example.com"}]}
    with_ids = _listing(api, b"?limit=1&after=sip%3Ab%40example.com")
    assert with_ids == {
        "public_ids": [{"public_id": "sip:c@example.com", "sp": sp, "irs": irs}],
        "next": "sip:c@example.com",
    }


def test_public_listing_is_paced_between_store_pages() -> None:
    api = _Api(pacing=1.0, page_size=2)
    irs, sp = api.subscriber("sip:p0@example.com", "p0")
    for i in range(1, 5):
        api.put_public(irs, sp, f"sip:p{i}@example.com")
    calls: list[tuple[str, int]] = []
    real = api.store.list_publics

    def counting(after: str = "", limit: int = 1000) -> Deferred[list[PublicIdentity]]:
        calls.append((after, limit))
        return real(after, limit)

    api.store.list_publics = counting  # type: ignore[method-assign]
    transport = api.send(b"GET", b"/public/?excludeuuids=true")
    assert transport.value() == b""  # type: ignore[no-untyped-call]
    assert calls == [("", 2)]
    api.reactor.advance(0.999)
    assert calls == [("", 2)]
    api.reactor.advance(0.001)
    assert calls == [("", 2), ("sip:p1@example.com", 2)]
    api.reactor.advance(1.0)
    assert calls[-1] == ("sip:p3@example.com", 2)
    response = _Response(transport.value())  # type: ignore[no-untyped-call]
    assert [e["public_id"] for e in response.json()["public_ids"]] == [
        f"sip:p{i}@example.com" for i in range(5)
    ]
    assert not api.reactor.getDelayedCalls()


def test_public_listing_stops_when_the_client_goes_away() -> None:
    api = _Api(pacing=1.0, page_size=1)
    irs, sp = api.subscriber("sip:p0@example.com", "p0")
    api.put_public(irs, sp, "sip:p1@example.com")
    api.put_public(irs, sp, "sip:p2@example.com")
    protocol, transport = api.connect(b"GET", b"/public/")
    calls: list[str] = []
    real = api.store.list_publics

    def counting(after: str = "", limit: int = 1000) -> Deferred[list[PublicIdentity]]:
        calls.append(after)
        return real(after, limit)

    api.store.list_publics = counting  # type: ignore[method-assign]
    protocol.connectionLost(Failure(ConnectionDone()))  # type: ignore[no-untyped-call]
    api.reactor.advance(1.0)
    assert calls == ["sip:p0@example.com"]  # the page after the pause, then no more
    api.reactor.advance(1.0)
    assert calls == ["sip:p0@example.com"]
    assert transport.value() == b""  # type: ignore[no-untyped-call]
    assert not api.reactor.getDelayedCalls()


# --------------------------------------------------------------------------- HTTP behaviour


@pytest.mark.parametrize(
    "path",
    [
        b"/",
        b"/nothing",
        b"/private",
        b"/private/",
        b"/private/a/b",
        b"/irs/x/y",
        b"/private//associated_public_ids",
        b"/irs/x/service_profiles/y/z",
        b"/public/x",
        b"/public/x/y",
    ],
)
def test_unknown_paths_are_json_404(api: _Api, path: bytes) -> None:
    response = api.call(b"GET", path)
    assert response.code == 404
    assert response.error() == "Not found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        (b"POST", b"/private/alice", b"DELETE, GET, PUT, HEAD"),
        (b"GET", b"/irs", b"POST"),
        (b"PUT", b"/irs/x", b"DELETE"),
        (b"DELETE", b"/public/", b"GET, HEAD"),
        (b"GET", b"/irs/x/service_profiles/y/public_ids/z", b"DELETE, PUT"),
        (b"POST", b"/ping", b"GET, HEAD"),
    ],
)
def test_wrong_method_is_405_with_allow(
    api: _Api, method: bytes, path: bytes, allow: bytes
) -> None:
    response = api.call(method, path)
    assert response.code == 405
    assert response.header(b"allow") == allow
    assert response.error() == "Method not allowed"


def test_head_gives_get_headers_without_body(api: _Api) -> None:
    api.put_json(b"/private/alice", {"plaintext_password": "pw"})
    get = api.call(b"GET", b"/private/alice")
    head = api.call(b"HEAD", b"/private/alice")
    assert head.code == 200
    assert head.body == b""
    assert head.header(b"content-length") == b"%d" % len(get.body)


def test_ping(api: _Api) -> None:
    response = api.call(b"GET", b"/ping")
    assert response.code == 200
    assert response.body == b"OK"


def test_body_over_the_limit_is_413() -> None:
    api = _Api(max_body=100)
    response = api.call(b"PUT", b"/private/alice", b'{"plaintext_password": "' + b"x" * 100 + b'"}')
    assert response.code == 413
    assert response.error() == "Body larger than 100 bytes"


def test_path_segments_must_be_utf8(api: _Api) -> None:
    response = api.call(b"GET", b"/private/%ff")
    assert response.code == 400
    assert response.error() == "Path is not UTF-8"


def test_non_ascii_identities_round_trip(api: _Api) -> None:
    impi = "jos\u00e9@example.com"
    assert api.put_json(b"/private/" + _q(impi), {"plaintext_password": "pw"}).code == 200
    assert _result(api.store.get_private(impi)).digest_ha1 == digest_ha1(impi, _DOMAIN, "pw")


# --------------------------------------------------------------------------- store failures


@implementer(ISubscriberStore)
class _BrokenStore:
    """Every call fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def __getattr__(self, name: str) -> Callable[..., Deferred[Any]]:
        return lambda *args, **kwargs: fail(self._error)


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (StoreUnavailableError("redis down"), 503, "Subscriber store unavailable: redis down"),
        (
            StoreTimeoutError("no answer in 2 s"),
            504,
            "Subscriber store timed out: no answer in 2 s",
        ),
    ],
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (b"GET", b"/private/alice", b""),
        (b"PUT", b"/private/alice", b'{"digest_ha1": "' + b"a" * 32 + b'", "aka": null}'),
        (b"POST", b"/irs", b""),
        (b"GET", b"/public/sip:a@b/irs", b""),
        (b"GET", b"/public/", b""),
    ],
)
def test_store_failures_map_to_503_and_504(
    error: Exception, code: int, message: str, method: bytes, path: bytes, body: bytes
) -> None:
    api = _Api(_BrokenStore(error))
    response = api.call(method, path, body)
    assert response.code == code
    assert response.error() == message


def test_store_answering_late_is_waited_for() -> None:
    pending: Deferred[Optional[PrivateIdentity]] = Deferred()

    @implementer(ISubscriberStore)
    class Slow:
        def __getattr__(self, name: str) -> Callable[..., Deferred[Any]]:
            return lambda *args, **kwargs: pending

    api = _Api(Slow())
    transport = api.send(b"GET", b"/private/alice")
    assert transport.value() == b""  # type: ignore[no-untyped-call]
    pending.errback(StoreTimeoutError("timed out after 1 s"))
    response = _Response(transport.value())  # type: ignore[no-untyped-call]
    assert response.code == 504


def test_unexpected_errors_are_500_and_logged() -> None:
    api = _Api(_BrokenStore(RuntimeError("bug")))
    with capturedLogs() as events:
        response = api.call(b"GET", b"/private/alice")
    assert response.code == 500
    assert response.error() == "Internal error"
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 1
    assert isinstance(failures[0]["log_failure"].value, RuntimeError)
