"""Shared pieces of the SIP header grammar (RFC 3261 §25.1): tokens, quoted strings, parameters.

Header values are handled as ``str``: the parser decodes the header block with UTF-8 and
``surrogateescape`` and serialisation encodes it the same way, so any byte sequence survives.

Parameters are kept as an ordered tuple of ``(name, value)`` pairs exactly as written: a quoted
value keeps its quotes (so a rendering reproduces the input) and ``None`` marks a parameter
without ``=value``. :func:`param_value` looks a name up case-insensitively and unquotes.
"""

from __future__ import annotations

import re
from typing import Callable, Optional, TypeVar

from clearwater.errors import ParseError

T = TypeVar("T")

__all__ = [
    "Params",
    "format_params",
    "is_token",
    "memoized",
    "param_value",
    "parse_params",
    "quote",
    "replace_param",
    "split_comma_list",
    "unquote",
]

#: Ordered ``(name, value-as-written)`` pairs; ``None`` for a parameter with no value.
Params = tuple[tuple[str, Optional[str]], ...]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_TOKEN)
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE; qdtext excludes '"' and '\'.
# UTF8-NONASCII is allowed, so is anything decoded via surrogateescape above 0x7f.
_QUOTED = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
# One generic parameter: name [= value], the value a token, a host (an IPv6 reference, or a
# bare IPv6 address as RFC 5118 §4.5 Via received= needs; tried before token, which would stop
# at the first colon) or a quoted string (e.g. +sip.instance, +g.3gpp.icsi-ref).
_PARAM_VALUE = r"[0-9A-Fa-f]*:[0-9A-Fa-f:.]*|" + _TOKEN + "|" + _QUOTED + r"|\[[0-9A-Fa-f:.]+\]"
_PARAM_RE = re.compile(r"[ \t]*;[ \t]*(" + _TOKEN + r")(?:[ \t]*=[ \t]*(" + _PARAM_VALUE + "))?")
_WS = " \t"


#: Texts longer than this are parsed every time; :func:`memoized` keeps at most
#: ``_MEMO_ENTRIES`` results per parser, so a memo holds at most about 1 MB of keys.
_MEMO_KEY_LENGTH = 256
_MEMO_ENTRIES = 4096


def memoized(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` with a bounded memo of its results by input text.

    For parsers of immutable values only: the same object is handed to every caller. The
    values of a dialog (From, To, Contact, Route, the Request-URI, the Vias of a transaction's
    responses) recur in every message, so most are parsed once per dialog, not once per
    message. Failures are not remembered. When full, the memo is emptied (no per-hit
    bookkeeping).
    """
    memo: dict[str, T] = {}
    get = memo.get

    def cached(text: str) -> T:
        value = get(text)
        if value is None:
            value = parse(text)
            if len(text) <= _MEMO_KEY_LENGTH:
                if len(memo) >= _MEMO_ENTRIES:
                    memo.clear()
                memo[text] = value
        return value

    cached.__doc__ = parse.__doc__
    cached.__name__ = parse.__name__
    return cached


def is_token(text: str) -> bool:
    """True if ``text`` is a non-empty RFC 3261 ``token``."""
    return _TOKEN_RE.fullmatch(text) is not None


def quote(text: str) -> str:
    """Render ``text`` as a quoted-string, escaping ``"`` and ``\\``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(text: str) -> str:
    """Undo :func:`quote`; text that is not a quoted string is returned unchanged."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" not in inner:
            return inner
        return re.sub(r"\\(.)", r"\1", inner, flags=re.DOTALL)
    return text


def parse_params(text: str, pos: int, what: str) -> Params:
    """Parse ``*( SEMI generic-param )`` from ``pos`` to the end of ``text``.

    Trailing whitespace is allowed; anything else left over raises ``ParseError("Bad " + what)``,
    ``what`` naming the header.
    """
    params: list[tuple[str, Optional[str]]] = []
    end = len(text)
    match = _PARAM_RE.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            break
        params.append((m.group(1), m.group(2)))
        pos = m.end()
    if pos < end and text[pos:].strip(_WS):
        raise ParseError("Bad " + what)
    return tuple(params)


def format_params(params: Params) -> str:
    """Render parameters as ``;name=value`` pairs (values as stored, i.e. already quoted)."""
    out = ""
    for name, value in params:
        out = out + ";" + name if value is None else out + ";" + name + "=" + value
    return out


def param_value(params: Params, name: str) -> Optional[str]:
    """The unquoted value of parameter ``name`` (case-insensitive), ``""`` for a flag, or None."""
    for pname, value in params:  # as usually written: the same case
        if pname == name:
            return "" if value is None else unquote(value)
    lname = name.lower()
    for pname, value in params:
        if pname.lower() == lname:
            return "" if value is None else unquote(value)
    return None


def replace_param(params: Params, name: str, value: Optional[str]) -> Params:
    """Return ``params`` with ``name`` set to ``value`` (stored as given) or added at the end."""
    lname = name.lower()
    out = []
    found = False
    for pname, pvalue in params:
        if pname.lower() == lname:
            if not found:
                out.append((pname, value))
                found = True
        else:
            out.append((pname, pvalue))
    if not found:
        out.append((name, value))
    return tuple(out)


def split_comma_list(value: str) -> list[str]:
    """Split a header value on the commas that separate list elements (RFC 3261 §7.3.1).

    Commas inside quoted strings and inside ``<...>`` do not split. Elements are stripped of
    surrounding whitespace; empty elements (``a,,b``) are dropped, as RFC 7230 §7 allows.
    """
    if "," not in value:
        item = value.strip(_WS)
        return [item] if item else []
    if '"' not in value and "<" not in value:
        return [item for item in (part.strip(_WS) for part in value.split(",")) if item]
    items: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            item = value[start:i].strip(_WS)
            if item:
                items.append(item)
            start = i + 1
        i += 1
    if in_quotes:
        raise ParseError("Unterminated quoted string")
    item = value[start:].strip(_WS)
    if item:
        items.append(item)
    return items
