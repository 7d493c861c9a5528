"""SIP, SIPS and tel URIs, and opaque URIs of any other scheme.

Implements:

* RFC 3261 §19.1.1-§19.1.2 and §25.1: the ``SIP-URI`` / ``SIPS-URI`` grammar (userinfo, hostport,
  uri-parameters, headers), with ``IPv4address`` as corrected to ``dec-octet`` by RFC 5954 §4.1;
* RFC 3261 §19.1.4: SIP URI comparison, IPv6 hosts compared as addresses (RFC 5954 §4.2);
* RFC 5118 §4: IPv6 references in SIP URIs (always bracketed; ``[2001:db8::10:5070]`` is all
  address; the RFC 3261 ABNF's ``:::`` form of §4.10 is tolerated);
* RFC 3966 §3 (``tel`` syntax: global and local numbers, visual separators, ``isub``, ``ext``,
  ``phone-context``, each parameter at most once), §4 (comparison) and §5.1.4-§5.1.5 (a local
  number needs ``phone-context``, a global number takes none);
* RFC 3261 §25.1 ``absoluteURI`` for any other scheme, kept opaque.

Parsed URIs keep the text they were parsed from, so ``str(parse_uri(s)) == s``.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from typing import Optional, Union
from urllib.parse import unquote_to_bytes

from typing_extensions import override

from clearwater.errors import ParseError
from clearwater.sip._grammar import memoized

__all__ = ["AbsoluteUri", "SipUri", "TelUri", "Uri", "parse_sip_uri", "parse_uri"]

_Params = tuple[tuple[str, Optional[str]], ...]
_Headers = tuple[tuple[str, str], ...]

# --- RFC 3261 §25.1 character classes (as regex class bodies; "%" admitted, escapes checked
# separately by _BAD_ESCAPE so the main pattern stays a run of simple classes) ---
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_USER_CHARS = _UNRESERVED + r"&=+$,;?/%"  # unreserved / escaped / user-unreserved
_PASSWORD_CHARS = _UNRESERVED + r"&=+$,%"
_PARAM_CHARS = _UNRESERVED + r"\[\]/:&+$%"  # paramchar = param-unreserved / unreserved / escaped
_HEADER_CHARS = _UNRESERVED + r"\[\]/?:+$%"  # hnv-unreserved / unreserved / escaped

# domainlabel "." ... toplabel ["."], written so that no label needs backtracking
_HOSTNAME = r"(?:[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(?:-+[A-Za-z0-9]+)*\.?"
_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
_IPV6_REF = r"\[[0-9A-Fa-f:.]+\]"  # checked with ipaddress afterwards
_HOST = rf"(?:{_IPV6_REF}|{_IPV4}|{_HOSTNAME})"

_HOSTPORT_TAIL = (
    rf"({_HOST})(?::([0-9]{{1,5}}))?"
    rf"((?:;[{_PARAM_CHARS}]+(?:=[{_PARAM_CHARS}]+)?)*)"
    rf"(?:\?([{_HEADER_CHARS}]+=[{_HEADER_CHARS}]*(?:&[{_HEADER_CHARS}]+=[{_HEADER_CHARS}]*)*))?"
)
# Everything after "sip:" / "sips:", with and without userinfo (chosen by whether "@" occurs:
# "@" is legal nowhere else in a SIP URI).
_SIP_NOUSER_RE = re.compile(_HOSTPORT_TAIL)
_SIP_USER_RE = re.compile(rf"([{_USER_CHARS}]+)(?::([{_PASSWORD_CHARS}]*))?@" + _HOSTPORT_TAIL)

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_USER_RE = re.compile(rf"[{_USER_CHARS}]+")
_PASSWORD_RE = re.compile(rf"[{_PASSWORD_CHARS}]*")
_HOST_RE = re.compile(_HOST)
_PORT_RE = re.compile(r"[0-9]{1,5}")
_PARAM_TOKEN_RE = re.compile(rf"[{_PARAM_CHARS}]+")
_HNAME_RE = re.compile(rf"[{_HEADER_CHARS}]+")
_HVALUE_RE = re.compile(rf"[{_HEADER_CHARS}]*")
_HOSTNAME_RE = re.compile(_HOSTNAME)

# --- RFC 3966 §3 ---
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")
_GLOBAL_NUMBER_RE = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
_LOCAL_NUMBER_RE = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")
_TEL_PNAME_RE = re.compile(r"[A-Za-z0-9-]+")
_ISUB_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()/?:@&=+$,%]+")  # 1*uric, less ";" (the separator)
_EXT_RE = re.compile(r"[0-9\-.()]+")  # 1*phonedigit

# --- RFC 3261 §25.1 absoluteURI, loosely: scheme ":" printable ASCII other than SP < > " ---
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_OPAQUE_RE = re.compile(r"[!#-;=?-~]+")

# RFC 3261 §19.1.4: present in one URI and absent from the other means "not equal".
_MUST_MATCH_PARAMS = ("user", "ttl", "method", "maddr", "transport")


class _Unset(enum.Enum):
    UNSET = enum.auto()


_UNSET = _Unset.UNSET


def _fail(why: str) -> ParseError:
    return ParseError("Bad URI: " + why)


def _unescape(text: str) -> str:
    """Percent-decode ``text`` to a str of the decoded octets (latin-1, so nothing is lost)."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("latin-1")


def _fold(text: str) -> str:
    """Percent-decode and ASCII-lower-case ``text``: the case-insensitive comparison form."""
    if "%" not in text:
        return text.lower()
    return unquote_to_bytes(text).lower().decode("latin-1")


def _ipv6_key(host: str) -> Optional[str]:
    """The normalised ``[address]`` form of an IPv6 reference, or None if it is not one.

    RFC 5118 §4.10: tolerate the ``:::`` that RFC 3261's buggy ABNF allowed before an embedded
    IPv4 address, reading it as ``::``.
    """
    inner = host[1:-1]
    try:
        return "[" + ipaddress.IPv6Address(inner).compressed + "]"
    except ValueError:
        pass
    head, colons, tail = inner.partition(":::")
    if colons and "." in tail and ":" not in tail:
        try:
            return "[" + ipaddress.IPv6Address(f"{head}::{tail}").compressed + "]"
        except ValueError:
            pass
    return None


def _escapes_ok(text: str) -> bool:
    return "%" not in text or _BAD_ESCAPE.search(text) is None


def _find_param(params: _Params, name: str) -> Optional[str]:
    key = _fold(name)
    for n, v in params:
        if _fold(n) == key:
            return "" if v is None else v
    return None


# ------------------------------------------------------------------------------------------
# SIP / SIPS
# ------------------------------------------------------------------------------------------


def _check_host(host: str) -> Optional[str]:
    if not host:
        return "empty host"
    if host[0] == "[":
        if _HOST_RE.fullmatch(host) is None or _ipv6_key(host) is None:
            return "bad IPv6 reference"
        return None
    if _HOST_RE.fullmatch(host) is None:
        return "bad host"
    return None


def _check_user(user: Optional[str], password: Optional[str]) -> Optional[str]:
    if user is None:
        return None if password is None else "password without user"
    if not user:
        return "empty user"
    if _USER_RE.fullmatch(user) is None or not _escapes_ok(user):
        return "bad user"
    if password is not None and (
        _PASSWORD_RE.fullmatch(password) is None or not _escapes_ok(password)
    ):
        return "bad password"
    return None


def _check_port(port: Optional[int]) -> Optional[str]:
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        return "bad port"
    return None


def _check_params(params: _Params) -> Optional[str]:
    for name, value in params:
        if _PARAM_TOKEN_RE.fullmatch(name) is None or not _escapes_ok(name):
            return "bad parameter"
        if value is not None and (
            _PARAM_TOKEN_RE.fullmatch(value) is None or not _escapes_ok(value)
        ):
            return "bad parameter"
    return None


def _check_headers(headers: _Headers) -> Optional[str]:
    for name, value in headers:
        if _HNAME_RE.fullmatch(name) is None or not _escapes_ok(name):
            return "bad header"
        if _HVALUE_RE.fullmatch(value) is None or not _escapes_ok(value):
            return "bad header"
    return None


def _split_params(text: str) -> _Params:
    """``;a=b;c`` (already validated) -> ``(("a", "b"), ("c", None))``."""
    out = []
    for item in text[1:].split(";"):
        name, eq, value = item.partition("=")
        out.append((name, value if eq else None))
    return tuple(out)


def _split_headers(text: str) -> _Headers:
    """``h=v&h2=`` (already validated, without the "?") -> ``(("h", "v"), ("h2", ""))``."""
    out = []
    for item in text.split("&"):
        name, _, value = item.partition("=")
        out.append((name, value))
    return tuple(out)


def _param_map(params: _Params) -> dict[str, Optional[str]]:
    """Comparison form of uri-parameters: folded name -> folded value (first occurrence wins)."""
    out: dict[str, Optional[str]] = {}
    for name, value in params:
        key = _fold(name)
        if key not in out:
            out[key] = None if value is None else _fold(value)
    return out


def _params_equal(a: _Params, b: _Params) -> bool:
    """RFC 3261 §19.1.4 uri-parameter comparison."""
    if a == b:
        return True
    ma, mb = _param_map(a), _param_map(b)
    for name in _MUST_MATCH_PARAMS:
        if (name in ma) != (name in mb):
            return False
    return all(name not in mb or mb[name] == value for name, value in ma.items())


def _header_set(headers: _Headers) -> frozenset[tuple[str, str]]:
    return frozenset((_fold(name), _unescape(value)) for name, value in headers)


class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1): an immutable value.

    Components keep their wire form (``%`` escapes as written); comparison (``==``) follows
    RFC 3261 §19.1.4. The constructor checks each component against the RFC 3261 §25.1 grammar
    and raises :class:`ValueError` for a bad one.
    """

    __slots__ = (
        "_headers",
        "_host",
        "_key",
        "_params",
        "_password",
        "_port",
        "_scheme",
        "_text",
        "_user",
    )

    _scheme: str
    _user: Optional[str]
    _password: Optional[str]
    _host: str
    _port: Optional[int]
    _params: _Params
    _headers: _Headers
    _text: Optional[str]
    _key: Optional[tuple[str, Optional[str], Optional[str], str, Optional[int]]]

    def __init__(
        self,
        host: str,
        user: str | None = None,
        *,
        scheme: str = "sip",
        password: str | None = None,
        port: int | None = None,
        params: tuple[tuple[str, str | None], ...] = (),
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        scheme = scheme.lower()
        if scheme not in ("sip", "sips"):
            raise ValueError(f"SipUri scheme must be sip or sips, not {scheme!r}")
        params = tuple((n, v) for n, v in params)
        headers = tuple((n, v) for n, v in headers)
        why = (
            _check_user(user, password)
            or _check_host(host)
            or _check_port(port)
            or _check_params(params)
            or _check_headers(headers)
        )
        if why is not None:
            raise ValueError(f"SipUri: {why}")
        self._scheme = scheme
        self._user = user
        self._password = password
        self._host = host
        self._port = port
        self._params = params
        self._headers = headers
        self._text = None
        self._key = None

    @classmethod
    def _trusted(
        cls,
        scheme: str,
        user: Optional[str],
        password: Optional[str],
        host: str,
        port: Optional[int],
        params: _Params,
        headers: _Headers,
        text: Optional[str],
    ) -> SipUri:
        self = cls.__new__(cls)
        self._scheme = scheme
        self._user = user
        self._password = password
        self._host = host
        self._port = port
        self._params = params
        self._headers = headers
        self._text = text
        self._key = None
        return self

    # -- components --

    @property
    def scheme(self) -> str:
        """``"sip"`` or ``"sips"``, lower-cased."""
        return self._scheme

    @property
    def user(self) -> str | None:
        """The user part in wire form (escapes kept), or None."""
        return self._user

    @property
    def password(self) -> str | None:
        """The password in wire form, or None (``""`` for ``user:@host``)."""
        return self._password

    @property
    def host(self) -> str:
        """The host as written; an IPv6 reference keeps its brackets."""
        return self._host

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def params(self) -> tuple[tuple[str, str | None], ...]:
        """uri-parameters in order, as written; a value of None means no ``=value``."""
        return self._params

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """``?name=value&...`` headers in order, wire form."""
        return self._headers

    # -- derived --

    @property
    def user_unescaped(self) -> str | None:
        """The user part with ``%XX`` escapes decoded as UTF-8 (bad UTF-8 becomes U+FFFD)."""
        user = self._user
        if user is None or "%" not in user:
            return user
        return unquote_to_bytes(user).decode("utf-8", "replace")

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, or None."""
        value = _find_param(self._params, "transport")
        return value.lower() if value else None

    @property
    def maddr(self) -> str | None:
        return _find_param(self._params, "maddr") or None

    @property
    def ttl(self) -> int | None:
        """The ``ttl`` parameter (0-255), or None if absent or not a valid ttl."""
        value = _find_param(self._params, "ttl")
        if value and len(value) <= 3 and value.isdigit() and value.isascii():
            ttl = int(value)
            return ttl if ttl <= 255 else None
        return None

    @property
    def lr(self) -> bool:
        return _find_param(self._params, "lr") is not None

    @property
    def method(self) -> str | None:
        return _find_param(self._params, "method") or None

    @property
    def user_param(self) -> str | None:
        """The ``user`` parameter (``phone``, ``ip``, ...), lower-cased, or None."""
        value = _find_param(self._params, "user")
        return value.lower() if value else None

    @property
    def host_port(self) -> str:
        """``host`` or ``host:port``."""
        if self._port is None:
            return self._host
        return f"{self._host}:{self._port}"

    @property
    def is_ipv6(self) -> bool:
        return self._host.startswith("[")

    @property
    def default_port(self) -> int:
        """5061 for ``sips``, else 5060 (RFC 3261 §19.1.2)."""
        return 5061 if self._scheme == "sips" else 5060

    def param(self, name: str) -> str | None:
        """The first parameter called ``name`` (case-insensitive): its value, ``""`` for a
        parameter without a value, or None if there is none."""
        return _find_param(self._params, name)

    def has_param(self, name: str) -> bool:
        return _find_param(self._params, name) is not None

    # -- derived values --

    def replace(
        self,
        *,
        scheme: str | None = None,
        user: str | _Unset | None = _UNSET,
        password: str | _Unset | None = _UNSET,
        host: str | None = None,
        port: int | _Unset | None = _UNSET,
        params: tuple[tuple[str, str | None], ...] | None = None,
        headers: tuple[tuple[str, str], ...] | None = None,
    ) -> SipUri:
        """A copy with the given components changed (``user=None`` etc. removes one).

        Only the changed components are checked; a bad one raises :class:`ValueError`.
        """
        new_scheme = self._scheme
        if scheme is not None:
            new_scheme = scheme.lower()
            if new_scheme not in ("sip", "sips"):
                raise ValueError(f"SipUri scheme must be sip or sips, not {scheme!r}")
        new_user = self._user if isinstance(user, _Unset) else user
        new_password = self._password if isinstance(password, _Unset) else password
        new_port = self._port if isinstance(port, _Unset) else port
        new_host = self._host if host is None else host
        new_params = self._params if params is None else tuple((n, v) for n, v in params)
        new_headers = self._headers if headers is None else tuple((n, v) for n, v in headers)
        why = None
        if not (isinstance(user, _Unset) and isinstance(password, _Unset)):
            why = _check_user(new_user, new_password)
        if why is None and host is not None:
            why = _check_host(new_host)
        if why is None and not isinstance(port, _Unset):
            why = _check_port(new_port)
        if why is None and params is not None:
            why = _check_params(new_params)
        if why is None and headers is not None:
            why = _check_headers(new_headers)
        if why is not None:
            raise ValueError(f"SipUri: {why}")
        return SipUri._trusted(
            new_scheme,
            new_user,
            new_password,
            new_host,
            new_port,
            new_params,
            new_headers,
            None,
        )

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        """A copy with parameter ``name`` set to ``value`` (None: no ``=value``), replacing the
        first existing one of that name (case-insensitive) in place and dropping any others."""
        key = _fold(name)
        new: list[tuple[str, Optional[str]]] = []
        replaced = False
        for n, v in self._params:
            if _fold(n) == key:
                if not replaced:
                    new.append((name, value))
                    replaced = True
            else:
                new.append((n, v))
        if not replaced:
            new.append((name, value))
        return self.replace(params=tuple(new))

    def without_param(self, name: str) -> SipUri:
        """A copy without any parameter called ``name`` (case-insensitive)."""
        key = _fold(name)
        kept = tuple((n, v) for n, v in self._params if _fold(n) != key)
        if len(kept) == len(self._params):
            return self
        return self.replace(params=kept)

    # -- text and comparison --

    @override
    def __str__(self) -> str:
        text = self._text
        if text is None:
            parts = [self._scheme, ":"]
            if self._user is not None:
                parts.append(self._user)
                if self._password is not None:
                    parts.append(":")
                    parts.append(self._password)
                parts.append("@")
            parts.append(self._host)
            if self._port is not None:
                parts.append(f":{self._port}")
            for name, value in self._params:
                parts.append(f";{name}" if value is None else f";{name}={value}")
            if self._headers:
                parts.append("?")
                parts.append("&".join(f"{n}={v}" for n, v in self._headers))
            text = self._text = "".join(parts)
        return text

    @override
    def __repr__(self) -> str:
        return f"SipUri({str(self)!r})"

    def _compare_key(self) -> tuple[str, Optional[str], Optional[str], str, Optional[int]]:
        key = self._key
        if key is None:
            host = self._host
            host_key = (_ipv6_key(host) or host) if host[0] == "[" else host.lower()
            user = self._user
            password = self._password
            key = self._key = (
                self._scheme,
                None if user is None else _unescape(user),
                None if password is None else _unescape(password),
                host_key,
                self._port,
            )
        return key

    @override
    def __eq__(self, other: object) -> bool:
        """RFC 3261 §19.1.4 equality."""
        if not isinstance(other, SipUri):
            return NotImplemented
        if self is other:
            return True
        if self._compare_key() != other._compare_key():
            return False
        if (self._params or other._params) and not _params_equal(self._params, other._params):
            return False
        if self._headers or other._headers:
            return _header_set(self._headers) == _header_set(other._headers)
        return True

    @override
    def __hash__(self) -> int:
        return hash(self._compare_key())


def _sip_reason(text: str, pos: int) -> str:
    """Why ``text`` (a sip/sips URI whose body starts at ``pos``) failed to parse."""
    for char in text:
        if char <= " " or char == "\x7f":
            return "whitespace or control character"
        if char in '<>"':
            return "illegal character"
        if char > "~":
            return "non-ASCII character"
    if _BAD_ESCAPE.search(text, pos):
        return "bad escape"
    rest = text[pos:]
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        if "@" in rest:
            return "more than one @"
        user, colon, password = userinfo.partition(":")
        why = _check_user(user, password if colon else None)
        if why is not None:
            return why
    end = len(rest)
    for sep in ";?":
        idx = rest.find(sep)
        if 0 <= idx < end:
            end = idx
    hostport = rest[:end]
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            return "bad IPv6 reference"
        host, after = hostport[: close + 1], hostport[close + 1 :]
    else:
        host, colon, port = hostport.partition(":")
        after = colon + port
    why = _check_host(host)
    if why is not None:
        return why
    if after and (
        after[0] != ":" or _PORT_RE.fullmatch(after, 1) is None or int(after[1:]) > 65535
    ):
        return "bad port"
    params, question, headers = rest[end:].partition("?")
    if params and (params[0] != ";" or _check_params(_split_params(params))):
        return "bad parameter"
    if question and (
        not headers
        or any("=" not in item for item in headers.split("&"))
        or _check_headers(_split_headers(headers))
    ):
        return "bad header"
    return "malformed"  # pragma: no cover - every failure above has a named reason


def _parse_sip(text: str, colon: int, scheme: str) -> SipUri:
    pos = colon + 1
    if "@" in text:
        m = _SIP_USER_RE.fullmatch(text, pos)
        if m is None:
            raise _fail(_sip_reason(text, pos))
        user, password, host, port_text, params_text, headers_text = m.groups()
    else:
        m = _SIP_NOUSER_RE.fullmatch(text, pos)
        if m is None:
            raise _fail(_sip_reason(text, pos))
        user = password = None
        host, port_text, params_text, headers_text = m.groups()
    if "%" in text and _BAD_ESCAPE.search(text, pos) is not None:
        raise _fail("bad escape")
    if host[0] == "[" and _ipv6_key(host) is None:
        raise _fail("bad IPv6 reference")
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise _fail("bad port")
    return SipUri._trusted(
        scheme,
        user,
        password,
        host,
        port,
        _split_params(params_text) if params_text else (),
        _split_headers(headers_text) if headers_text is not None else (),
        text,
    )


# ------------------------------------------------------------------------------------------
# tel
# ------------------------------------------------------------------------------------------


def _check_tel(number: str, params: _Params) -> Optional[str]:
    """RFC 3966 §3 / §5.1: the reason ``number`` + ``params`` is not a tel URI, or None."""
    is_global = number.startswith("+")
    if is_global:
        if _GLOBAL_NUMBER_RE.fullmatch(number) is None:
            return "bad tel number"
    elif _LOCAL_NUMBER_RE.fullmatch(number) is None:
        return "bad tel number"
    seen = set()
    for name, value in params:
        key = name.lower()
        if _TEL_PNAME_RE.fullmatch(name) is None:
            return "bad tel parameter"
        if key in seen:
            return "repeated tel parameter"
        seen.add(key)
        if value is None:
            if key in ("isub", "ext", "phone-context"):
                return f"bad tel {key}"
            continue
        if not _escapes_ok(value):
            return "bad escape"
        if key == "isub":
            ok = _ISUB_RE.fullmatch(value) is not None
        elif key == "ext":
            ok = _EXT_RE.fullmatch(value) is not None
        elif key == "phone-context":
            ok = (
                _GLOBAL_NUMBER_RE.fullmatch(value) is not None
                if value.startswith("+")
                else _HOSTNAME_RE.fullmatch(value) is not None
            )
        else:
            ok = _PARAM_TOKEN_RE.fullmatch(value) is not None
        if not ok:
            return (
                f"bad tel {key}" if key in ("isub", "ext", "phone-context") else "bad tel parameter"
            )
    if is_global and "phone-context" in seen:
        return "phone-context on global number"
    if not is_global and "phone-context" not in seen:
        return "local number without phone-context"
    return None


def _tel_value_key(name: str, value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    if name == "ext" or (name == "phone-context" and value.startswith("+")):
        return value.translate(_VISUAL_SEPARATORS)
    return _fold(value)


class TelUri:
    """A ``tel:`` URI (RFC 3966): an immutable value.

    ``number`` and ``params`` are as written; comparison (``==``) follows RFC 3966 §4. The
    constructor raises :class:`ValueError` for components that break RFC 3966 §3.
    """

    __slots__ = ("_key", "_number", "_params", "_text")

    _number: str
    _params: _Params
    _text: Optional[str]
    _key: Optional[tuple[str, frozenset[tuple[str, Optional[str]]]]]

    def __init__(self, number: str, params: tuple[tuple[str, str | None], ...] = ()) -> None:
        params = tuple((n, v) for n, v in params)
        why = _check_tel(number, params)
        if why is not None:
            raise ValueError(f"TelUri: {why}")
        self._number = number
        self._params = params
        self._text = None
        self._key = None

    @classmethod
    def _trusted(cls, number: str, params: _Params, text: str) -> TelUri:
        self = cls.__new__(cls)
        self._number = number
        self._params = params
        self._text = text
        self._key = None
        return self

    @property
    def number(self) -> str:
        """The number as written, visual separators kept."""
        return self._number

    @property
    def params(self) -> tuple[tuple[str, str | None], ...]:
        return self._params

    @property
    def is_global(self) -> bool:
        return self._number.startswith("+")

    @property
    def phone_context(self) -> str | None:
        return _find_param(self._params, "phone-context")

    @property
    def digits(self) -> str:
        """The number without visual separators (``-`` ``.`` ``(`` ``)``); a leading ``+`` stays."""
        return self._number.translate(_VISUAL_SEPARATORS)

    def param(self, name: str) -> str | None:
        """The parameter called ``name`` (case-insensitive): its value, ``""`` for one without a
        value, or None if absent."""
        return _find_param(self._params, name)

    @override
    def __str__(self) -> str:
        text = self._text
        if text is None:
            parts = ["tel:", self._number]
            for name, value in self._params:
                parts.append(f";{name}" if value is None else f";{name}={value}")
            text = self._text = "".join(parts)
        return text

    @override
    def __repr__(self) -> str:
        return f"TelUri({str(self)!r})"

    def _compare_key(self) -> tuple[str, frozenset[tuple[str, Optional[str]]]]:
        key = self._key
        if key is None:
            pairs = []
            for name, value in self._params:
                lname = name.lower()
                pairs.append((lname, _tel_value_key(lname, value)))
            key = self._key = (self.digits.lower(), frozenset(pairs))
        return key

    @override
    def __eq__(self, other: object) -> bool:
        """RFC 3966 §4 equality."""
        if not isinstance(other, TelUri):
            return NotImplemented
        return self._compare_key() == other._compare_key()

    @override
    def __hash__(self) -> int:
        return hash(self._compare_key())


def _parse_tel(text: str, colon: int) -> TelUri:
    number, *rest = text[colon + 1 :].split(";")
    params = []
    for item in rest:
        name, eq, value = item.partition("=")
        params.append((name, value if eq else None))
    tparams = tuple(params)
    why = _check_tel(number, tparams)
    if why is not None:
        raise _fail(why)
    return TelUri._trusted(number, tparams, text)


# ------------------------------------------------------------------------------------------
# any other scheme
# ------------------------------------------------------------------------------------------


class AbsoluteUri:
    """A URI of a scheme other than sip, sips or tel, kept opaque (RFC 3261 §25.1
    ``absoluteURI``): e.g. ``urn:service:sos``, ``mailto:...``.

    Equal when the schemes match case-insensitively and the rest matches exactly.
    """

    __slots__ = ("_rest", "_scheme", "_text")

    _scheme: str
    _rest: str
    _text: str

    def __init__(self, scheme: str, rest: str) -> None:
        if _SCHEME_RE.fullmatch(scheme) is None:
            raise ValueError(f"AbsoluteUri: bad scheme {scheme!r}")
        if scheme.lower() in ("sip", "sips", "tel"):
            raise ValueError(f"AbsoluteUri: use SipUri or TelUri for {scheme!r}")
        if _OPAQUE_RE.fullmatch(rest) is None:
            raise ValueError(f"AbsoluteUri: bad text after the scheme: {rest!r}")
        self._scheme = scheme.lower()
        self._rest = rest
        self._text = f"{scheme}:{rest}"

    @classmethod
    def _trusted(cls, scheme: str, rest: str, text: str) -> AbsoluteUri:
        self = cls.__new__(cls)
        self._scheme = scheme
        self._rest = rest
        self._text = text
        return self

    @property
    def scheme(self) -> str:
        """The scheme, lower-cased."""
        return self._scheme

    @property
    def rest(self) -> str:
        """Everything after the first ``:``, as written."""
        return self._rest

    @override
    def __str__(self) -> str:
        return self._text

    @override
    def __repr__(self) -> str:
        return f"AbsoluteUri({self._text!r})"

    @override
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AbsoluteUri):
            return NotImplemented
        return self._scheme == other._scheme and self._rest == other._rest

    @override
    def __hash__(self) -> int:
        return hash((self._scheme, self._rest))


def _parse_absolute(text: str, colon: int) -> AbsoluteUri:
    scheme = text[:colon]
    if _SCHEME_RE.fullmatch(scheme) is None:
        raise _fail("bad scheme")
    if colon + 1 == len(text):
        raise _fail("empty")
    if _OPAQUE_RE.fullmatch(text, colon + 1) is None:
        raise _fail("illegal character")
    return AbsoluteUri._trusted(scheme.lower(), text[colon + 1 :], text)


# ------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------

Uri = Union[SipUri, TelUri, AbsoluteUri]


def _parse_uri(text: str) -> Uri:
    """Parse a URI: :class:`SipUri` for sip/sips, :class:`TelUri` for tel, else
    :class:`AbsoluteUri`. Raises :class:`~clearwater.errors.ParseError` if it is malformed."""
    if text.startswith("sip:"):
        return _parse_sip(text, 3, "sip")
    colon = text.find(":")
    if colon <= 0:
        raise _fail("no scheme")
    scheme = text[:colon].lower()
    if scheme == "sip" or scheme == "sips":
        return _parse_sip(text, colon, scheme)
    if scheme == "tel":
        return _parse_tel(text, colon)
    return _parse_absolute(text, colon)


parse_uri = memoized(_parse_uri)


def parse_sip_uri(text: str) -> SipUri:
    """Parse a sip/sips URI; anything else (tel included) raises
    :class:`~clearwater.errors.ParseError`."""
    colon = text.find(":")
    if colon <= 0:
        raise _fail("no scheme")
    scheme = text[:colon].lower()
    if scheme == "sip" or scheme == "sips":
        return _parse_sip(text, colon, scheme)
    raise _fail("not a SIP URI")
