"""Parse one SIP message from bytes (RFC 3261 §7, §18.3) and validate what every element needs.

:func:`parse_message` takes a whole message: a UDP datagram, a WebSocket message (RFC 7118
§5.2) or a :class:`~clearwater.sip.FramedMessage` from the stream framer. It checks what
RFC 3261 §8.2.2 and §16.3 require before any element may act on a message:

- the start line, with single spaces (RFC 4475 §3.1.2.9/.10), a valid Request-URI without
  headers or angle brackets (§19.1.1; RFC 4475 §3.1.2.7/.8/.11), SIP/2.0 (else 505);
- a parseable top Via; From, To, Call-ID and CSeq present once each and parseable; the CSeq
  number below 2**31 and its method equal to the request method (RFC 4475 §3.1.2.17/.18);
- the first Contact line, when present (RFC 4475 §3.1.2.13: a URI with headers or ``,;?``
  outside angle brackets);
- Max-Forwards, when present, once and in 0..255; Content-Length, when present, once,
  non-negative and not larger than the body; octets past Content-Length are discarded
  (§18.3; RFC 4475 §3.1.1.8).

Only the start line and those headers are parsed now; every other header stays raw text until a
typed value is asked for. Any problem raises :class:`~clearwater.errors.ParseError` whose
``reason`` suits a 400 reason phrase and whose ``status`` is the response to send.
"""

from __future__ import annotations

import re
from typing import Optional, Union, cast

from clearwater.errors import ParseError
from clearwater.sip._grammar import is_token, split_comma_list
from clearwater.sip._message import Headers, Request, Response, _Field
from clearwater.sip._table import _BY_NAME, HeaderSpec
from clearwater.sip._uri import SipUri, parse_uri
from clearwater.sip._values import CSeq
from clearwater.sip.headers import (
    CALL_ID,
    CONTACT,
    CONTENT_LENGTH,
    CSEQ,
    FROM,
    MAX_FORWARDS,
    TO,
    VIA,
)

__all__ = ["MAX_HEADER_LINES", "MAX_MESSAGE_SIZE", "parse_message"]

#: Largest message :func:`parse_message` accepts by default (the largest UDP payload).
MAX_MESSAGE_SIZE = 65535
#: Most header lines accepted in one message.
MAX_HEADER_LINES = 256

_REQUEST_LINE_RE = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+) ([^ \t]+) ([Ss][Ii][Pp]/[0-9]{1,3}\.[0-9]{1,3})"
)
_STATUS_LINE_RE = re.compile(r"([Ss][Ii][Pp]/[0-9]{1,3}\.[0-9]{1,3}) ([1-6][0-9][0-9])(?: (.*))?")
_REASON_BAD_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# Headers parsed and validated on every message, and those that may appear only once.
_EAGER: dict[str, HeaderSpec[object]] = {
    spec.key: spec for spec in (VIA, FROM, TO, CALL_ID, CSEQ, MAX_FORWARDS, CONTENT_LENGTH, CONTACT)
}
_SINGLE = frozenset(("from", "to", "call-id", "cseq", "max-forwards", "content-length"))


def parse_message(data: bytes, *, max_size: int = MAX_MESSAGE_SIZE) -> Union[Request, Response]:
    """Parse and validate one whole SIP message. Raises ParseError only."""
    if len(data) > max_size:
        raise ParseError("Message too large", 513)
    start = 0
    while data.startswith(b"\r\n", start):  # RFC 3261 §7.5: ignore CRLFs before a start line
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise ParseError("Incomplete message: no blank line after the headers")
    text = data[start:end].decode("utf-8", "surrogateescape")
    lines = text.split("\r\n")
    if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
        raise ParseError("Bad line ending")
    if len(lines) > MAX_HEADER_LINES + 1:
        raise ParseError("Too many header lines", 513)
    fields, eager = _parse_fields(lines)
    body = data[end + 4 :]

    # A status line starts with SIP-Version; no method does, '/' not being a token character.
    first = lines[0]
    message = _response(first, fields) if first[:4].upper() == "SIP/" else _request(first, fields)

    _validate(message, eager)
    length = message.headers.first(CONTENT_LENGTH)
    if length is not None:
        if length > len(body):
            raise ParseError("Content-Length larger than the body")
        if length < len(body):
            body = body[:length]
    message.body = body
    return message


def _parse_fields(lines: list[str]) -> tuple[list[_Field], dict[str, _Field]]:
    fields: list[_Field] = []
    eager: dict[str, _Field] = {}
    append = fields.append
    lookup = _BY_NAME.get
    previous: Optional[_Field] = None
    for index in range(1, len(lines)):
        line = lines[index]
        if line[:1] in (" ", "\t"):
            # A folded continuation: equivalent to one SP (RFC 3261 §7.3.1).
            if previous is None or not line.strip(" \t"):
                raise ParseError("Bad header folding")
            previous.raw = previous.line() + "\r\n" + line
            previous.value = (previous.value + " " + line.strip(" \t")).strip(" \t")
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError("Bad header line")
        lname = name.lower()
        entry = lookup(lname)
        if entry is None:
            stripped = lname.rstrip(" \t")
            if not is_token(stripped):
                raise ParseError("Bad header name")
            entry = lookup(stripped)
            key = stripped if entry is None else entry[0]
            name = name.rstrip(" \t")
        else:
            key = entry[0]
        field = _Field(key, name, value.strip(" \t"), line)
        append(field)
        previous = field
        if key in _EAGER:
            if key in eager:
                if key in _SINGLE:
                    raise ParseError("Multiple " + _EAGER[key].name + " headers")
            else:
                eager[key] = field
    return fields, eager


def _request(line: str, fields: list[_Field]) -> Request:
    m = _REQUEST_LINE_RE.fullmatch(line)
    if m is None:
        raise ParseError("Bad Request-Line")
    method, uri_text, version = m.groups()
    if version.upper() != "SIP/2.0":
        raise ParseError("Version Not Supported", 505)
    try:
        uri = parse_uri(uri_text)
    except ParseError:
        raise ParseError("Bad Request-URI") from None
    if isinstance(uri, SipUri) and uri.headers:
        raise ParseError("Bad Request-URI: headers not allowed")
    request = Request.__new__(Request)
    request.method = method
    request.uri = uri
    request.headers = Headers._from_fields(fields)
    return request


def _response(line: str, fields: list[_Field]) -> Response:
    m = _STATUS_LINE_RE.fullmatch(line)
    if m is None:
        raise ParseError("Bad Status-Line")
    version, status, reason = m.groups()
    if version.upper() != "SIP/2.0":
        raise ParseError("Version Not Supported", 505)
    if reason is None:
        reason = ""
    elif _REASON_BAD_RE.search(reason):
        raise ParseError("Bad Reason-Phrase")
    response = Response.__new__(Response)
    response.status = int(status)
    response.reason = reason
    response.headers = Headers._from_fields(fields)
    return response


def _validate(message: Union[Request, Response], eager: dict[str, _Field]) -> None:
    for key, field in eager.items():
        spec = _EAGER[key]
        if spec.multi:
            items = split_comma_list(field.value)
            if not items:
                raise ParseError("Empty " + spec.name)
            if key not in ("via", "contact") and len(items) > 1:
                raise ParseError("Multiple " + spec.name + " values")
            field.parsed = [spec.parse(item) for item in items]
        else:
            field.parsed = [spec.parse(field.value)]
    for key in ("via", "from", "to", "call-id", "cseq"):
        if key not in eager:
            raise ParseError("Missing " + _EAGER[key].name)
    if isinstance(message, Request):
        cseq = cast(CSeq, cast(list[object], eager["cseq"].parsed)[0])
        if cseq.method != message.method:
            raise ParseError("CSeq method does not match the request method")
