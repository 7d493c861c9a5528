"""The SIP message model: :class:`Request`, :class:`Response` and their :class:`Headers`.

RFC 3261 §7: a message is a start line, header fields and an optional body. Header fields are
kept in order as they arrived, each with the exact text of its line(s), so an unchanged header
serialises byte-for-byte as received (folding, compact names, odd spacing and all). Typed values
(:mod:`clearwater.sip.headers`) are parsed on first use and cached on the field. Names compare
case-insensitively, and compact forms (``v``, ``f``, ``i``, ...) are the same header as their
long forms (RFC 3261 §7.3.3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Optional, TypeVar, Union, cast

from typing_extensions import override

from clearwater.errors import ParseError
from clearwater.sip._grammar import is_token, split_comma_list
from clearwater.sip._table import _BY_NAME, HeaderSpec, header_key, is_list_header
from clearwater.sip._uri import Uri, parse_uri
from clearwater.sip._values import CSeq, MediaType, NameAddr, Via
from clearwater.sip.headers import CALL_ID, CONTENT_TYPE, CSEQ, FROM, MAX_FORWARDS, TO, VIA

__all__ = ["Headers", "Message", "Request", "Response"]

T = TypeVar("T")

_CRLF = "\r\n"


class _Field:
    """One header line: its key, its name and value as text, and the raw line it came from.

    ``raw`` is the full original line (with any folding), or None for a line built here;
    ``parsed`` caches the typed values of this line (a list, one per comma-separated value).
    Once its message is parsed a line never changes (a change replaces the line), so copies
    of a message share their lines.
    """

    __slots__ = ("key", "name", "parsed", "raw", "value")

    def __init__(self, key: str, name: str, value: str, raw: Optional[str] = None) -> None:
        self.key = key
        self.name = name
        self.value = value
        self.raw = raw
        self.parsed: Optional[list[Any]] = None

    def line(self) -> str:
        raw = self.raw
        return raw if raw is not None else self.name + ": " + self.value


def _check_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError("header " + name + " value contains CR, LF or NUL")
    return value.strip(" \t")


def _check_name(name: str) -> str:
    if not is_token(name):
        raise ValueError("bad header name " + repr(name))
    return name


class Headers:
    """An ordered, multi-valued, case-insensitive list of SIP header fields.

    Text access: :meth:`get`, :meth:`get_all`, iteration over ``(name, value)`` lines.
    Typed access: :meth:`parsed` and :meth:`first` with a :class:`HeaderSpec`.
    Changes: :meth:`add`, :meth:`prepend`, :meth:`set`, :meth:`remove`, :meth:`pop_first`,
    :meth:`set_values`. Values given as text are checked for CR/LF/NUL (header injection).
    """

    __slots__ = ("_fields",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[_Field] = []
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _from_fields(cls, fields: list[_Field]) -> Headers:
        headers = cls.__new__(cls)
        headers._fields = fields
        return headers

    # ---- reading as text

    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """Each header line as ``(name as written, value)``, in order."""
        return ((f.name, f.value) for f in self._fields)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = header_key(name)
        for f in self._fields:  # noqa: SIM110 (a plain loop: any() and a generator cost more)
            if f.key == key:
                return True
        return False

    @override
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(f.key, f.value) for f in self._fields] == [(f.key, f.value) for f in other._fields]

    @override
    def __repr__(self) -> str:
        return "Headers(" + repr([(f.name, f.value) for f in self._fields]) + ")"

    def copy(self) -> Headers:
        """An independent copy. The lines themselves are shared: once parsed, a line is never
        changed (changes replace lines), and its typed cache holds immutable values."""
        return Headers._from_fields(self._fields.copy())

    def copy_of(self, keys: tuple[str, ...]) -> Headers:
        """A new Headers holding copies of the lines of headers ``keys`` (lower-case long
        names), grouped in the order of ``keys`` and otherwise in order; each line is rebuilt
        as ``name: value`` and keeps its typed cache. One pass, for RFC 3261 §8.2.6.2."""
        groups: dict[str, list[_Field]] = {key: [] for key in keys}
        for f in self._fields:
            group = groups.get(f.key)
            if group is not None:
                g = _Field(f.key, f.name, f.value)
                g.parsed = f.parsed
                group.append(g)
        fields: list[_Field] = []
        for group in groups.values():
            fields.extend(group)
        return Headers._from_fields(fields)

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The value of the first line of header ``name`` (whole line, unsplit), or default."""
        key = header_key(name)
        for f in self._fields:
            if f.key == key:
                return f.value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` in order; comma lists split for list headers."""
        key = header_key(name)
        split = is_list_header(name)
        out: list[str] = []
        for f in self._fields:
            if f.key == key:
                if split:
                    out.extend(split_comma_list(f.value))
                else:
                    out.append(f.value)
        return out

    def count(self, name: str) -> int:
        """Number of header lines named ``name``."""
        key = header_key(name)
        return sum(1 for f in self._fields if f.key == key)

    # ---- typed reading

    def parsed(self, spec: HeaderSpec[T]) -> list[T]:
        """Typed values of a header, in order, parsed once and cached. Raises ParseError."""
        key = spec.key
        out: list[T] = []
        for f in self._fields:
            if f.key == key:
                values = f.parsed
                if values is None:
                    values = f.parsed = _parse_field(spec, f.value)
                out.extend(values)
        return out

    def first(self, spec: HeaderSpec[T]) -> Optional[T]:
        """The first typed value of a header, or None if it is absent. Raises ParseError."""
        key = spec.key
        for f in self._fields:
            if f.key == key:
                values = f.parsed
                if values is None:
                    values = f.parsed = _parse_field(spec, f.value)
                if values:
                    return cast(T, values[0])
        return None

    # ---- changing

    def add(self, name: str, value: Union[str, object]) -> None:
        """Append a header line. ``value`` is text or a typed value (rendered with ``str``)."""
        self._fields.append(self._new_field(name, value))

    def prepend(self, name: str, value: Union[str, object]) -> None:
        """Insert a line above the first line of the same header (or at the top): new Via or
        Record-Route values go here (RFC 3261 §16.6)."""
        field = self._new_field(name, value)
        for i, f in enumerate(self._fields):
            if f.key == field.key:
                self._fields.insert(i, field)
                return
        self._fields.insert(0, field)

    def set(self, name: str, value: Union[str, object]) -> None:
        """Replace every line of the header with one line, where the first one was."""
        field = self._new_field(name, value)
        for i, f in enumerate(self._fields):
            if f.key == field.key:
                self._fields[i] = field
                self._fields[i + 1 :] = [g for g in self._fields[i + 1 :] if g.key != field.key]
                return
        self._fields.append(field)

    def set_values(self, spec: HeaderSpec[T], values: Iterable[T]) -> None:
        """Replace a header with one line per typed value (none: the header is removed)."""
        self.remove(spec.name)
        for value in values:
            self.add(spec.name, value)

    def remove(self, name: str) -> int:
        """Remove every line of a header; return how many were removed."""
        key = header_key(name)
        before = len(self._fields)
        self._fields = [f for f in self._fields if f.key != key]
        return before - len(self._fields)

    def pop_first(self, spec: HeaderSpec[T]) -> Optional[T]:
        """Remove and return the first value of a header: the top Via, the first Route.

        If that line holds a comma list, the line keeps the remaining values.
        """
        key = spec.key
        for i, f in enumerate(self._fields):
            if f.key != key:
                continue
            values = f.parsed
            if values is None:
                values = f.parsed = _parse_field(spec, f.value)
            if len(values) <= 1:
                del self._fields[i]
                if values:
                    return cast(T, values[0])
                continue
            rest = values[1:]
            g = _Field(f.key, f.name, ", ".join(str(v) for v in rest))
            g.parsed = rest
            self._fields[i] = g
            return cast(T, values[0])
        return None

    def _new_field(self, name: str, value: Union[str, object]) -> _Field:
        known = _BY_NAME.get(name)  # a known name is a token: no need to check it
        key = header_key(_check_name(name)) if known is None else known[0]
        text = value if isinstance(value, str) else str(value)
        field = _Field(key, name, _check_value(name, text))
        if not isinstance(value, str):
            field.parsed = [value]
        return field


def _parse_field(spec: HeaderSpec[T], value: str) -> list[T]:
    if spec.multi:
        items = split_comma_list(value)
        if not items:
            raise ParseError("Empty " + spec.name)
        return [spec.parse(item) for item in items]
    return [spec.parse(value)]


class Message:
    """What requests and responses share: headers, body and the common typed accessors."""

    __slots__ = ("body", "headers")

    headers: Headers
    body: bytes

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise: start line, headers (unchanged ones from their raw text), body.

        Content-Length always ends up equal to ``len(body)``: an existing header that already
        says so is kept as is, a wrong one is replaced, a missing one is appended.
        """
        headers = self.headers
        length = len(self.body)
        fields = headers._fields
        lines = [self._start_line()]
        append = lines.append
        found = False
        for f in fields:
            if f.key == "content-length":
                if found:
                    continue
                found = True
                if f.value != str(length):
                    append(f.name + ": " + str(length))
                    continue
            raw = f.raw  # f.line(), inline: this loop runs for every line of every message
            append(raw if raw is not None else f.name + ": " + f.value)
        if not found:
            lines.append("Content-Length: " + str(length))
        lines.append(_CRLF)
        return _CRLF.join(lines).encode("utf-8", "surrogateescape") + self.body

    __bytes__ = to_bytes

    # ---- typed accessors for the headers every message has (RFC 3261 §8.1.1)

    def _required(self, spec: HeaderSpec[T]) -> T:
        value = self.headers.first(spec)
        if value is None:
            raise ParseError("Missing " + spec.name)
        return value

    @property
    def call_id(self) -> str:
        return self._required(CALL_ID)

    @property
    def cseq(self) -> CSeq:
        return self._required(CSEQ)

    @property
    def from_(self) -> NameAddr:
        return self._required(FROM)

    @property
    def to(self) -> NameAddr:
        return self._required(TO)

    @property
    def vias(self) -> list[Via]:
        return self.headers.parsed(VIA)

    @property
    def top_via(self) -> Via:
        return self._required(VIA)

    @property
    def max_forwards(self) -> Optional[int]:
        return self.headers.first(MAX_FORWARDS)

    @property
    def content_type(self) -> Optional[MediaType]:
        return self.headers.first(CONTENT_TYPE)


def _as_headers(headers: Union[Headers, Iterable[tuple[str, str]], None]) -> Headers:
    if headers is None:
        return Headers()
    if isinstance(headers, Headers):
        return headers
    return Headers(headers)


class Request(Message):
    """A SIP request (RFC 3261 §7.1): ``Request(method, uri, headers, body)``.

    ``uri`` may be given as text; it is parsed (and must be a valid URI). ``headers`` is a
    :class:`Headers` or an iterable of ``(name, value)`` pairs.
    """

    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: Union[Uri, str],
        headers: Union[Headers, Iterable[tuple[str, str]], None] = None,
        body: bytes = b"",
    ) -> None:
        self.method = method
        self.uri: Uri = parse_uri(uri) if isinstance(uri, str) else uri
        self.headers = _as_headers(headers)
        self.body = body

    @override
    def _start_line(self) -> str:
        return self.method + " " + str(self.uri) + " SIP/2.0"

    @override
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (
            self.method == other.method
            and str(self.uri) == str(other.uri)
            and self.headers == other.headers
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    @override
    def __repr__(self) -> str:
        return "<Request " + self.method + " " + str(self.uri) + ">"

    def copy(self) -> Request:
        """An independent copy (headers copied; the URI and typed values are immutable)."""
        return Request(self.method, self.uri, self.headers.copy(), self.body)


class Response(Message):
    """A SIP response (RFC 3261 §7.2): ``Response(status, reason, headers, body)``."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str = "",
        headers: Union[Headers, Iterable[tuple[str, str]], None] = None,
        body: bytes = b"",
    ) -> None:
        if not 100 <= status <= 699:
            raise ValueError("status code out of range: " + str(status))
        if "\r" in reason or "\n" in reason:
            raise ValueError("reason phrase contains CR or LF")
        self.status = status
        self.reason = reason
        self.headers = _as_headers(headers)
        self.body = body

    @override
    def _start_line(self) -> str:
        return "SIP/2.0 " + str(self.status) + " " + self.reason

    @override
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (
            self.status == other.status
            and self.reason == other.reason
            and self.headers == other.headers
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    @override
    def __repr__(self) -> str:
        return "<Response " + str(self.status) + " " + self.reason + ">"

    def copy(self) -> Response:
        return Response(self.status, self.reason, self.headers.copy(), self.body)
