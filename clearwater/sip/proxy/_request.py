"""The request-side steps of an RFC 3261 §16 proxy, as pure functions on a :class:`Request`.

No I/O, no clock: the stateful proxy shell calls these in RFC order and does the sending.

- §16.3 request validation: :func:`validate_request` (step 2 URI scheme, step 3 Max-Forwards,
  step 5 Proxy-Require; step 1 is the parser's job) and :func:`ack_is_forwardable` for the ACK,
  which cannot be answered;
- §16.3 step 4 with §16.6 step 8 loop detection: :func:`branch_for` builds the branch of the Via
  this proxy adds, carrying a hash of the fields that steer the request, and :func:`detect_loop`
  recomputes it when a request comes back, to tell a loop (482) from a spiral;
- §16.4 route information preprocessing: :func:`preprocess_routes` (strict-router fix-up,
  ``maddr``, removing our own Route value), with :class:`Locality` saying which URIs are ours;
- §16.6 steps 6 and 7, the next hop: :func:`next_hop`, with the step 6 rewrite when the next
  hop is a strict router;
- §16.6 step 4 and RFC 5658 double Record-Routing: :func:`record_route`;
- §16.6 step 3 Max-Forwards and step 8 Via: :func:`decrement_max_forwards`, :func:`add_via`
  (with RFC 3581 ``rport``).

The RFC 3261 §16.12.1 examples (basic loose routing, a strict router on the path) are
reproduced in the tests.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import secrets
from collections.abc import Collection, Iterable
from typing import Optional, Protocol

from typing_extensions import override

from clearwater.errors import ParseError
from clearwater.sip import NameAddr, Request, Response, SipUri, TelUri, Uri, Via
from clearwater.sip import headers as h
from clearwater.sip._random import random_hex
from clearwater.sip._status import reason_phrase
from clearwater.sip.transaction import BRANCH_COOKIE, build_response

__all__ = [
    "DEFAULT_MAX_FORWARDS",
    "LocalHosts",
    "Locality",
    "ack_is_forwardable",
    "add_via",
    "answer",
    "branch_for",
    "branch_loop_hash",
    "decrement_max_forwards",
    "detect_loop",
    "host_key",
    "next_hop",
    "preprocess_routes",
    "record_route",
    "validate_request",
]

#: §16.6 step 3: the Max-Forwards a proxy adds when the request has none.
DEFAULT_MAX_FORWARDS = 70


# --------------------------------------------------------------------------- locality


class Locality(Protocol):
    """Which URIs designate this proxy (RFC 3261 §16.4: "indicates this proxy")."""

    def is_local(self, uri: SipUri) -> bool:
        """True if ``uri``'s host and port (explicit or default) are this proxy's own."""


@functools.lru_cache(maxsize=4096)
def host_key(host: str) -> str:
    """A host in comparable form: IP addresses normalised (IPv6 without brackets), names
    lower-cased without a trailing dot."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text.lower().rstrip(".")


class LocalHosts:
    """A :class:`Locality` from a fixed list of host names / IP literals and ports.

    ``LocalHosts(hosts=("sprout.example.com", "10.0.0.1"), ports=(5060, 5054))``. Hosts
    compare case-insensitively, IP addresses by value (``[2001:DB8::1]`` is ``2001:db8:0::1``).
    A URI without a port has its default port (RFC 3261 §19.1.2): 5061 for ``sips`` or
    ``transport=tls``, else 5060.
    """

    __slots__ = ("_hosts", "_ports")

    def __init__(self, hosts: Iterable[str], ports: Iterable[int]) -> None:
        self._hosts = frozenset(host_key(host) for host in hosts)
        self._ports = frozenset(ports)

    def is_local(self, uri: SipUri) -> bool:
        """True if the URI's host is one of ours and its port, explicit or default, too."""
        if host_key(uri.host) not in self._hosts:
            return False
        port = uri.port
        if port is None:
            port = 5061 if uri.scheme == "sips" or uri.transport == "tls" else 5060
        return port in self._ports

    @override
    def __repr__(self) -> str:
        return (
            "LocalHosts(hosts="
            + repr(sorted(self._hosts))
            + ", ports="
            + repr(sorted(self._ports))
            + ")"
        )


# --------------------------------------------------------------------------- §16.3 validation


def _rejection(request: Request, supported: Collection[str]) -> Optional[Response]:
    """The response §16.3 steps 2, 3 and 5 call for, whatever the method, or None."""
    if not isinstance(request.uri, (SipUri, TelUri)):  # sip, sips and tel are routable
        return answer(request, 416)
    if request.max_forwards == 0:
        return answer(request, 483)
    try:
        required = request.headers.parsed(h.PROXY_REQUIRE)
    except ParseError:
        return answer(request, 400, "Bad Proxy-Require")
    known = {option.lower() for option in supported}
    unsupported: dict[str, str] = {}
    for option in required:
        if option.lower() not in known:
            unsupported.setdefault(option.lower(), option)
    if unsupported:
        response = answer(request, 420)
        response.headers.add("Unsupported", ", ".join(unsupported.values()))
        return response
    return None


def answer(request: Request, status: int, reason: Optional[str] = None) -> Response:
    """The proxy's own response to ``request`` (§8.2.6): the default reason phrase unless one
    is given, and, above 100, a random To tag when the request has none (§8.2.6.2)."""
    response = build_response(request, status, reason or reason_phrase(status))
    if status > 100 and request.to.tag is None:
        response.headers.set("To", request.to.with_param("tag", secrets.token_hex(4)))
    return response


def validate_request(request: Request, *, supported: Collection[str] = ()) -> Optional[Response]:
    """RFC 3261 §16.3: the response to send instead of forwarding ``request``, or None.

    - Step 1 (reasonable syntax) was done by :func:`~clearwater.sip.parse_message`; a
      Proxy-Require that is not a token list, which the parser leaves unchecked, gets 400.
    - Step 2: a Request-URI scheme other than sip, sips or tel gets 416 Unsupported URI Scheme.
    - Step 3: Max-Forwards present and 0 gets 483 Too Many Hops. §16.3 lets a proxy answer an
      OPTIONS with Max-Forwards 0 itself (as a UAS, §11); this function returns 483 for every
      method, and a proxy that wants to answer such an OPTIONS checks for it first.
    - Step 4 (loop detection) is :func:`detect_loop`, which needs the proxy's sent-by values.
    - Step 5: any Proxy-Require option not in ``supported`` (option tags are tokens, compared
      case-insensitively, §7.3.1) gets 420 Bad Extension with an Unsupported header listing
      them, each once (§20.29, §20.40; as a UAS does for Require, §8.2.2.3).
    - Step 6 (Proxy-Authorization) is the caller's policy.

    The response carries the fields §8.2.6 copies and a random To tag. An ACK is never
    answered, so for an ACK this returns None whatever it holds: the
    caller checks :func:`ack_is_forwardable` and drops an ACK that fails it.
    """
    if request.method == "ACK":
        return None
    return _rejection(request, supported)


def ack_is_forwardable(request: Request, *, supported: Collection[str] = ()) -> bool:
    """False for an ACK that fails a §16.3 check :func:`validate_request` would answer: it
    cannot be answered, so the proxy discards it. Raises ValueError for other methods."""
    if request.method != "ACK":
        raise ValueError("not an ACK: " + request.method)
    return _rejection(request, supported) is None


# --------------------------------------------------------------------------- loop detection

# Branch layout (RFC 3261 §16.6 step 8, "separable into two parts"):
#
#     z9hG4bK <16 hex: 64 random bits> . <32 hex: loop hash>
#
# The magic cookie and random part make the branch unique per client transaction (§8.1.1.7);
# the loop hash after the "." is the part §16.3 step 4 recomputes. Without loop detection the
# branch is just the cookie and the random part.
_BRANCH_RE = re.compile(r"z9hG4bK[0-9a-f]{16}\.([0-9a-f]{32})", re.IGNORECASE)


def _hash_fields(request: Request) -> str:
    """Everything in the loop hash but the Via: the fields steering the request (§16.6 step 8).

    Values are taken as received (header lists split on their commas, so re-folding a list
    over several lines does not change the hash). Neither CR nor LF can occur in a header
    value or URI, so "\\n" between fields and "\\r" between list elements are unambiguous.
    The method is left out (§16.6 step 8: a CANCEL or non-2xx ACK shares the INVITE's branch),
    and so is Max-Forwards, which every hop changes.
    """
    headers = request.headers
    return "\n".join(
        (
            str(request.uri),
            request.to.tag or "",
            request.from_.tag or "",
            request.call_id,
            str(request.cseq.seq),
            "\r".join(headers.get_all("Route")),
            "\r".join(headers.get_all("Proxy-Require")),
            "\r".join(headers.get_all("Proxy-Authorization")),
        )
    )


def _loop_hash(fields: str, via: Optional[Via]) -> str:
    text = fields + "\n" + ("" if via is None else str(via))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def branch_for(request: Request, *, loop_detect: bool = True) -> str:
    """A branch for the Via this proxy adds when forwarding ``request`` (§16.6 step 8).

    ``z9hG4bK`` + 16 random hex digits, then, with ``loop_detect``, ``.`` + a 32-hex-digit
    loop hash (truncated SHA-256) of the Request-URI, To tag, From tag, Call-ID, CSeq
    number, top Via, Route, Proxy-Require and Proxy-Authorization values. Each call gives a
    new branch (one per client transaction, so one per fork); the loop hash part is the same
    for every fork of one request.

    ``request`` must be the request as received, before §16.4 route preprocessing or any
    retargeting: §16.6 step 8 hashes "the Request-URI of the request received (before
    translation)", and :func:`detect_loop` can only recompute the hash from a request as it
    arrives. Keep the received request (or a :meth:`~clearwater.sip.Request.copy`) for this.
    """
    random_part = random_hex(8)
    if not loop_detect:
        return BRANCH_COOKIE + random_part
    vias = request.vias
    top = vias[0] if vias else None
    return BRANCH_COOKIE + random_part + "." + _loop_hash(_hash_fields(request), top)


def branch_loop_hash(branch: str) -> Optional[str]:
    """The loop hash part of a branch :func:`branch_for` made (lower-case), or None if the
    branch does not have that layout."""
    m = _BRANCH_RE.fullmatch(branch)
    return None if m is None else m.group(1).lower()


def _sent_by_key(host: str, port: Optional[int]) -> tuple[str, Optional[int]]:
    return (host_key(host), port)


def _parse_sent_by(text: str) -> tuple[str, Optional[int]]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("bad sent-by: " + repr(text))
        host, rest = text[: end + 1], text[end + 1 :]
        if not rest:
            return _sent_by_key(host, None)
        if not rest.startswith(":"):
            raise ValueError("bad sent-by: " + repr(text))
        return _sent_by_key(host, int(rest[1:]))
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return _sent_by_key(host, int(port))
    return _sent_by_key(text, None)


def detect_loop(request: Request, our_sent_by: Iterable[str]) -> bool:
    """RFC 3261 §16.3 step 4: True if ``request`` has looped back to this proxy (answer 482).

    ``our_sent_by`` are the sent-by values (``host`` or ``host:port``, as :func:`add_via`
    wrote them) this proxy puts in its Vias; hosts compare case-insensitively, ports exactly.
    A Via with one of them means the request passed here before. It is a loop if that Via's
    branch carries the loop hash :func:`branch_for` would compute for the request now; a
    different hash (the Request-URI, Route, Proxy-Require or Proxy-Authorization changed in
    between) is a spiral, and the request is processed again.

    The hash's "top Via of the received request" is, for each of our Vias, the Via just below
    it: the top Via when that earlier copy arrived. (The top Via of the request now is the
    last hop's, which differs on every pass.) Branches of another layout are not ours and are
    skipped.
    """
    ours = {_parse_sent_by(text) for text in our_sent_by}
    if not ours:
        return False
    vias = request.vias
    fields: Optional[str] = None
    for i, via in enumerate(vias):
        if _sent_by_key(via.host, via.port) not in ours:
            continue
        received = branch_loop_hash(via.branch or "")
        if received is None:
            continue
        if fields is None:
            fields = _hash_fields(request)
        below = vias[i + 1] if i + 1 < len(vias) else None
        if _loop_hash(fields, below) == received:
            return True
    return False


# --------------------------------------------------------------------------- §16.4 routes


def _set_routes(request: Request, routes: list[NameAddr]) -> None:
    """Replace the Route header with ``routes``, on one line where the first Route line was."""
    if routes:
        request.headers.set("Route", ", ".join(str(route) for route in routes))
    else:
        request.headers.remove("Route")


def _strip_local_maddr(request: Request, locality: Locality) -> None:
    """§16.4: a Request-URI whose ``maddr`` is ours loses its maddr, port and transport."""
    uri = request.uri
    if not isinstance(uri, SipUri):
        return
    maddr = uri.maddr
    if maddr is None:
        return
    try:
        at_maddr = uri.replace(host=maddr).without_param("maddr")
    except ValueError:  # a maddr that is not a host is nobody's
        return
    if locality.is_local(at_maddr):
        request.uri = uri.without_param("maddr").without_param("transport").replace(port=None)


def preprocess_routes(request: Request, locality: Locality) -> Optional[NameAddr]:
    """RFC 3261 §16.4 route information preprocessing, in place; returns our removed Route.

    In the RFC's order:

    1. Strict-router fix-up: if the Request-URI is a value this proxy placed in a Record-Route
       (a strict router upstream moved it there), replace the Request-URI with the last Route
       value and remove that value. "A value we placed" is recognised as a sip/sips URI that
       :class:`Locality` says is ours *and* carries ``lr``, which every Record-Route value
       :func:`record_route` writes has and an address-of-record at our host has not. Without
       a Route there is nothing to restore and the request is left as it is.
    2. ``maddr``: if the Request-URI has a ``maddr`` that is ours (the Locality is asked about
       the URI with the maddr as host, so the URI's port or default port must be ours too,
       standing in for "received using the port and transport indicated"), remove the maddr,
       the port and the transport parameter.
    3. If the first Route value indicates this proxy, remove it (only that one value; a Route
       line holding several keeps the rest) and return it, so the caller can read the
       parameters it put there (Clearwater's ``route_hdr()``). Otherwise return None. A
       request carrying our two RFC 5658 values (:func:`record_route`) needs a second call.

    Raises :class:`~clearwater.errors.ParseError` for a malformed Route (answer 400).
    """
    uri = request.uri
    if isinstance(uri, SipUri) and uri.lr and locality.is_local(uri):
        routes = request.headers.parsed(h.ROUTE)
        if routes:
            request.uri = routes[-1].uri
            _set_routes(request, routes[:-1])
    _strip_local_maddr(request, locality)
    first = request.headers.first(h.ROUTE)
    if first is not None and isinstance(first.uri, SipUri) and locality.is_local(first.uri):
        return request.headers.pop_first(h.ROUTE)
    return None


def next_hop(request: Request) -> Uri:
    """RFC 3261 §16.6 steps 6 and 7: the URI the request is sent towards (resolve it with
    RFC 3263); the request is changed in place when the next hop is a strict router.

    - No Route: the Request-URI.
    - A first Route with ``lr``: its URI (loose routing; the request is not changed).
    - A first Route without ``lr`` (an RFC 2543 strict router): step 6 rewrites the request:
      the Request-URI goes to the end of the Route header, the first Route URI becomes the
      Request-URI (without any URI headers, which a Request-URI cannot carry) and leaves the
      Route header; the new Request-URI is returned.

    Raises :class:`~clearwater.errors.ParseError` for a malformed Route (answer 400).
    """
    routes = request.headers.parsed(h.ROUTE)
    if not routes:
        return request.uri
    first = routes[0].uri
    if isinstance(first, SipUri) and first.lr:
        return first
    if isinstance(first, SipUri) and first.headers:
        first = first.replace(headers=())
    routes = routes[1:]
    routes.append(NameAddr(request.uri))
    request.uri = first
    _set_routes(request, routes)
    return first


# --------------------------------------------------------------------------- §16.6 additions


def _with_lr(uri: SipUri) -> SipUri:
    return uri if uri.lr else uri.with_param("lr")


def record_route(request: Request, inbound: SipUri, outbound: Optional[SipUri] = None) -> None:
    """RFC 3261 §16.6 step 4: insert this proxy's Record-Route value(s) above any others.

    ``inbound`` is our URI on the side the request came from; ``lr`` is added when missing and
    every other parameter kept. When ``outbound`` is given and differs from ``inbound`` (RFC
    3261 §19.1.4 comparison: another interface, address family or transport), RFC 5658 double
    Record-Routing adds a second value instead of rewriting Record-Route in the response:
    ``<inbound;lr>`` is inserted first, then ``<outbound;lr>`` above it. The order follows
    from how each side builds its route set: the callee (UAS) takes Record-Route top first
    (§12.1.1), so its requests reach our outbound side first; the caller (UAC) takes it in
    reverse (§12.1.2), so its requests reach our inbound side first. Either way the first of
    our two values the request meets is the one on the side it arrives from. Both must be
    known to the proxy's :class:`Locality`; :func:`preprocess_routes` removes one value per
    call, so a proxy that double record-routes calls it again after it removed one.
    """
    headers = request.headers
    values = [NameAddr(_with_lr(inbound))]
    if outbound is not None and outbound != inbound:
        values.append(NameAddr(_with_lr(outbound)))
    for value in values:
        if "Record-Route" in headers:
            headers.prepend("Record-Route", value)
        else:
            headers.add("Record-Route", value)


def decrement_max_forwards(request: Request) -> None:
    """RFC 3261 §16.6 step 3: Max-Forwards minus one, or 70 when the request has none.

    Raises ValueError for Max-Forwards 0: §16.3 step 3 forbids forwarding that request
    (:func:`validate_request`, :func:`ack_is_forwardable`).
    """
    value = request.max_forwards
    if value is None:
        request.headers.set("Max-Forwards", DEFAULT_MAX_FORWARDS)
    elif value == 0:
        raise ValueError("Max-Forwards is 0: the request must not be forwarded")
    else:
        request.headers.set("Max-Forwards", value - 1)


def add_via(
    request: Request, transport: str, sent_by_host: str, port: Optional[int], branch: str
) -> None:
    """RFC 3261 §16.6 step 8: put this proxy's Via above the others.

    ``Via: SIP/2.0/<TRANSPORT> <host>[:<port>];rport;branch=<branch>``, asking for RFC 3581
    §3 symmetric response routing. An IPv6 address is bracketed if it is not already. The
    branch must be an RFC 3261 one (from :func:`branch_for`), else ValueError.
    """
    if not branch.startswith(BRANCH_COOKIE) or len(branch) <= len(BRANCH_COOKIE):
        raise ValueError("not an RFC 3261 branch: " + repr(branch))
    host = sent_by_host
    if ":" in host and not host.startswith("["):
        host = "[" + host + "]"
    via = Via(transport.upper(), host, port, (("rport", None), ("branch", branch)))
    request.headers.prepend("Via", via)
