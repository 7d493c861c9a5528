"""Typed values of the core SIP headers (RFC 3261 §20, §25.1) and their parsers.

Via (with RFC 3581 ``rport``), name-addr / addr-spec (From, To, Contact, Route, Record-Route,
Path, Service-Route, the P- identity headers) with RFC 5626 ``+sip.instance`` / ``reg-id`` and
RFC 5627 ``pub-gruu`` / ``temp-gruu``, CSeq, the scalar headers, token lists and media types.
All values are immutable; every parser raises :class:`~clearwater.errors.ParseError` only.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Optional, Union

import attrs
from typing_extensions import override

from clearwater.errors import ParseError
from clearwater.sip._grammar import (
    Params,
    format_params,
    is_token,
    memoized,
    param_value,
    parse_params,
    quote,
    replace_param,
    unquote,
)
from clearwater.sip._uri import SipUri, Uri, parse_uri

__all__ = [
    "CSeq",
    "ContactValue",
    "MediaType",
    "NameAddr",
    "Star",
    "Via",
    "parse_call_id",
    "parse_contact",
    "parse_content_length",
    "parse_delta_seconds",
    "parse_max_forwards",
    "parse_name_addr_strict",
    "parse_token",
]

_WS = " \t"
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_HOST = r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+"
_MAX_DELTA_SECONDS = 2**32 - 1


# --------------------------------------------------------------------------- numbers and tokens


def _parse_uint(text: str, what: str, maximum: int) -> int:
    text = text.strip(_WS)
    if not text.isdigit() or not text.isascii() or len(text) > 20 or int(text) > maximum:
        raise ParseError("Bad " + what)
    return int(text)


def parse_delta_seconds(text: str) -> int:
    """``delta-seconds`` (Expires, Min-Expires): 0 .. 2**32-1 (RFC 3261 §20.19 and RFC 4475)."""
    return _parse_uint(text, "delta-seconds", _MAX_DELTA_SECONDS)


def parse_max_forwards(text: str) -> int:
    """Max-Forwards: 0..255 (RFC 3261 §20.22 recommends 70; RFC 4475 §3.1.2.4 rejects 300)."""
    return _parse_uint(text, "Max-Forwards", 255)


def parse_content_length(text: str) -> int:
    """Content-Length: a non-negative decimal (bounded far above any real message)."""
    return _parse_uint(text, "Content-Length", _MAX_DELTA_SECONDS)


def parse_token(text: str) -> str:
    """One ``token`` (Supported, Require, Allow, ... elements)."""
    if not is_token(text):
        raise ParseError("Bad token")
    return text


_CALL_ID_RE = re.compile(
    r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?"
)


def parse_call_id(text: str) -> str:
    """Call-ID: ``word ["@" word]`` (RFC 3261 §25.1)."""
    text = text.strip(_WS)
    if _CALL_ID_RE.fullmatch(text) is None:
        raise ParseError("Bad Call-ID")
    return text


# --------------------------------------------------------------------------- CSeq


def _parse_cseq(text: str) -> CSeq:
    """A CSeq value; :meth:`CSeq.parse` (memoized)."""
    number, _, method = text.strip(_WS).replace("\t", " ").partition(" ")
    method = method.strip(_WS)
    if (
        not number.isdigit()
        or not number.isascii()
        or len(number) > 10
        or int(number) >= 2**31
        or not is_token(method)
    ):
        raise ParseError("Bad CSeq")
    return CSeq(int(number), method)


@attrs.frozen
class CSeq:
    """CSeq (RFC 3261 §20.16): sequence number (< 2**31, §8.1.1.5) and method."""

    seq: int
    method: str

    parse = staticmethod(memoized(_parse_cseq))

    @override
    def __str__(self) -> str:
        return str(self.seq) + " " + self.method


# --------------------------------------------------------------------------- Via

_VIA_RE = re.compile(
    r"(" + _TOKEN + r")[ \t]*/[ \t]*(" + _TOKEN + r")[ \t]*/[ \t]*(" + _TOKEN + r")[ \t]+"
    r"(" + _HOST + r")(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
)


def _parse_via(text: str) -> Via:
    """One Via value; :meth:`Via.parse` (memoized)."""
    m = _VIA_RE.match(text)
    if m is None:
        raise ParseError("Bad Via")
    name, version, transport, host, port = m.groups()
    params = parse_params(text, m.end(), "Via")
    if host[0] == "[":
        _check_ipv6_reference(host, "Via")
    port_number = None
    if port is not None:
        port_number = int(port)
        if port_number > 65535:
            raise ParseError("Bad Via port")
    protocol = "SIP/2.0" if name == "SIP" and version == "2.0" else name + "/" + version
    return Via(transport.upper(), host, port_number, params, protocol)


@attrs.frozen
class Via:
    """One Via value (RFC 3261 §20.42): ``SIP/2.0/UDP host:port;params``.

    ``transport`` is upper-cased; ``host`` is as written (IPv6 references keep their brackets).
    """

    transport: str
    host: str
    port: Optional[int] = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    parse = staticmethod(memoized(_parse_via))

    @override
    def __str__(self) -> str:
        sent_by = self.host if self.port is None else self.host + ":" + str(self.port)
        return self.protocol + "/" + self.transport + " " + sent_by + format_params(self.params)

    def param(self, name: str) -> Optional[str]:
        """Unquoted value of a parameter; ``""`` for a flag; None if absent."""
        return param_value(self.params, name)

    def with_param(self, name: str, value: Optional[str] = None) -> Via:
        """A copy with parameter ``name`` set (``None``: a flag with no value)."""
        return attrs.evolve(self, params=replace_param(self.params, name, value))

    @property
    def sent_by(self) -> str:
        """``host[:port]`` as it appears in the Via."""
        return self.host if self.port is None else self.host + ":" + str(self.port)

    @property
    def branch(self) -> Optional[str]:
        return param_value(self.params, "branch")

    @property
    def received(self) -> Optional[str]:
        return param_value(self.params, "received")

    @property
    def rport(self) -> Optional[str]:
        """``""`` when the client asked for rport (RFC 3581), the port once a server filled it."""
        return param_value(self.params, "rport")

    @property
    def maddr(self) -> Optional[str]:
        return param_value(self.params, "maddr")

    @property
    def ttl(self) -> Optional[int]:
        value = param_value(self.params, "ttl")
        return int(value) if value is not None and value.isdigit() else None


def _check_ipv6_reference(host: str, what: str) -> None:
    try:
        ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        raise ParseError("Bad " + what + " IPv6 reference") from None


# --------------------------------------------------------------------------- name-addr

# display-name = *(token LWS) / quoted-string, then "<" URI ">"
_NAME_ADDR_RE = re.compile(
    # Tokens of a display name are separated by mandatory LWS, so the match stays linear
    # (a "(?:token LWS*)*" form backtracks exponentially on a long run of token characters).
    r"[ \t]*(?:(\"(?:[^\"\\]|\\.)*\")|(" + _TOKEN + r"(?:[ \t]+" + _TOKEN + r")*))?"
    r"[ \t]*<([^<>\s\"]*)>",
    re.DOTALL,
)


def _parse_name_addr(text: str) -> NameAddr:
    """A name-addr or addr-spec with header parameters; :meth:`NameAddr.parse` (memoized)."""
    m = _NAME_ADDR_RE.match(text)
    if m is not None:
        quoted, tokens, uri_text = m.groups()
        uri = parse_uri(uri_text)
        end = m.end()
        if quoted is not None:
            display: Optional[str] = unquote(quoted)
        else:
            display = tokens or None
    else:
        # addr-spec: the URI runs to the first ";" and may not contain "," "?" or ";"
        # outside its user part (RFC 3261 §20: such URIs MUST be in angle brackets).
        stripped = text.lstrip(_WS)
        offset = len(text) - len(stripped)
        end = _addr_spec_end(stripped) + offset
        uri_text = text[offset:end]
        if not uri_text or "<" in uri_text or ">" in uri_text:
            raise ParseError("Bad address")
        uri = parse_uri(uri_text)
        if isinstance(uri, SipUri) and uri.headers:
            raise ParseError("Bad address: URI with headers must be in <>")
        display = None
    params = parse_params(text, end, "address")
    return NameAddr(uri, display, params)


@attrs.frozen
class NameAddr:
    """A ``name-addr`` or ``addr-spec`` with header parameters (RFC 3261 §20.10, §25.1).

    Used for From, To, Contact, Route, Record-Route, Path, Service-Route and the P- identity
    headers. ``display_name`` is unquoted (None when absent); ``params`` are the header
    parameters (``tag``, ``expires``, ``q``, ...), not the URI's.
    """

    uri: Uri
    display_name: Optional[str] = None
    params: Params = ()

    parse = staticmethod(memoized(_parse_name_addr))

    @override
    def __str__(self) -> str:
        if self.display_name is None:
            head = "<" + str(self.uri) + ">"
        elif is_token(self.display_name.replace(" ", "")) and "  " not in self.display_name:
            head = self.display_name + " <" + str(self.uri) + ">"
        else:
            head = quote(self.display_name) + " <" + str(self.uri) + ">"
        return head + format_params(self.params)

    def param(self, name: str) -> Optional[str]:
        """Unquoted value of a header parameter; ``""`` for a flag; None if absent."""
        return param_value(self.params, name)

    def with_param(self, name: str, value: Optional[str] = None) -> NameAddr:
        """A copy with header parameter ``name`` set (value stored as given)."""
        return attrs.evolve(self, params=replace_param(self.params, name, value))

    def without_param(self, name: str) -> NameAddr:
        lname = name.lower()
        return attrs.evolve(self, params=tuple(p for p in self.params if p[0].lower() != lname))

    @property
    def tag(self) -> Optional[str]:
        return param_value(self.params, "tag")

    @property
    def expires(self) -> Optional[int]:
        """The Contact ``expires`` parameter (RFC 3261 §20.10), or None."""
        value = param_value(self.params, "expires")
        return None if value is None else parse_delta_seconds(value)

    @property
    def q(self) -> Optional[float]:
        """The Contact ``q`` parameter, 0.0 .. 1.0, or None."""
        value = param_value(self.params, "q")
        if value is None:
            return None
        if re.fullmatch(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?", value) is None:
            raise ParseError("Bad Contact q")
        return float(value)

    @property
    def instance(self) -> Optional[str]:
        """``+sip.instance`` (RFC 5626 §4.1) without its quotes and angle brackets."""
        value = param_value(self.params, "+sip.instance")
        if value is not None and value.startswith("<") and value.endswith(">"):
            return value[1:-1]
        return value

    @property
    def reg_id(self) -> Optional[int]:
        """``reg-id`` (RFC 5626 §4.2), or None."""
        value = param_value(self.params, "reg-id")
        if value is None:
            return None
        if not value.isdigit() or len(value) > 10:
            raise ParseError("Bad reg-id")
        return int(value)

    @property
    def pub_gruu(self) -> Optional[str]:
        """``pub-gruu`` (RFC 5627 §4.2), unquoted."""
        return param_value(self.params, "pub-gruu")

    @property
    def temp_gruu(self) -> Optional[str]:
        """``temp-gruu`` (RFC 5627 §4.2), unquoted."""
        return param_value(self.params, "temp-gruu")


def _addr_spec_end(text: str) -> int:
    """End of an addr-spec URI: the first ';' after the host part, or the first LWS."""
    # The user part of a sip URI may contain ';' (RFC 4475 §3.1.1.9), so only split after "@".
    at = text.find("@")
    start = at + 1 if at >= 0 and text.find(";", 0, at) >= 0 else 0
    end = len(text)
    for stop in (";", " ", "\t"):
        i = text.find(stop, start)
        if 0 <= i < end:
            end = i
    return end


@attrs.frozen
class Star:
    """The ``*`` Contact of a REGISTER that removes every binding (RFC 3261 §10.2.2)."""

    @override
    def __str__(self) -> str:
        return "*"


ContactValue = Union[NameAddr, Star]


def parse_contact(text: str) -> ContactValue:
    """One Contact value: ``*`` or a name-addr / addr-spec with contact parameters."""
    if text.strip(_WS) == "*":
        return Star()
    return NameAddr.parse(text)


def parse_name_addr_strict(text: str) -> NameAddr:
    """name-addr only (``<...>`` required): Route, Record-Route, Path, Service-Route (§25.1)."""
    value = NameAddr.parse(text)
    if "<" not in text:
        raise ParseError("Bad route: URI must be in <>")
    return value


# --------------------------------------------------------------------------- Content-Type

_MEDIA_RE = re.compile(r"[ \t]*(" + _TOKEN + r")[ \t]*/[ \t]*(" + _TOKEN + r")")


@attrs.frozen
class MediaType:
    """Content-Type / Accept media type (RFC 3261 §20.15): ``type/subtype;params``."""

    type: str
    subtype: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> MediaType:
        m = _MEDIA_RE.match(text)
        if m is None:
            raise ParseError("Bad media type")
        params = parse_params(text, m.end(), "media type")
        return cls(m.group(1), m.group(2), params)

    @property
    def mime_type(self) -> str:
        """``type/subtype`` lower-cased, for comparisons."""
        return (self.type + "/" + self.subtype).lower()

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)

    @override
    def __str__(self) -> str:
        return self.type + "/" + self.subtype + format_params(self.params)
