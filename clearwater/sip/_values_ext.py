"""Typed values of the SIP authentication, IMS, event, timer and caller-preference headers.

Each class parses one header value (one list element for list headers) and renders it back so
that parsing the rendering gives an equal object. Parameters keep their order and the values
their quotes, as in :mod:`clearwater.sip._grammar`. Every parser raises
:class:`~clearwater.errors.ParseError` only, with reason ``"Bad <Header>"``.

Sources:

- Authorization, Proxy-Authorization, WWW-Authenticate, Proxy-Authenticate,
  Authentication-Info: RFC 3261 §20.6, §20.7, §20.27, §20.28, §20.44, §22.4 and the §25.1
  grammar; RFC 7616 §3.3-§3.5 and RFC 8760 (SHA-256 / SHA-512-256 ``algorithm`` tokens);
  RFC 7235 §2.1 (``token68`` credentials of other schemes); RFC 3310 (AKA ``auts``) and
  3GPP TS 24.229 §7.2A (``integrity-protected``).
- P-Charging-Vector, P-Charging-Function-Addresses, P-Visited-Network-ID,
  P-Access-Network-Info: RFC 7315 §4.6, §4.5, §4.3, §4.4 (RFC 7913).
- Privacy: RFC 3323 §4.2 (RFC 3325 ``id``, RFC 7044 ``history``).
- Event, Subscription-State: RFC 6665 §8.2.1, §8.2.3 and the §8.4 grammar.
- Session-Expires, Min-SE: RFC 4028 §4.
- Reason: RFC 3326 §2. Warning: RFC 3261 §20.43. Retry-After: RFC 3261 §20.33.
- Accept-Contact, Reject-Contact: RFC 3841 §10 (feature parameters: RFC 3840 §9).

Where a grammar names a parameter with a specific value syntax (``expires``, ``retry-after``,
``duration``, ``cause``: delta-seconds or digits; ``refresher``: ``uac`` / ``uas``;
Subscription-State ``reason``: a token; ``icid-value``: required first) the parser checks it, so
the typed properties of a parsed value never fail. Other parameters are ``generic-param``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Optional

import attrs
from typing_extensions import override

from clearwater.errors import ParseError
from clearwater.sip._grammar import (
    _QUOTED,
    _TOKEN,
    Params,
    format_params,
    is_token,
    param_value,
    parse_params,
    unquote,
)

__all__ = [
    "AccessNetworkInfo",
    "AuthenticationInfo",
    "Challenge",
    "ChargingFunctionAddresses",
    "ChargingVector",
    "ContactPreference",
    "Credentials",
    "EventType",
    "MinSE",
    "Privacy",
    "ReasonValue",
    "RetryAfter",
    "SessionExpires",
    "SubscriptionState",
    "VisitedNetworkId",
    "WarningValue",
    "parse_proxy_authenticate",
    "parse_proxy_authorization",
    "parse_reject_contact",
    "parse_request_disposition",
]

_WS = " \t"
_MAX_DELTA_SECONDS = 2**32 - 1


# --------------------------------------------------------------------------- shared helpers


def _uint(text: Optional[str], what: str, maximum: int = _MAX_DELTA_SECONDS) -> int:
    """A decimal ``1*DIGIT`` no larger than ``maximum``; anything else is ``Bad <what>``."""
    if (
        text is None
        or not text.isdigit()
        or not text.isascii()
        or len(text) > 20
        or int(text) > maximum
    ):
        raise ParseError("Bad " + what)
    return int(text)


def _optional_uint(params: Params, name: str, what: str) -> Optional[int]:
    """The integer value of parameter ``name``, None if absent; a flag or non-digits is bad."""
    lname = name.lower()
    for pname, value in params:
        if pname.lower() == lname:
            return _uint(value, what)
    return None


def _leading_params(text: str, what: str) -> Params:
    """A value that is nothing but parameters: ``param *(SEMI param)`` (no leading ";")."""
    stripped = text.lstrip(_WS)
    if not stripped or stripped[0] == ";":
        raise ParseError("Bad " + what)
    return parse_params(";" + stripped, 0, what)


# Characters a quoted-string can carry only as a quoted-pair (RFC 3261 §25.1: qdtext excludes
# them; quoted-pair allows %x00-09 / %x0B-0C / %x0E-7F). CR and LF cannot be carried at all.
_QUOTE_AS_PAIR_RE = re.compile(r'(["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f])')


def _quote(text: str) -> str:
    """``_grammar.quote`` that also escapes control characters, so parsed values re-render."""
    return '"' + _QUOTE_AS_PAIR_RE.sub(r"\\\1", text) + '"'


def _word(value: str) -> str:
    """Render ``token / quoted-string``: bare if it is a token, else quoted."""
    return value if is_token(value) else _quote(value)


_WORD_RE = re.compile(r"[ \t]*(?:(" + _TOKEN + r")|(" + _QUOTED + r"))")


def _parse_word(text: str, what: str) -> tuple[str, int]:
    """A leading ``token / quoted-string``: its (unquoted) value and the position after it."""
    m = _WORD_RE.match(text)
    if m is None:
        raise ParseError("Bad " + what)
    token, quoted = m.groups()
    return (token if token is not None else unquote(quoted)), m.end()


_DIGITS_RE = re.compile(r"[ \t]*([0-9]+)")


def _has_flag(params: Params, name: str) -> bool:
    lname = name.lower()
    return any(pname.lower() == lname for pname, _ in params)


# --------------------------------------------------------------------------- authentication

# auth-param = auth-param-name EQUAL ( token / quoted-string ), then COMMA or the end.
_AUTH_PARAM_RE = re.compile(
    r"[ \t]*(" + _TOKEN + r")[ \t]*=[ \t]*(" + _TOKEN + r"|" + _QUOTED + r")[ \t]*"
)
_SCHEME_RE = re.compile(r"[ \t]*(" + _TOKEN + r")(?=[ \t]|$)[ \t]*")
# RFC 7235 §2.1: token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _parse_auth_params(text: str, pos: int, what: str) -> Params:
    """``auth-param *(COMMA auth-param)`` from ``pos`` to the end of ``text``.

    Commas inside quoted strings (``qop="auth,auth-int"``) do not separate parameters; empty
    elements and a trailing comma are errors. Values keep their quotes.
    """
    params: list[tuple[str, Optional[str]]] = []
    end = len(text)
    match = _AUTH_PARAM_RE.match
    while True:
        m = match(text, pos)
        if m is None:
            raise ParseError("Bad " + what)
        params.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos == end:
            return tuple(params)
        if text[pos] != ",":
            raise ParseError("Bad " + what)
        pos += 1


def _format_auth_params(params: Params) -> str:
    return ", ".join(name + "=" + ('""' if value is None else value) for name, value in params)


def _parse_scheme_and_params(text: str, what: str) -> tuple[str, Params, Optional[str]]:
    """``auth-scheme [ LWS ( token68 / auth-param *(COMMA auth-param) ) ]``."""
    m = _SCHEME_RE.match(text)
    if m is None:
        raise ParseError("Bad " + what)
    scheme = m.group(1)
    rest = text[m.end() :].rstrip(_WS)
    if not rest:
        # RFC 7235 allows a bare scheme; Digest needs its parameters (RFC 3261 §25.1).
        if scheme.lower() == "digest":
            raise ParseError("Bad " + what)
        return scheme, (), None
    if _AUTH_PARAM_RE.match(rest) is None and scheme.lower() != "digest":
        if _TOKEN68_RE.fullmatch(rest) is None:
            raise ParseError("Bad " + what)
        return scheme, (), rest
    return scheme, _parse_auth_params(rest, 0, what), None


class _DigestFields:
    """Unquoted accessors for the Digest parameters (RFC 3261 §25.1, RFC 7616 §3.3-§3.5)."""

    __slots__ = ()

    params: Params

    def param(self, name: str) -> Optional[str]:
        """Unquoted value of a parameter (case-insensitive name), or None if absent."""
        return param_value(self.params, name)

    @property
    def username(self) -> Optional[str]:
        return param_value(self.params, "username")

    @property
    def realm(self) -> Optional[str]:
        return param_value(self.params, "realm")

    @property
    def nonce(self) -> Optional[str]:
        return param_value(self.params, "nonce")

    @property
    def uri(self) -> Optional[str]:
        """The ``uri`` (digest-uri) parameter, as text."""
        return param_value(self.params, "uri")

    @property
    def response(self) -> Optional[str]:
        return param_value(self.params, "response")

    @property
    def algorithm(self) -> Optional[str]:
        """``MD5``, ``MD5-sess``, ``SHA-256``, ``AKAv1-MD5``, ... as written (None: MD5)."""
        return param_value(self.params, "algorithm")

    @property
    def cnonce(self) -> Optional[str]:
        return param_value(self.params, "cnonce")

    @property
    def opaque(self) -> Optional[str]:
        return param_value(self.params, "opaque")

    @property
    def qop(self) -> Optional[str]:
        """``qop``: one value in a response, a comma list (see ``qop_options``) in a challenge."""
        return param_value(self.params, "qop")

    @property
    def qop_options(self) -> tuple[str, ...]:
        """The ``qop`` values split on commas (RFC 3261 ``qop-options``); () if absent."""
        value = param_value(self.params, "qop")
        if value is None:
            return ()
        return tuple(item for item in (part.strip(_WS) for part in value.split(",")) if item)

    @property
    def nc(self) -> Optional[str]:
        """The nonce count as written: 8 hex digits, e.g. ``"00000001"``."""
        return param_value(self.params, "nc")

    @property
    def stale(self) -> bool:
        """True if ``stale=true`` (case-insensitive, RFC 3261 §25.1)."""
        value = param_value(self.params, "stale")
        return value is not None and value.lower() == "true"

    @property
    def domain(self) -> Optional[str]:
        """The ``domain`` parameter: space-separated URIs, as one string."""
        return param_value(self.params, "domain")

    @property
    def nextnonce(self) -> Optional[str]:
        return param_value(self.params, "nextnonce")

    @property
    def rspauth(self) -> Optional[str]:
        return param_value(self.params, "rspauth")

    @property
    def auts(self) -> Optional[str]:
        """AKA re-synchronisation token (RFC 3310 §3)."""
        return param_value(self.params, "auts")

    @property
    def integrity_protected(self) -> Optional[str]:
        """3GPP TS 24.229 ``integrity-protected`` (``yes``, ``no``, ``tls-yes``, ...)."""
        return param_value(self.params, "integrity-protected")


@attrs.frozen
class _AuthValue(_DigestFields):
    """What credentials and challenges share: a scheme and auth-params, or a token68."""

    scheme: str
    params: Params = ()
    token68: Optional[str] = None

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    @override
    def __str__(self) -> str:
        if self.token68 is not None:
            return self.scheme + " " + self.token68
        if not self.params:
            return self.scheme
        return self.scheme + " " + _format_auth_params(self.params)


@attrs.frozen
class Credentials(_AuthValue):
    """Authorization / Proxy-Authorization (RFC 3261 §20.7, §20.28, §22.4).

    ``Digest username="bob", realm="atlanta.example.com", ...``: ``scheme`` as written,
    ``params`` the auth-params in order (values keep their quotes and are never None). Other
    schemes keep their auth-params, or their RFC 7235 ``token68`` (then ``params`` is empty).
    """

    @classmethod
    def parse(cls, text: str) -> Credentials:
        return cls._parse(text, "Authorization")

    @classmethod
    def _parse(cls, text: str, what: str) -> Credentials:
        scheme, params, token68 = _parse_scheme_and_params(text, what)
        return cls(scheme, params, token68)


@attrs.frozen
class Challenge(_AuthValue):
    """WWW-Authenticate / Proxy-Authenticate (RFC 3261 §20.27, §20.44, §22.4).

    ``Digest realm="atlanta.example.com", qop="auth", nonce="...", stale=FALSE,
    algorithm=MD5``; ``qop_options`` splits the quoted ``qop`` list. One challenge per value:
    SIP does not comma-join challenges (RFC 3261 §25.1).
    """

    @classmethod
    def parse(cls, text: str) -> Challenge:
        return cls._parse(text, "WWW-Authenticate")

    @classmethod
    def _parse(cls, text: str, what: str) -> Challenge:
        scheme, params, token68 = _parse_scheme_and_params(text, what)
        return cls(scheme, params, token68)


@attrs.frozen
class AuthenticationInfo(_DigestFields):
    """Authentication-Info (RFC 3261 §20.6): ``nextnonce="..."``, ``qop``, ``rspauth``,
    ``cnonce``, ``nc``, comma-separated auth-params with no scheme."""

    params: Params

    @classmethod
    def parse(cls, text: str) -> AuthenticationInfo:
        return cls(_parse_auth_params(text.rstrip(_WS), 0, "Authentication-Info"))

    @override
    def __str__(self) -> str:
        return _format_auth_params(self.params)


def parse_proxy_authorization(text: str) -> Credentials:
    """Credentials of a Proxy-Authorization value (errors say ``Bad Proxy-Authorization``)."""
    return Credentials._parse(text, "Proxy-Authorization")


def parse_proxy_authenticate(text: str) -> Challenge:
    """A Proxy-Authenticate challenge (errors say ``Bad Proxy-Authenticate``)."""
    return Challenge._parse(text, "Proxy-Authenticate")


# --------------------------------------------------------------------------- RFC 7315 (IMS)


@attrs.frozen
class ChargingVector:
    """P-Charging-Vector (RFC 7315 §4.6): ``icid-value=...`` first, then charge-params.

    ``icid-value=1234bc9876e; icid-generated-at=192.0.6.8; orig-ioi=home1.net``.
    """

    params: Params

    @classmethod
    def parse(cls, text: str) -> ChargingVector:
        params = _leading_params(text, "P-Charging-Vector")
        name, value = params[0]
        if name.lower() != "icid-value" or value is None:
            raise ParseError("Bad P-Charging-Vector")
        return cls(params)

    @override
    def __str__(self) -> str:
        return format_params(self.params)[1:]

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)

    @property
    def icid(self) -> str:
        """The IMS Charging Identifier (``icid-value``, unquoted)."""
        value = param_value(self.params, "icid-value")
        if value is None:
            raise ParseError("Bad P-Charging-Vector")
        return value

    @property
    def icid_generated_at(self) -> Optional[str]:
        return param_value(self.params, "icid-generated-at")

    @property
    def orig_ioi(self) -> Optional[str]:
        return param_value(self.params, "orig-ioi")

    @property
    def term_ioi(self) -> Optional[str]:
        return param_value(self.params, "term-ioi")

    @property
    def transit_ioi(self) -> Optional[str]:
        return param_value(self.params, "transit-ioi")

    @property
    def related_icid(self) -> Optional[str]:
        return param_value(self.params, "related-icid")


@attrs.frozen
class ChargingFunctionAddresses:
    """P-Charging-Function-Addresses (RFC 7315 §4.5): ``ccf=...; ecf=...`` (each may repeat)."""

    params: Params

    @classmethod
    def parse(cls, text: str) -> ChargingFunctionAddresses:
        return cls(_leading_params(text, "P-Charging-Function-Addresses"))

    @override
    def __str__(self) -> str:
        return format_params(self.params)[1:]

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)

    def _all(self, name: str) -> list[str]:
        return [unquote(v) for n, v in self.params if n.lower() == name and v is not None]

    @property
    def ccf(self) -> list[str]:
        """Every Charging Collection Function address, in order, unquoted."""
        return self._all("ccf")

    @property
    def ecf(self) -> list[str]:
        """Every Event Charging Function address, in order, unquoted."""
        return self._all("ecf")


@attrs.frozen
class VisitedNetworkId:
    """One P-Visited-Network-ID value (RFC 7315 §4.3): ``(token / quoted-string) *(SEMI
    vnetwork-param)``. ``value`` is unquoted; it renders bare when it is a token."""

    value: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> VisitedNetworkId:
        value, pos = _parse_word(text, "P-Visited-Network-ID")
        return cls(value, parse_params(text, pos, "P-Visited-Network-ID"))

    @override
    def __str__(self) -> str:
        return _word(self.value) + format_params(self.params)

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)


@attrs.frozen
class AccessNetworkInfo:
    """One P-Access-Network-Info value (RFC 7315 §4.4, RFC 7913): access type (or class) and
    access-info parameters, e.g. ``3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=2620100...``.
    ``access_type`` is unquoted (a quoted one is accepted and renders quoted)."""

    access_type: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> AccessNetworkInfo:
        value, pos = _parse_word(text, "P-Access-Network-Info")
        return cls(value, parse_params(text, pos, "P-Access-Network-Info"))

    @override
    def __str__(self) -> str:
        return _word(self.access_type) + format_params(self.params)

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)

    @property
    def network_provided(self) -> bool:
        """True if a P-CSCF added the ``network-provided`` flag."""
        return _has_flag(self.params, "network-provided")

    @property
    def utran_cell_id_3gpp(self) -> Optional[str]:
        return param_value(self.params, "utran-cell-id-3gpp")

    @property
    def cgi_3gpp(self) -> Optional[str]:
        return param_value(self.params, "cgi-3gpp")


# --------------------------------------------------------------------------- Privacy (RFC 3323)

_SEMI_SPLIT_RE = re.compile(r"[ \t]*;[ \t]*")


@attrs.frozen
class Privacy:
    """Privacy (RFC 3323 §4.2): priv-values separated by ``;`` (``id``, ``header``,
    ``session``, ``user``, ``none``, ``critical``, ``history``, ...). ``"id" in privacy`` tests
    case-insensitively."""

    values: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Privacy:
        values = tuple(_SEMI_SPLIT_RE.split(text.strip(_WS)))
        if not all(is_token(v) for v in values):
            raise ParseError("Bad Privacy")
        return cls(values)

    @override
    def __str__(self) -> str:
        return ";".join(self.values)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str):
            return False
        lower = item.lower()
        return any(v.lower() == lower for v in self.values)


# --------------------------------------------------------------------------- events (RFC 6665)

_TOKEN_NODOT = r"[A-Za-z0-9\-!%*_+`'~]+"
_EVENT_RE = re.compile(r"[ \t]*(" + _TOKEN_NODOT + r"(?:\." + _TOKEN_NODOT + r")*)")
_LEADING_TOKEN_RE = re.compile(r"[ \t]*(" + _TOKEN + r")")


@attrs.frozen
class EventType:
    """Event (RFC 6665 §8.2.1): ``event-package *("." event-template) *(SEMI event-param)``.

    ``package`` is the whole event type as written (``reg``, ``presence``, ``dialog.foo``).
    """

    package: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> EventType:
        m = _EVENT_RE.match(text)
        if m is None:
            raise ParseError("Bad Event")
        return cls(m.group(1), parse_params(text, m.end(), "Event"))

    @override
    def __str__(self) -> str:
        return self.package + format_params(self.params)

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)

    @property
    def id(self) -> Optional[str]:
        """The ``id`` parameter that tells subscriptions in one dialog apart, or None."""
        return param_value(self.params, "id")

    @property
    def templates(self) -> tuple[str, ...]:
        """The event templates after the package name (``winfo`` of ``presence.winfo``)."""
        return tuple(self.package.split(".")[1:])


@attrs.frozen
class SubscriptionState:
    """Subscription-State (RFC 6665 §8.2.3): ``active`` / ``pending`` / ``terminated`` /
    token, with ``expires``, ``reason`` and ``retry-after`` parameters (checked on parse)."""

    state: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> SubscriptionState:
        m = _LEADING_TOKEN_RE.match(text)
        if m is None:
            raise ParseError("Bad Subscription-State")
        params = parse_params(text, m.end(), "Subscription-State")
        _optional_uint(params, "expires", "Subscription-State")
        _optional_uint(params, "retry-after", "Subscription-State")
        for name, value in params:
            if name.lower() == "reason" and (value is None or not is_token(value)):
                raise ParseError("Bad Subscription-State")
        return cls(m.group(1), params)

    @override
    def __str__(self) -> str:
        return self.state + format_params(self.params)

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)

    @property
    def expires(self) -> Optional[int]:
        return _optional_uint(self.params, "expires", "Subscription-State")

    @property
    def reason(self) -> Optional[str]:
        """``deactivated``, ``probation``, ``rejected``, ``timeout``, ``giveup``, ... or None."""
        return param_value(self.params, "reason")

    @property
    def retry_after(self) -> Optional[int]:
        return _optional_uint(self.params, "retry-after", "Subscription-State")


# --------------------------------------------------------------------------- timers (RFC 4028)


@attrs.frozen
class SessionExpires:
    """Session-Expires (RFC 4028 §4): ``delta-seconds *(SEMI se-params)``; ``refresher`` is
    ``uac`` or ``uas`` (checked on parse)."""

    delta: int
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> SessionExpires:
        m = _DIGITS_RE.match(text)
        if m is None:
            raise ParseError("Bad Session-Expires")
        delta = _uint(m.group(1), "Session-Expires")
        params = parse_params(text, m.end(), "Session-Expires")
        for name, value in params:
            if name.lower() == "refresher" and (
                value is None or value.lower() not in ("uac", "uas")
            ):
                raise ParseError("Bad Session-Expires")
        return cls(delta, params)

    @override
    def __str__(self) -> str:
        return str(self.delta) + format_params(self.params)

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)

    @property
    def refresher(self) -> Optional[str]:
        """``"uac"`` or ``"uas"`` (lower-cased), or None if the parameter is absent."""
        value = param_value(self.params, "refresher")
        return None if value is None else value.lower()


@attrs.frozen
class MinSE:
    """Min-SE (RFC 4028 §5): ``delta-seconds *(SEMI generic-param)``.

    A class rather than an ``int`` so that extension parameters survive a round trip.
    """

    delta: int
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> MinSE:
        m = _DIGITS_RE.match(text)
        if m is None:
            raise ParseError("Bad Min-SE")
        return cls(_uint(m.group(1), "Min-SE"), parse_params(text, m.end(), "Min-SE"))

    @override
    def __str__(self) -> str:
        return str(self.delta) + format_params(self.params)

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)


# --------------------------------------------------------------------------- Reason (RFC 3326)


@attrs.frozen
class ReasonValue:
    """One Reason value (RFC 3326 §2): ``SIP ;cause=200 ;text="Call completed elsewhere"``.

    ``cause`` is checked to be digits on parse; ``text`` is unquoted (a token is tolerated).
    """

    protocol: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> ReasonValue:
        m = _LEADING_TOKEN_RE.match(text)
        if m is None:
            raise ParseError("Bad Reason")
        params = parse_params(text, m.end(), "Reason")
        _optional_uint(params, "cause", "Reason")
        return cls(m.group(1), params)

    @override
    def __str__(self) -> str:
        return self.protocol + format_params(self.params)

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)

    @property
    def cause(self) -> Optional[int]:
        """The SIP status code or Q.850 cause, or None."""
        return _optional_uint(self.params, "cause", "Reason")

    @property
    def text(self) -> Optional[str]:
        return param_value(self.params, "text")


# --------------------------------------------------------------------------- Warning, Retry-After

# warning-value = warn-code SP warn-agent SP warn-text; warn-agent = hostport / pseudonym
_WARNING_RE = re.compile(
    r"[ \t]*([0-9]{3})[ \t]+((?:\[[0-9A-Fa-f:.]+\]|"
    + _TOKEN
    + r")(?::[0-9]{1,5})?)[ \t]+("
    + _QUOTED
    + r")[ \t]*"
)


@attrs.frozen
class WarningValue:
    """One Warning value (RFC 3261 §20.43): ``307 isi.edu "Session parameter 'foo' not
    understood"``. ``agent`` is the hostport or pseudonym as written; ``text`` is unquoted."""

    code: int
    agent: str
    text: str

    @classmethod
    def parse(cls, text: str) -> WarningValue:
        m = _WARNING_RE.fullmatch(text)
        if m is None:
            raise ParseError("Bad Warning")
        code, agent, quoted = m.groups()
        host, port = agent, ""
        if agent[-1] != "]" and ":" in agent:
            host, _, port = agent.rpartition(":")
        if port and int(port) > 65535:
            raise ParseError("Bad Warning")
        if host[0] == "[":
            try:
                ipaddress.IPv6Address(host[1:-1])
            except ValueError:
                raise ParseError("Bad Warning") from None
        return cls(int(code), agent, unquote(quoted))

    @override
    def __str__(self) -> str:
        return f"{self.code:03d} {self.agent} " + _quote(self.text)


# comment = LPAREN *(ctext / quoted-pair / comment) RPAREN (RFC 3261 §25.1)
_CTEXT_BAD_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _comment_end(text: str, pos: int, what: str) -> int:
    """``text[pos]`` is "(": the position just after the matching ")" (comments nest)."""
    depth = 0
    n = len(text)
    i = pos
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n or ord(text[i + 1]) > 0x7F or text[i + 1] in "\r\n":
                raise ParseError("Bad " + what)
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        elif _CTEXT_BAD_RE.match(c):
            raise ParseError("Bad " + what)
        i += 1
    raise ParseError("Bad " + what)


@attrs.frozen
class RetryAfter:
    """Retry-After (RFC 3261 §20.33): ``delta-seconds [comment] *(SEMI retry-param)``.

    ``comment`` is the text between the outer parentheses as written (nested comments and
    quoted-pairs included), or None; ``duration`` is checked on parse.
    """

    delta: int
    comment: Optional[str] = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> RetryAfter:
        m = _DIGITS_RE.match(text)
        if m is None:
            raise ParseError("Bad Retry-After")
        delta = _uint(m.group(1), "Retry-After")
        pos = m.end()
        n = len(text)
        while pos < n and text[pos] in _WS:
            pos += 1
        comment = None
        if pos < n and text[pos] == "(":
            end = _comment_end(text, pos, "Retry-After")
            comment = text[pos + 1 : end - 1]
            pos = end
        params = parse_params(text, pos, "Retry-After")
        _optional_uint(params, "duration", "Retry-After")
        return cls(delta, comment, params)

    @override
    def __str__(self) -> str:
        comment = "" if self.comment is None else " (" + self.comment + ")"
        return str(self.delta) + comment + format_params(self.params)

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)

    @property
    def duration(self) -> Optional[int]:
        """How long the callee will be available, in seconds, or None."""
        return _optional_uint(self.params, "duration", "Retry-After")


# --------------------------------------------------------------------------- RFC 3841

_STAR_RE = re.compile(r"[ \t]*\*")


@attrs.frozen
class ContactPreference:
    """One Accept-Contact / Reject-Contact value (RFC 3841 §10): ``*`` and its parameters.

    ``*;+sip.audio;explicit;require``: feature parameters (RFC 3840 §9) stay in ``params``
    along with the ``require`` and ``explicit`` flags; ``features`` leaves the flags out.
    """

    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> ContactPreference:
        return cls._parse(text, "Accept-Contact")

    @classmethod
    def _parse(cls, text: str, what: str) -> ContactPreference:
        m = _STAR_RE.match(text)
        if m is None:
            raise ParseError("Bad " + what)
        return cls(parse_params(text, m.end(), what))

    @override
    def __str__(self) -> str:
        return "*" + format_params(self.params)

    def param(self, name: str) -> Optional[str]:
        return param_value(self.params, name)

    @property
    def require(self) -> bool:
        return _has_flag(self.params, "require")

    @property
    def explicit(self) -> bool:
        return _has_flag(self.params, "explicit")

    @property
    def features(self) -> Params:
        """The parameters other than ``require`` and ``explicit``."""
        return tuple(p for p in self.params if p[0].lower() not in ("require", "explicit"))


def parse_reject_contact(text: str) -> ContactPreference:
    """A Reject-Contact value (errors say ``Bad Reject-Contact``)."""
    return ContactPreference._parse(text, "Reject-Contact")


def parse_request_disposition(text: str) -> str:
    """One Request-Disposition directive (RFC 3841 §10): a token such as ``proxy``,
    ``redirect``, ``cancel``, ``fork``, ``recurse``, ``parallel``, ``queue``."""
    text = text.strip(_WS)
    if not is_token(text):
        raise ParseError("Bad Request-Disposition")
    return text
