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
from typing import Optional, Union

from clearwater.errors import ParseError
from clearwater.sip._grammar import is_token, split_comma_list
from clearwater.sip._message import Headers, Request, Response, _Field
from clearwater.sip._table import _BY_NAME
from clearwater.sip._uri import SipUri, parse_uri
from clearwater.sip._values import (
    CSeq,
    NameAddr,
    Via,
    parse_call_id,
    parse_contact,
    parse_content_length,
    parse_max_forwards,
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

# Headers parsed and validated on every message, by their slot in the list _parse_fields
# returns; all but Via and Contact may appear only once.
_EAGER_SLOT = {"via": 0, "from": 1, "to": 2, "call-id": 3, "cseq": 4, "max-forwards": 5,
               "content-length": 6, "contact": 7}  # fmt: skip
_EAGER_NAMES = ("Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Contact")
_VIA, _FROM, _TO, _CALL_ID, _CSEQ, _MAX_FORWARDS, _CONTENT_LENGTH, _CONTACT = range(8)


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

    length = _validate(message, eager)
    if length is not None:
        if length > len(body):
            raise ParseError("Content-Length larger than the body")
        if length < len(body):
            body = body[:length]
    message.body = body
    return message


# Header names as usually written ("Via", "Call-ID", compact "v") -> (key, eager slot or -1):
# one lookup per line for them; other spellings take _field_name.
_FAST_NAMES: dict[str, tuple[str, int]] = {
    name: (entry[0], _EAGER_SLOT.get(entry[0], -1)) for name, entry in _BY_NAME.items()
}


def _parse_fields(lines: list[str]) -> tuple[list[_Field], list[Optional[_Field]]]:
    fields: list[_Field] = []
    eager: list[Optional[_Field]] = [None] * 8
    append = fields.append
    fast = _FAST_NAMES.get
    previous: Optional[_Field] = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        known = fast(name)
        if known is None or not colon:
            if line[:1] in (" ", "\t"):
                # A folded continuation: equivalent to one SP (RFC 3261 §7.3.1).
                if previous is None or not line.strip(" \t"):
                    raise ParseError("Bad header folding")
                previous.raw = previous.line() + "\r\n" + line
                previous.value = (previous.value + " " + line.strip(" \t")).strip(" \t")
                continue
            if not colon:
                raise ParseError("Bad header line")
            name, key, slot = _field_name(name)
        else:
            key, slot = known
        field = _Field(key, name, value.strip(" \t"), line)
        append(field)
        previous = field
        if slot >= 0:
            if eager[slot] is None:
                eager[slot] = field
            elif slot != _VIA and slot != _CONTACT:
                raise ParseError("Multiple " + _EAGER_NAMES[slot] + " headers")
    return fields, eager


def _field_name(name: str) -> tuple[str, str, int]:
    """A header name written otherwise: (name without trailing LWS, key, eager slot or -1)."""
    name = name.rstrip(" \t")
    lname = name.lower()
    if not is_token(lname):
        raise ParseError("Bad header name")
    entry = _BY_NAME.get(lname)
    key = lname if entry is None else entry[0]
    return name, key, _EAGER_SLOT.get(key, -1)


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


def _validate(message: Union[Request, Response], eager: list[Optional[_Field]]) -> Optional[int]:
    """Parse the eager headers into their fields' caches; return the Content-Length if any.

    Written out header by header rather than looping over specs: each call site then always
    calls the same parser, which PyPy's JIT compiles far better.
    """
    via, from_, to, call_id, cseq, max_forwards, content_length, contact = eager
    if via is None:
        raise ParseError("Missing Via")
    via.parsed = [Via.parse(item) for item in _items(via.value, "Via")]
    if from_ is None:
        raise ParseError("Missing From")
    from_.parsed = [NameAddr.parse(from_.value)]
    if to is None:
        raise ParseError("Missing To")
    to.parsed = [NameAddr.parse(to.value)]
    if call_id is None:
        raise ParseError("Missing Call-ID")
    call_id.parsed = [parse_call_id(call_id.value)]
    if cseq is None:
        raise ParseError("Missing CSeq")
    cseq_value = CSeq.parse(cseq.value)
    cseq.parsed = [cseq_value]
    if isinstance(message, Request) and cseq_value.method != message.method:
        raise ParseError("CSeq method does not match the request method")
    if max_forwards is not None:
        max_forwards.parsed = [parse_max_forwards(max_forwards.value)]
    if contact is not None:
        contact.parsed = [parse_contact(item) for item in _items(contact.value, "Contact")]
    if content_length is None:
        return None
    length = parse_content_length(content_length.value)
    content_length.parsed = [length]
    return length


def _items(value: str, name: str) -> list[str]:
    items = split_comma_list(value)
    if not items:
        raise ParseError("Empty " + name)
    return items
