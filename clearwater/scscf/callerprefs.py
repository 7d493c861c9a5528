"""Which registered bindings a terminating request is forked to, best first (spec §3.10).

The S-CSCF routes a request for a registered subscriber to the bindings of the AoR, chosen
and ordered as follows:

1. GRUU targeting (RFC 5627 §5.3): a Request-URI with ``gr=<instance id>`` (a public GRUU)
   reaches only the bindings whose ``+sip.instance`` is that instance; none gives no target.
   A temporary GRUU (``gr`` without a value) names no instance: the caller resolves it to its
   binding through the temp-gruu index (:mod:`.scscf_proxy`) and passes that binding alone
   with ``gruu_resolved``; without it, a ``gr`` without a value finds no target.
2. Caller preferences (RFC 3841 §7.2):

   * Feature parameters (RFC 3840 §9, RFC 3841 §8) are the parameters named after a base tag
     (``audio``, ``methods``, ``actor``, ...) or starting with ``+``; ``+sip.instance``
     (RFC 5626) is a Contact parameter, not a feature tag. A parameter with no value is the
     boolean ``TRUE``; a quoted value is a comma list of tokens, booleans or numeric ranges
     (``#>=n``, ``#<=n``, ``#=n``, ``#a:b``), each of which may be negated with ``!``, or one
     ``<string>``. Each parameter is a disjunction of its values, a header value or Contact
     the conjunction of its parameters (a predicate, RFC 2533).
   * Explicit preferences (§7.2.1) are the ``Accept-Contact`` and ``Reject-Contact`` values,
     with their ``require`` and ``explicit`` flags; a value that fails to parse is ignored,
     and ``*`` without feature parameters prefers nothing. When neither header has a
     well-formed value, the implicit preference (§7.2.2) applies: an Accept-Contact with
     ``require`` (not ``explicit``) for ``methods=<the request method>`` and, when the
     request has an Event header, ``events=<the event package>``.
   * A binding without feature parameters is immune (§7.2.3): kept, and scored 1.
   * Matching (§7.2.4): two predicates match when some feature collection satisfies both
     (RFC 2533; a tag one side leaves out is unconstrained). A Reject-Contact removes a
     binding it matches, but only if the binding has every feature tag it names. An
     Accept-Contact that does not match removes the binding if it has ``require`` and is
     left out of the score otherwise; one that matches scores the share of its feature tags
     the binding has, except that ``explicit`` with any tag missing scores 0 (and removes the
     binding if it also has ``require``). The binding's caller preference score Qa is the
     mean over the matching Accept-Contact predicates (0 when none matched; 1 when the
     request has no Accept-Contact predicate at all).

3. Order: by q (the binding's ``priority``, q x 1000) highest first, then by Qa highest
   first (RFC 3841 §7.2.4); ties keep the order the bindings were given in.
4. At most ``max_forks`` targets (Clearwater's ``MAX_FORKING``, 10). ``Request-Disposition``
   (RFC 3841 §9.1; ``no-fork`` included) is ignored, as in Clearwater.

Feature values longer than :data:`MAX_FEATURE_VALUES` items are treated as malformed, which
bounds the matching work a request can cause.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Optional
from urllib.parse import unquote as percent_decode

from twisted.logger import Logger

from clearwater.errors import ParseError
from clearwater.scscf.config import MAX_FORKS
from clearwater.sip import ContactPreference, Headers, Request, SipUri
from clearwater.sip import headers as h
from clearwater.sip.headers import header_key
from clearwater.stores.records import Binding

__all__ = ["MAX_FEATURE_VALUES", "target_bindings"]

_log = Logger()

#: The most comma-separated values one feature parameter may have.
MAX_FEATURE_VALUES = 64

# RFC 3840 §9 base-tags: each stands for the feature tag "sip.<name>".
_BASE_TAGS = frozenset(
    (
        "audio", "automata", "class", "duplex", "data", "control", "mobility", "description",
        "events", "priority", "methods", "schemes", "application", "video", "language", "type",
        "isfocus", "actor", "text", "extensions",
    )
)  # fmt: skip
# "+" parameters that are not feature tags: the RFC 5626 instance id.
_NOT_FEATURE_TAGS = frozenset(("sip.instance",))
# RFC 3840 §9: other-tags = "+" ftag-name; ftag-name = ALPHA *( ALPHA / DIGIT / "!" / "'" /
# "." / "-" / "%" ), "!" standing for ":" in URN-based tags.
_FTAG_NAME_RE = re.compile(r"[a-z][a-z0-9!'.%-]*")
# token-nobang = 1*(alphanum / "-" / "." / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_NOBANG_RE = re.compile(r"[A-Za-z0-9\-.%*_+`'~]+")
_NUMBER = r"[+-]?[0-9]+(?:\.[0-9]*)?"
_NUMERIC_RE = re.compile(r"#(?:(>=|<=|=)(" + _NUMBER + ")|(" + _NUMBER + "):(" + _NUMBER + "))")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
_WS = " \t"

_TOKEN = 0
_STRING = 1
_NUMERIC = 2
_FRESH = 3  # a value no term names: satisfies every negated term and no other


class _Term(NamedTuple):
    """One (possibly negated) value of a feature: ``(tag=value)`` or ``(! (tag=value))``."""

    kind: int  # _TOKEN (also booleans), _STRING or _NUMERIC
    negated: bool
    text: str = ""  # tokens lower-cased (case-insensitive); strings as written
    low: float = 0.0  # numeric ranges, inclusive
    high: float = 0.0

    def holds(self, value: _Value) -> bool:
        if self.kind == _NUMERIC:
            hit = value.kind == _NUMERIC and self.low <= value.number <= self.high
        else:
            hit = value.kind == self.kind and value.text == self.text
        return hit != self.negated


class _Value(NamedTuple):
    """A candidate value of one feature tag in a feature collection."""

    kind: int
    text: str = ""
    number: float = 0.0


_Disjunction = tuple[_Term, ...]
# A predicate: feature tag -> the disjunctions (usually one) it must satisfy, all of them.
_Predicate = dict[str, list[_Disjunction]]

_TRUE: _Disjunction = (_Term(_TOKEN, False, "true"),)


class _Preference(NamedTuple):
    """One Accept-Contact / Reject-Contact value (or the implicit preference)."""

    predicate: _Predicate
    require: bool
    explicit: bool


def target_bindings(
    request: Request,
    bindings: Sequence[tuple[str, Binding]],
    *,
    max_forks: int = MAX_FORKS,
    gruu_resolved: bool = False,
) -> list[tuple[str, Binding]]:
    """The ``(binding id, binding)`` pairs ``request`` is forked to, best first, at most
    ``max_forks`` of them (see the module docstring for the rules). ``gruu_resolved``: the
    caller already narrowed ``bindings`` to those the Request-URI's GRUU names (a temp-gruu's
    binding), so the Request-URI's ``gr`` is not looked at."""
    candidates = list(bindings)
    instance = None if gruu_resolved else _gruu_instance(request)
    if instance is not None:
        candidates = [
            (k, b) for k, b in candidates if instance and _binding_instance(b) == instance
        ]
    accepts = _preferences(request, h.ACCEPT_CONTACT.key, "Accept-Contact")
    rejects = _preferences(request, h.REJECT_CONTACT.key, "Reject-Contact")
    if accepts is None and rejects is None:
        accepts = [_implicit_preference(request)]
    scored: list[tuple[int, float, tuple[str, Binding]]] = []
    for binding_id, binding in candidates:
        score = _score(_contact_predicate(binding_id, binding), accepts or (), rejects or ())
        if score is not None:
            scored.append((binding.priority, score, (binding_id, binding)))
    scored.sort(key=lambda item: (-item[0], -item[1]))  # stable: ties keep the given order
    return [item[2] for item in scored[: max(max_forks, 0)]]


# --------------------------------------------------------------------------- GRUU


def _gruu_instance(request: Request) -> Optional[str]:
    """The instance id a public GRUU Request-URI names (lower-cased), or None."""
    uri = request.uri
    if not isinstance(uri, SipUri):
        return None
    gr = uri.param("gr")
    if gr is None:
        return None
    return percent_decode(gr).lower()


def _binding_instance(binding: Binding) -> Optional[str]:
    for name, value in binding.params:
        if name.lower() == "+sip.instance":
            text = _unquote(value)
            if text.startswith("<") and text.endswith(">"):
                text = text[1:-1]
            return text.lower()
    return None


# --------------------------------------------------------------------------- predicates


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return _QUOTED_PAIR_RE.sub(r"\1", value[1:-1])
    return value


def _feature_tag(name: str) -> Optional[str]:
    """The feature tag a parameter name encodes (RFC 3840 §9), or None if it encodes none."""
    lname = name.lower()
    if lname in _BASE_TAGS:
        return "sip." + lname
    if not lname.startswith("+") or _FTAG_NAME_RE.fullmatch(lname, 1) is None:
        return None
    tag = lname[1:].replace("!", ":")
    return None if tag in _NOT_FEATURE_TAGS else tag


def _parse_number(text: str) -> float:
    if text.endswith("."):
        text = text[:-1]
    return float(text)


def _parse_term(item: str) -> Optional[_Term]:
    negated = item.startswith("!")
    if negated:
        item = item[1:]
    if item.startswith("#"):
        m = _NUMERIC_RE.fullmatch(item)
        if m is None:
            return None
        relation = m.group(1)
        if relation is None:
            low, high = _parse_number(m.group(3)), _parse_number(m.group(4))
            if low > high:
                return None
        else:
            number = _parse_number(m.group(2))
            low = number if relation != "<=" else -math.inf
            high = number if relation != ">=" else math.inf
        return _Term(_NUMERIC, negated, "", low, high)
    if _TOKEN_NOBANG_RE.fullmatch(item) is None:
        return None
    return _Term(_TOKEN, negated, item.lower())


def _parse_value(value: Optional[str]) -> Optional[_Disjunction]:
    """A feature parameter value (as written) as a disjunction of terms; None if malformed."""
    if not value:
        return _TRUE
    text = _unquote(value)
    if text.startswith("<"):
        if len(text) < 2 or not text.endswith(">") or ">" in text[1:-1]:
            return None
        return (_Term(_STRING, False, text[1:-1]),)
    items = text.split(",")
    if len(items) > MAX_FEATURE_VALUES:
        return None
    terms: list[_Term] = []
    for item in items:
        term = _parse_term(item.strip(_WS))
        if term is None:
            return None
        terms.append(term)
    return tuple(terms)


def _contact_predicate(binding_id: str, binding: Binding) -> _Predicate:
    """The capability predicate of a binding's Contact parameters (RFC 3841 §7.2.3);
    malformed feature parameters are left out."""
    predicate: _Predicate = {}
    for name, value in binding.params:
        tag = _feature_tag(name)
        if tag is None:
            continue
        disjunction = _parse_value(value)
        if disjunction is None:
            _log.debug(
                "binding {binding_id}: ignoring malformed feature parameter {name}={value}",
                binding_id=binding_id,
                name=name,
                value=value,
            )
            continue
        predicate.setdefault(tag, []).append(disjunction)
    return predicate


def _preference_predicate(params: Iterable[tuple[str, Optional[str]]]) -> Optional[_Predicate]:
    predicate: _Predicate = {}
    for name, value in params:
        tag = _feature_tag(name)
        if tag is None:
            continue
        disjunction = _parse_value(value)
        if disjunction is None:
            return None
        predicate.setdefault(tag, []).append(disjunction)
    return predicate


def _preferences(request: Request, key: str, what: str) -> Optional[list[_Preference]]:
    """The values of header ``key`` that have feature parameters; None if the request has no
    well-formed value of that header (malformed values are ignored)."""
    out: Optional[list[_Preference]] = None
    for name, line in request.headers:
        if header_key(name) != key:
            continue
        try:
            items = Headers([(name, line)]).get_all(name)
        except ParseError:
            _log.debug("ignoring malformed {header}: {value}", header=what, value=line)
            continue
        for item in items:
            preference = _parse_preference(item)
            if preference is None:
                _log.debug("ignoring malformed {header} value {value}", header=what, value=item)
                continue
            if out is None:
                out = []
            if preference.predicate:  # "*" with no feature parameters prefers nothing
                out.append(preference)
    return out


def _parse_preference(text: str) -> Optional[_Preference]:
    try:
        value = ContactPreference.parse(text)
    except ParseError:
        return None
    predicate = _preference_predicate(value.features)
    if predicate is None:
        return None
    return _Preference(predicate, value.require, value.explicit)


def _implicit_preference(request: Request) -> _Preference:
    """RFC 3841 §7.2.2: the request's method and event package, required but not explicit."""
    predicate: _Predicate = {"sip.methods": [(_Term(_TOKEN, False, request.method.lower()),)]}
    try:
        event = request.headers.first(h.EVENT)
    except ParseError:
        event = None
    if event is not None:
        predicate["sip.events"] = [(_Term(_TOKEN, False, event.package.lower()),)]
    return _Preference(predicate, require=True, explicit=False)


# --------------------------------------------------------------------------- matching


def _candidates(disjunctions: Sequence[_Disjunction]) -> Iterable[_Value]:
    """Values among which one satisfies ``disjunctions`` if any value does: every positive
    token or string named, a value named nowhere, and for numbers each range bound, a point
    between each two neighbouring bounds and one beyond each end."""
    yield _Value(_FRESH)
    bounds: set[float] = set()
    numeric = False
    for disjunction in disjunctions:
        for term in disjunction:
            if term.kind == _NUMERIC:
                numeric = True
                bounds.update(b for b in (term.low, term.high) if math.isfinite(b))
            elif not term.negated:
                yield _Value(term.kind, term.text)
    if not numeric:
        return
    points = sorted(bounds)
    if not points:
        yield _Value(_NUMERIC, number=0.0)
        return
    yield _Value(_NUMERIC, number=points[0] - 1)
    for i, point in enumerate(points):
        yield _Value(_NUMERIC, number=point)
        if i + 1 < len(points):
            yield _Value(_NUMERIC, number=(point + points[i + 1]) / 2)
    yield _Value(_NUMERIC, number=points[-1] + 1)


def _satisfiable(disjunctions: Sequence[_Disjunction]) -> bool:
    """True if some value of one feature tag satisfies every disjunction."""
    return any(
        all(any(term.holds(value) for term in d) for d in disjunctions)
        for value in _candidates(disjunctions)
    )


def _matches(preference: _Predicate, contact: _Predicate) -> bool:
    """RFC 2533 matching: some feature collection satisfies both predicates. Tags are
    independent, so this holds tag by tag; a tag the contact leaves out is unconstrained."""
    return all(
        _satisfiable(disjunctions + contact.get(tag, []))
        for tag, disjunctions in preference.items()
    )


def _score(
    contact: _Predicate, accepts: Sequence[_Preference], rejects: Sequence[_Preference]
) -> Optional[float]:
    """The binding's caller preference score Qa (RFC 3841 §7.2.4), None if it is removed."""
    if not contact:
        return 1.0  # immune
    for reject in rejects:
        if all(tag in contact for tag in reject.predicate) and _matches(reject.predicate, contact):
            return None
    if not accepts:
        return 1.0
    total = 0.0
    matched = 0
    for accept in accepts:
        if not _matches(accept.predicate, contact):
            if accept.require:
                return None
            continue
        present = sum(1 for tag in accept.predicate if tag in contact)
        if present < len(accept.predicate) and accept.explicit:
            if accept.require:
                return None
            score = 0.0
        else:
            score = present / len(accept.predicate)
        total += score
        matched += 1
    return total / matched if matched else 0.0
