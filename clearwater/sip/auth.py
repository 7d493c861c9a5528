"""HTTP Digest authentication for SIP: hashes, the UAC side and server-side helpers.

Implements RFC 3261 §22.1-§22.4 (Digest in SIP: 401 / 407 challenges, Authorization and
Proxy-Authorization credentials, one set of credentials per realm), the digest computation of
RFC 2617 §3.2.2 and RFC 7616 §3.4 (``qop=auth``, ``qop=auth-int``, ``-sess`` algorithms and the
RFC 2069 form without ``qop``) and the algorithms of RFC 7616 §3.2 / §6.1 and RFC 8760 §2-§3:
``MD5``, ``MD5-sess``, ``SHA-256``, ``SHA-256-sess``, ``SHA-512-256``, ``SHA-512-256-sess``.

:class:`AkaClient` is the UAC side of HTTP Digest AKA, as a USIM answers it: ``AKAv1-MD5``
(RFC 3310) and ``AKAv2-MD5`` (RFC 4169), with MILENAGE (:mod:`clearwater.aka`), the SQN checks
of TS 33.102 §6.3.3 / Annex C.2 and the ``auts`` re-synchronisation answer (RFC 3310 §3.4).

Pure code, no Twisted. The header values are the typed :class:`~clearwater.sip.Challenge` and
:class:`~clearwater.sip.Credentials` of :mod:`clearwater.sip.headers`::

    client = DigestClient("alice", "secret")     # or AkaClient("alice@ims", k, opc)
    if response.status in (401, 407) and client.authorize_request(request, response):
        ...  # bump the CSeq, new Via branch, send the request again

    # server side (registrar)
    challenge = make_challenge("example.com", nonce)
    ok = verify_digest(credentials, ha1=stored_ha1, method=request.method)

Strings are hashed as UTF-8 (RFC 7616 §4; header text decoded with ``surrogateescape``
re-encodes to the bytes received). Hex digests are lower case.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Callable, Optional

import attrs
from typing_extensions import override

from clearwater.aka import (
    MacFailureError,
    akav2_password,
    make_auts,
    split_challenge,
    ue_check,
)
from clearwater.aka.vectors import IND_BITS
from clearwater.errors import ParseError
from clearwater.sip._grammar import is_token
from clearwater.sip._message import Headers, Request, Response
from clearwater.sip._table import HeaderSpec
from clearwater.sip._values_ext import Challenge, Credentials, _quote
from clearwater.sip.headers import (
    AUTHORIZATION,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    WWW_AUTHENTICATE,
)

__all__ = [
    "AKA_ALGORITHMS",
    "AKA_SQN_DELTA",
    "SUPPORTED_ALGORITHMS",
    "AkaClient",
    "DigestAlgorithm",
    "DigestClient",
    "digest_algorithm",
    "digest_ha1",
    "digest_response",
    "make_challenge",
    "verify_digest",
]


@attrs.frozen
class DigestAlgorithm:
    """One Digest ``algorithm`` (RFC 7616 §3.2, RFC 8760 §2).

    :ivar name: canonical spelling, e.g. ``"SHA-256-sess"``.
    :ivar hash_name: the :mod:`hashlib` name of H (``md5``, ``sha256``, ``sha512_256``).
    :ivar sess: a ``-sess`` variant: HA1 becomes ``H(HA1:nonce:cnonce)``.
    :ivar strength: higher is stronger; used to choose among challenges.
    """

    name: str
    hash_name: str
    sess: bool
    strength: int

    def hash(self, data: bytes) -> str:
        """H(data) as lower-case hex."""
        return hashlib.new(self.hash_name, data).hexdigest()

    def hash_text(self, text: str) -> str:
        """H(text), the text encoded as UTF-8."""
        return self.hash(_utf8(text))


def _hash_available(name: str) -> bool:
    # SHA-512/256 comes from OpenSSL; a build without it simply does not offer it.
    try:
        hashlib.new(name)
    except ValueError:
        return False
    return True


_ALL_ALGORITHMS = (
    DigestAlgorithm("MD5", "md5", sess=False, strength=1),
    DigestAlgorithm("MD5-sess", "md5", sess=True, strength=1),
    DigestAlgorithm("SHA-256", "sha256", sess=False, strength=2),
    DigestAlgorithm("SHA-256-sess", "sha256", sess=True, strength=2),
    DigestAlgorithm("SHA-512-256", "sha512_256", sess=False, strength=3),
    DigestAlgorithm("SHA-512-256-sess", "sha512_256", sess=True, strength=3),
)
_ALGORITHMS: dict[str, DigestAlgorithm] = {
    a.name.lower(): a for a in _ALL_ALGORITHMS if _hash_available(a.hash_name)
}

#: The canonical names of the algorithms this build supports, weakest first.
SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(a.name for a in _ALGORITHMS.values())


def digest_algorithm(name: Optional[str]) -> DigestAlgorithm:
    """The algorithm called ``name`` (case-insensitive; None means ``MD5``, RFC 7616 §3.3).

    Raises :class:`ValueError` for an algorithm that is unknown (``AKAv1-MD5`` included) or not
    available in this build.
    """
    algorithm = _ALGORITHMS.get("md5" if name is None else name.lower())
    if algorithm is None:
        raise ValueError("unsupported digest algorithm " + repr(name))
    return algorithm


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def digest_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """``H(username:realm:password)`` in hex (RFC 7616 §3.4.2, RFC 2617 §3.2.2.2).

    For a ``-sess`` algorithm this is the stored, per-user part; :func:`digest_response` turns
    it into the session key ``H(HA1:nonce:cnonce)``. So one HA1 serves ``X`` and ``X-sess``.
    """
    return digest_algorithm(algorithm).hash_text(username + ":" + realm + ":" + password)


def digest_response(
    *,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str = "MD5",
    qop: Optional[str] = None,
    nc: Optional[str] = None,
    cnonce: Optional[str] = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (``request-digest``) in hex (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1).

    - ``qop`` None: ``H(HA1:nonce:HA2)``, the RFC 2069 form.
    - ``qop="auth"``: ``H(HA1:nonce:nc:cnonce:qop:HA2)`` with ``HA2 = H(method:uri)``.
    - ``qop="auth-int"``: the same with ``HA2 = H(method:uri:H(body))``.
    - ``-sess`` algorithms replace HA1 by ``H(HA1:nonce:cnonce)`` (RFC 7616 §3.4.2).

    ``ha1`` is :func:`digest_ha1` (hex, case-insensitive); ``nc`` is the 8-hex-digit nonce count
    as sent. Raises :class:`ValueError` for an unknown algorithm or qop, or a missing ``nc`` /
    ``cnonce`` where the form needs them.
    """
    alg = digest_algorithm(algorithm)
    ha1 = ha1.lower()
    if alg.sess:
        if cnonce is None:
            raise ValueError(alg.name + " needs a cnonce")
        ha1 = alg.hash_text(ha1 + ":" + nonce + ":" + cnonce)
    kind = None if qop is None else qop.lower()
    if kind is None or kind == "auth":
        ha2 = alg.hash_text(method + ":" + uri)
    elif kind == "auth-int":
        ha2 = alg.hash_text(method + ":" + uri + ":" + alg.hash(body))
    else:
        raise ValueError("unsupported qop " + repr(qop))
    if qop is None:
        return alg.hash_text(ha1 + ":" + nonce + ":" + ha2)
    if nc is None or cnonce is None:
        raise ValueError("qop=" + qop + " needs nc and cnonce")
    return alg.hash_text(":".join((ha1, nonce, nc, cnonce, qop, ha2)))


def _quoted(value: str, what: str) -> str:
    """A quoted-string for ``value``; CR, LF and NUL cannot be carried (RFC 3261 §25.1)."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError(what + " contains CR, LF or NUL")
    return _quote(value)


def _default_cnonce() -> str:
    return secrets.token_hex(8)


# How many (realm, nonce) pairs a client remembers nonce counts for; older ones are forgotten.
_MAX_NONCES = 64


class DigestClient:
    """The UAC side of Digest (RFC 3261 §22.2, §22.3; RFC 7616 §3.4).

    ``DigestClient(username, password)`` answers challenges from any realm;
    ``DigestClient(username, ha1=..., realm=..., ha1_algorithm="MD5")`` holds a precomputed
    :func:`digest_ha1` instead of the password, which only fits that realm and the algorithms
    with that hash (``X`` and ``X-sess``). ``realm`` given with a password also restricts the
    client to that realm.

    The client counts its uses of each nonce (``nc``: ``00000001``, ``00000002``, ... for the
    same nonce, back to 1 for a new one) and keeps one cnonce per nonce for ``-sess``
    algorithms, so their session key stays the same. ``cnonce_factory`` makes the cnonces
    (random by default; tests pass a fixed one).
    """

    def __init__(
        self,
        username: str,
        password: Optional[str] = None,
        *,
        ha1: Optional[str] = None,
        realm: Optional[str] = None,
        ha1_algorithm: str = "MD5",
        cnonce_factory: Callable[[], str] = _default_cnonce,
    ) -> None:
        if (password is None) == (ha1 is None):
            raise ValueError("give exactly one of password and ha1")
        if ha1 is not None and realm is None:
            raise ValueError("a precomputed ha1 needs its realm")
        self.username = username
        self.realm = realm
        self._password = password
        self._ha1 = None if ha1 is None else ha1.lower()
        self._ha1_hash = digest_algorithm(ha1_algorithm).hash_name
        self._cnonce_factory = cnonce_factory
        # (realm, nonce) -> (uses so far, cnonce kept for -sess); insertion order = age.
        self._nonces: dict[tuple[str, str], tuple[int, str]] = {}

    # ---- choosing

    def can_answer(self, challenge: Challenge) -> bool:
        """True if :meth:`authorize` can answer ``challenge``: a Digest challenge with a realm
        and nonce, an algorithm we support (and our HA1 fits), our realm if we have one, and
        a ``qop`` (if any) that offers ``auth`` or ``auth-int``."""
        return self._problem(challenge) is None

    def _problem(self, challenge: Challenge) -> Optional[str]:
        if not challenge.is_digest or challenge.token68 is not None:
            return "not a Digest challenge"
        realm = challenge.realm
        if realm is None or challenge.nonce is None:
            return "challenge without realm or nonce"
        if self.realm is not None and realm != self.realm:
            return "challenge for another realm"
        try:
            alg = digest_algorithm(challenge.algorithm)
        except ValueError as e:
            return str(e)
        if self._ha1 is not None and alg.hash_name != self._ha1_hash:
            return "HA1 does not fit algorithm " + alg.name
        if challenge.qop is not None and self._qop_for(challenge) is None:
            return "no supported qop offered"
        return None

    @staticmethod
    def _qop_for(challenge: Challenge) -> Optional[str]:
        """``auth`` if offered, else ``auth-int`` if offered, else None."""
        options = {option.lower() for option in challenge.qop_options}
        if "auth" in options:
            return "auth"
        if "auth-int" in options:
            return "auth-int"
        return None

    def choose_challenge(self, challenges: Sequence[Challenge]) -> Optional[Challenge]:
        """The challenge to answer: of those :meth:`can_answer` accepts, the one with the
        strongest algorithm (SHA-512-256 > SHA-256 > MD5, ``-sess`` ranked as its hash), the
        first one on a tie; None if there is none (Basic, AKA, unknown algorithms, ...)."""
        best: Optional[Challenge] = None
        best_strength = 0
        for challenge in challenges:
            if not self.can_answer(challenge):
                continue
            strength = digest_algorithm(challenge.algorithm).strength
            if strength > best_strength:
                best, best_strength = challenge, strength
        return best

    # ---- answering

    def authorize(
        self, challenge: Challenge, method: str, uri: str, body: bytes = b""
    ) -> Credentials:
        """Credentials answering ``challenge`` for a request (RFC 3261 §22.2, §22.3).

        ``uri`` is the Request-URI as text (the ``digest-uri``), ``body`` the message body (for
        ``qop=auth-int``). ``qop=auth`` is chosen when offered, ``auth-int`` only when it is
        the only one; no ``qop`` in the challenge gives the RFC 2069 form (no nc, no cnonce).
        ``opaque`` and ``algorithm`` are copied from the challenge. Parameters come in the RFC
        3261 §20.7 order, with username, realm, nonce, uri, cnonce, response and opaque quoted
        and algorithm, qop and nc bare. Each call counts one use of the nonce.

        Raises :class:`ValueError` if the challenge cannot be answered (see
        :meth:`can_answer`) or a value cannot be carried in a quoted-string (CR, LF, NUL).
        """
        problem = self._problem(challenge)
        if problem is not None:
            raise ValueError(problem)
        realm = challenge.realm
        nonce = challenge.nonce
        assert realm is not None and nonce is not None  # checked by _problem
        alg = digest_algorithm(challenge.algorithm)
        qop = None if challenge.qop is None else self._qop_for(challenge)
        count, cnonce = self._use_nonce(realm, nonce, keep_cnonce=alg.sess)
        nc = f"{count:08x}" if qop is not None else None
        if self._ha1 is not None:
            ha1 = self._ha1
        else:
            assert self._password is not None
            ha1 = digest_ha1(self.username, realm, self._password, alg.name)
        response = digest_response(
            ha1=ha1,
            nonce=nonce,
            method=method,
            uri=uri,
            algorithm=alg.name,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        params: list[tuple[str, Optional[str]]] = [
            ("username", _quoted(self.username, "username")),
            ("realm", _quoted(realm, "realm")),
            ("nonce", _quoted(nonce, "nonce")),
            ("uri", _quoted(uri, "uri")),
        ]
        if qop is not None:
            params += [("qop", qop), ("nc", nc), ("cnonce", _quoted(cnonce, "cnonce"))]
        elif alg.sess:
            params.append(("cnonce", _quoted(cnonce, "cnonce")))
        params.append(("response", '"' + response + '"'))
        if challenge.algorithm is not None:
            params.append(("algorithm", challenge.algorithm))
        opaque = challenge.opaque
        if opaque is not None:
            params.append(("opaque", _quoted(opaque, "opaque")))
        return Credentials("Digest", tuple(params))

    def _use_nonce(self, realm: str, nonce: str, *, keep_cnonce: bool) -> tuple[int, str]:
        """Count one more use of ``nonce``: (its count, the cnonce to send)."""
        key = (realm, nonce)
        previous = self._nonces.pop(key, None)
        if previous is None:
            count, cnonce = 1, self._cnonce_factory()
            while len(self._nonces) >= _MAX_NONCES:
                del self._nonces[next(iter(self._nonces))]
        else:
            count = previous[0] + 1
            cnonce = previous[1] if keep_cnonce else self._cnonce_factory()
        self._nonces[key] = (count, cnonce)
        return count, cnonce

    def authorize_request(self, request: Request, response: Response) -> bool:
        """Answer a 401 or 407 ``response`` to ``request`` by adding credentials to ``request``.

        The challenge is chosen (:meth:`choose_challenge`) from every WWW-Authenticate (401)
        or Proxy-Authenticate (407) header; malformed ones are skipped. An Authorization (401)
        or Proxy-Authorization (407) header answering it is added to ``request``, computed over
        its method, Request-URI and body; an earlier one for the same realm is replaced, those
        for other realms are kept (RFC 3261 §22.3).

        Returns False, leaving ``request`` alone, for any other status, when no challenge can
        be answered, or when ``request`` already carries our answer to this very nonce and the
        challenge is not ``stale=true``: the server rejected those credentials (wrong password),
        and trying again would loop (RFC 3261 §22.2).

        The caller sends the changed request as a new transaction, so it must bump the CSeq
        (RFC 3261 §22.2, §8.1.3.5) and use a new Via branch; this method does neither.
        """
        if response.status == 401:
            challenge_spec, credentials_spec = WWW_AUTHENTICATE, AUTHORIZATION
        elif response.status == 407:
            challenge_spec, credentials_spec = PROXY_AUTHENTICATE, PROXY_AUTHORIZATION
        else:
            return False
        challenge = self.choose_challenge(_parse_each(response.headers, challenge_spec))
        if challenge is None:
            return False
        realm = challenge.realm
        name = credentials_spec.name
        kept: list[str] = []
        for text in request.headers.get_all(name):
            try:
                previous = credentials_spec.parse(text)
            except ParseError:
                kept.append(text)
                continue
            if not previous.is_digest or previous.realm != realm:
                kept.append(text)
            elif previous.nonce == challenge.nonce and not challenge.stale:
                return False
        credentials = self.authorize(challenge, request.method, str(request.uri), request.body)
        if kept:
            request.headers.remove(name)
            for text in kept:
                request.headers.add(name, text)
            request.headers.add(name, credentials)
        else:
            request.headers.set(name, credentials)
        return True


def _parse_each(headers: Headers, spec: HeaderSpec[Challenge]) -> list[Challenge]:
    """Every value of a challenge header; a malformed line is skipped, not fatal."""
    try:
        return headers.parsed(spec)
    except ParseError:
        pass
    values = []
    for text in headers.get_all(spec.name):
        try:
            values.append(spec.parse(text))
        except ParseError:
            continue
    return values


# --------------------------------------------------------------------------- Digest AKA

#: The Digest AKA algorithms :class:`AkaClient` answers: RFC 3310 and RFC 4169.
AKA_ALGORITHMS: tuple[str, ...] = ("AKAv1-MD5", "AKAv2-MD5")
_AKA_VERSIONS = {name.lower(): version for version, name in enumerate(AKA_ALGORITHMS, 1)}

#: The largest step SEQ may take past the highest SEQ accepted, Δ of TS 33.102 Annex C.2.2
#: (its example value, 2**28): a bigger one is refused with a re-synchronisation.
AKA_SQN_DELTA = 1 << 28

_AKA_KEY_LEN = 16
_SQN_MAX = (1 << 48) - 1
_IND_SLOTS = 1 << IND_BITS


class AkaClient(DigestClient):
    """The UAC side of HTTP Digest AKA, answering as a USIM would (RFC 3310, RFC 4169).

    ``AkaClient(username, k, opc)`` answers ``algorithm=AKAv1-MD5`` and ``AKAv2-MD5``
    challenges (and no others) with the subscriber key ``k`` and ``opc`` (16 bytes each). For
    each new nonce it does what TS 33.102 §6.3.3 has the USIM do with RAND ‖ AUTN (the nonce,
    base64, RFC 3310 §3.2):

    * MILENAGE gives RES, CK, IK and AK; AK un-conceals SQN; MAC-A is checked. A wrong MAC-A
      means the network failed to authenticate: :meth:`authorize` raises
      :class:`~clearwater.aka.MacFailureError` and :meth:`authorize_request` answers nothing.
    * SQN must be fresh (Annex C.2): SQN = SEQ ‖ IND (5-bit IND), and one SEQ_MS is kept per
      IND value. SQN is accepted if SEQ > SEQ_MS(IND) and SEQ is at most ``delta`` past the
      highest SEQ accepted (Annex C.2.2); SEQ_MS(IND) then becomes SEQ.
    * Accepted: the digest password is the RES octets (AKAv1, RFC 3310 §3.3) or
      base64(HMAC-MD5(RES ‖ IK ‖ CK, "http-digest-akav2-password")) (AKAv2, RFC 4169 §3),
      hashed as MD5 Digest. CK and IK are kept in :attr:`ck` and :attr:`ik`.
    * Not fresh: the answer carries ``auts`` = base64 of AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, SQN_MS
      being the highest SQN accepted, with the response computed over an empty password
      (RFC 3310 §3.4). The server re-synchronises its SQN and challenges again.

    ``sqn`` is the SQN_MS the USIM starts with: every IND slot starts at its SEQ. A nonce
    answered once keeps its password, so later requests can reuse it with the next ``nc``.
    ``realm``, if given, restricts the client to that realm. ``cnonce_factory`` is as for
    :class:`DigestClient`.
    """

    def __init__(
        self,
        username: str,
        k: bytes,
        opc: bytes,
        *,
        sqn: int = 0,
        realm: Optional[str] = None,
        delta: int = AKA_SQN_DELTA,
        cnonce_factory: Callable[[], str] = _default_cnonce,
    ) -> None:
        # The base class's password is never used: each AKA password comes from the USIM.
        super().__init__(username, "", realm=realm, cnonce_factory=cnonce_factory)
        if len(k) != _AKA_KEY_LEN or len(opc) != _AKA_KEY_LEN:
            raise ValueError("k and opc must be 16 bytes each")
        if isinstance(sqn, bool) or not 0 <= sqn <= _SQN_MAX:
            raise ValueError("sqn must be in 0..2**48-1, got " + repr(sqn))
        if delta < 1:
            raise ValueError("delta must be positive, got " + repr(delta))
        self._k = bytes(k)
        self._opc = bytes(opc)
        self._delta = delta
        self._seq_ms = [sqn >> IND_BITS] * _IND_SLOTS
        self._sqn_ms = sqn
        # (realm, nonce) -> digest password of an accepted challenge; insertion order = age.
        self._passwords: dict[tuple[str, str], bytes] = {}
        #: The cipher and integrity keys (TS 33.102 §6.3.3) of the last challenge accepted.
        self.ck: Optional[bytes] = None
        self.ik: Optional[bytes] = None

    @property
    def sqn(self) -> int:
        """SQN_MS: the highest SQN accepted so far (what an ``auts`` reports)."""
        return self._sqn_ms

    def initial_credentials(
        self, realm: str, uri: str, algorithm: Optional[str] = None
    ) -> Credentials:
        """The Authorization of an initial REGISTER (TS 24.229 §5.1.1.2.1): ``username``,
        ``realm``, ``uri``, an empty ``nonce`` and ``response``, and ``algorithm`` if given
        (``AKAv2-MD5`` asks a Clearwater S-CSCF for an AKAv2 challenge)."""
        params: list[tuple[str, Optional[str]]] = [
            ("username", _quoted(self.username, "username")),
            ("realm", _quoted(realm, "realm")),
            ("nonce", '""'),
            ("uri", _quoted(uri, "uri")),
            ("response", '""'),
        ]
        if algorithm is not None:
            if algorithm.lower() not in _AKA_VERSIONS:
                raise ValueError("not an AKA algorithm: " + repr(algorithm))
            params.append(("algorithm", algorithm))
        return Credentials("Digest", tuple(params))

    # ---- choosing

    @override
    def _problem(self, challenge: Challenge) -> Optional[str]:
        if not challenge.is_digest or challenge.token68 is not None:
            return "not a Digest challenge"
        realm = challenge.realm
        nonce = challenge.nonce
        if realm is None or nonce is None:
            return "challenge without realm or nonce"
        if self.realm is not None and realm != self.realm:
            return "challenge for another realm"
        if (challenge.algorithm or "").lower() not in _AKA_VERSIONS:
            return "not an AKA challenge: algorithm " + repr(challenge.algorithm)
        if challenge.qop is not None and self._qop_for(challenge) is None:
            return "no supported qop offered"
        try:
            split_challenge(nonce)
        except ValueError as e:
            return str(e)
        return None

    @override
    def choose_challenge(self, challenges: Sequence[Challenge]) -> Optional[Challenge]:
        """The challenge to answer: of those :meth:`can_answer` accepts (AKA ones), the first
        AKAv2-MD5 one, else the first AKAv1-MD5 one; None if there is none."""
        best: Optional[Challenge] = None
        best_version = 0
        for challenge in challenges:
            if not self.can_answer(challenge):
                continue
            version = _AKA_VERSIONS[(challenge.algorithm or "").lower()]
            if version > best_version:
                best, best_version = challenge, version
        return best

    # ---- answering

    @override
    def authorize(
        self, challenge: Challenge, method: str, uri: str, body: bytes = b""
    ) -> Credentials:
        """Credentials answering the AKA ``challenge`` (RFC 3310 §3.3, §3.4; RFC 4169 §3).

        As :meth:`DigestClient.authorize`, with the password from the USIM (see the class),
        and an ``auts`` parameter after the others when SQN is not fresh. Raises
        :class:`~clearwater.aka.MacFailureError` if AUTN's MAC-A is wrong (nothing changes),
        :class:`ValueError` if the challenge cannot be answered (:meth:`can_answer`).
        """
        problem = self._problem(challenge)
        if problem is not None:
            raise ValueError(problem)
        realm = challenge.realm
        nonce = challenge.nonce
        assert realm is not None and nonce is not None  # checked by _problem
        version = _AKA_VERSIONS[(challenge.algorithm or "").lower()]
        key = (realm, nonce)
        password = self._passwords.get(key)
        auts: Optional[bytes] = None
        if password is None:
            rand, autn = split_challenge(nonce)
            res, ck, ik, sqn = ue_check(self._k, self._opc, rand, autn)
            if self._fresh(sqn):
                self._accept(sqn)
                password = res if version == 1 else akav2_password(res, ik, ck).encode("ascii")
                self._remember(key, password)
                self.ck, self.ik = ck, ik
            else:
                auts = make_auts(self._k, self._opc, rand, self._sqn_ms)
                password = b""
        else:
            self._passwords[key] = self._passwords.pop(key)  # used again: now the youngest
        qop = None if challenge.qop is None else self._qop_for(challenge)
        count, cnonce = self._use_nonce(realm, nonce, keep_cnonce=False)
        nc = f"{count:08x}" if qop is not None else None
        ha1 = hashlib.md5(_utf8(self.username) + b":" + _utf8(realm) + b":" + password).hexdigest()
        response = digest_response(
            ha1=ha1, nonce=nonce, method=method, uri=uri, qop=qop, nc=nc, cnonce=cnonce, body=body
        )
        params: list[tuple[str, Optional[str]]] = [
            ("username", _quoted(self.username, "username")),
            ("realm", _quoted(realm, "realm")),
            ("nonce", _quoted(nonce, "nonce")),
            ("uri", _quoted(uri, "uri")),
        ]
        if qop is not None:
            params += [("qop", qop), ("nc", nc), ("cnonce", _quoted(cnonce, "cnonce"))]
        params.append(("response", '"' + response + '"'))
        params.append(("algorithm", challenge.algorithm))
        opaque = challenge.opaque
        if opaque is not None:
            params.append(("opaque", _quoted(opaque, "opaque")))
        if auts is not None:
            params.append(("auts", '"' + base64.b64encode(auts).decode("ascii") + '"'))
        return Credentials("Digest", tuple(params))

    @override
    def authorize_request(self, request: Request, response: Response) -> bool:
        """As :meth:`DigestClient.authorize_request`; also False, ``request`` untouched, when
        the chosen challenge's MAC-A is wrong: the USIM abandons an authentication the network
        failed (TS 33.102 §6.3.3)."""
        try:
            return super().authorize_request(request, response)
        except MacFailureError:
            return False

    # ---- the USIM's SQN (TS 33.102 Annex C.2)

    def _fresh(self, sqn: int) -> bool:
        seq, ind = sqn >> IND_BITS, sqn & (_IND_SLOTS - 1)
        return seq > self._seq_ms[ind] and seq - (self._sqn_ms >> IND_BITS) <= self._delta

    def _accept(self, sqn: int) -> None:
        seq, ind = sqn >> IND_BITS, sqn & (_IND_SLOTS - 1)
        self._seq_ms[ind] = seq
        if seq > self._sqn_ms >> IND_BITS:
            self._sqn_ms = sqn

    def _remember(self, key: tuple[str, str], password: bytes) -> None:
        while len(self._passwords) >= _MAX_NONCES:
            del self._passwords[next(iter(self._passwords))]
        self._passwords[key] = password


# --------------------------------------------------------------------------- server side


def verify_digest(credentials: Credentials, *, ha1: str, method: str, body: bytes = b"") -> bool:
    """True if ``credentials`` carry the right ``response`` for ``ha1`` (RFC 7616 §3.4.5).

    The digest is recomputed from the credentials' own ``uri``, ``nonce``, ``nc``, ``cnonce``,
    ``qop`` and ``algorithm`` with the request's ``method`` (and ``body`` for ``auth-int``), and
    compared in constant time. ``ha1`` is the stored :func:`digest_ha1` for the algorithm's
    hash. Anything malformed (not Digest, missing fields, unknown algorithm or qop) is False.

    This checks the password only. The caller still checks that the username, realm and nonce
    are ones it issued and that the nonce is fresh, that ``uri`` matches the Request-URI
    (RFC 3261 §22.4 leaves that to the server) and that ``nc`` has not been seen before.
    """
    if not credentials.is_digest:
        return False
    response = credentials.response
    nonce = credentials.nonce
    uri = credentials.uri
    if response is None or nonce is None or uri is None:
        return False
    try:
        expected = digest_response(
            ha1=ha1,
            nonce=nonce,
            method=method,
            uri=uri,
            algorithm=credentials.algorithm or "MD5",
            qop=credentials.qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
            body=body,
        )
    except ValueError:
        return False
    return hmac.compare_digest(_utf8(expected), _utf8(response.lower()))


def make_challenge(
    realm: str,
    nonce: str,
    *,
    algorithm: str = "MD5",
    qop: Optional[str] = "auth",
    opaque: Optional[str] = None,
    stale: bool = False,
) -> Challenge:
    """A Digest challenge for WWW-Authenticate or Proxy-Authenticate (RFC 3261 §22.1, §20.44).

    ``qop`` is the quoted qop-options list as text (``"auth"``, ``"auth,auth-int"``) or None for
    none (the RFC 2069 form). ``algorithm`` is checked (:func:`digest_algorithm`) and written as
    given; ``stale=TRUE`` is written only when ``stale`` (RFC 7616 §3.3). Parameters follow the
    RFC 3261 §20.44 order: realm, qop, nonce, opaque, stale, algorithm.
    """
    digest_algorithm(algorithm)
    params: list[tuple[str, Optional[str]]] = [("realm", _quoted(realm, "realm"))]
    if qop is not None:
        if not all(is_token(option.strip(" \t")) for option in qop.split(",")):
            raise ValueError("qop must be a comma list of tokens: " + repr(qop))
        params.append(("qop", _quoted(qop, "qop")))
    params.append(("nonce", _quoted(nonce, "nonce")))
    if opaque is not None:
        params.append(("opaque", _quoted(opaque, "opaque")))
    if stale:
        params.append(("stale", "TRUE"))
    params.append(("algorithm", algorithm))
    return Challenge("Digest", tuple(params))
