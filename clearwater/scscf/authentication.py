# -*- test-case-name: tests.unit.scscf.test_authentication -*-
"""The S-CSCF's authentication stage (spec §3.1 first row, §3.2): Clearwater's
``AuthenticationSproutlet``.

It takes REGISTERs, and the initial non-REGISTERs ``non_register_authentication`` asks for,
and lets through only those that answer one of its challenges:

* No credentials (or credentials that answer no challenge we hold): a vector from homestead
  (``GET /impi/<impi>/av[/aka|/aka2]``) and a 401 (REGISTER, ``WWW-Authenticate``) or 407
  (``Proxy-Authenticate``) challenge: SIP Digest (RFC 3261 §22, RFC 2617 / RFC 7616 with
  ``qop=auth``), AKAv1-MD5 (RFC 3310) or AKAv2-MD5 (RFC 4169). The challenge is kept in the
  IMPI store (:class:`~clearwater.stores.interfaces.IChallengeStore`) for
  :data:`~clearwater.scscf.config.AUTH_CHALLENGE_EXPIRES` seconds, and a timer
  (:data:`AUTH_TIMEOUT_KIND`, :data:`~clearwater.scscf.config.AUTH_TIMER_INTERVAL` s) reports
  an unanswered one to homestead as ``dereg-auth-timeout``. A digest challenge is followed by
  a SHA-256 one (RFC 8760) when configured and the vector carries a SHA-256 HA1.
* A non-REGISTER from an endpoint that registered with digest is challenged against the
  challenge its REGISTER answered, named by the ``username`` and ``nonce`` parameters its
  Route carries (the 200 OK's Service-Route got them here); with ``auto-reg`` on the Route
  the vector comes from homestead, as for a REGISTER.
* Credentials for a challenge we hold: checked (the nonce-count rules of §3.2 first). Right:
  the request goes on to ``next_service`` (the registrar), Proxy-Authorization removed.
  Wrong: 403 and ``dereg-auth-failed`` to homestead. An unknown or expired nonce: a new
  challenge with ``stale=TRUE``. A correct AKA answer with ``auts`` (TS 33.102 §6.3.5): a
  new vector, re-synchronised, and a new challenge.

Failures: homestead 503/504 (or unreachable) and IMPI-store reads give 504, never 403; any
other homestead error gives 403; a challenge that cannot be stored gives 500.

Stored AKA challenges keep Clearwater's format: ``response`` is the hex of the digest
password (XRES for AKAv1, the RFC 4169 password for AKAv2).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union
from urllib.parse import quote, unquote

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from clearwater.aka import AUTS_LEN, akav2_password
from clearwater.errors import ParseError
from clearwater.homestead.hssless import AkaAv, AvScheme, DigestAv, HomesteadError, ReqType
from clearwater.scscf.config import (
    AUTH_CHALLENGE_EXPIRES,
    AUTH_TIMER_INTERVAL,
    NonRegisterAuthentication,
    ScscfConfig,
)
from clearwater.scscf.hss import Homestead
from clearwater.scscf.identities import default_private_id, public_id
from clearwater.sip import (
    Challenge,
    Credentials,
    HeaderSpec,
    NameAddr,
    Request,
    Response,
    SipUri,
)
from clearwater.sip.auth import digest_algorithm, make_challenge, verify_digest
from clearwater.sip.headers import (
    AUTHORIZATION,
    CONTACT,
    EXPIRES,
    P_ASSERTED_IDENTITY,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    ROUTE,
    SERVICE_ROUTE,
    WWW_AUTHENTICATE,
)
from clearwater.sip.sproutlet import Sproutlet, SproutletTsx, SproutletTsxHelper
from clearwater.stores.interfaces import (
    DataContentionError,
    IChallengeStore,
    ITimerService,
    StoreError,
)
from clearwater.stores.records import Challenge as StoredChallenge

__all__ = [
    "AUTH_TIMEOUT_KIND",
    "MAX_CHALLENGES_PER_IMPI",
    "AuthenticationSproutlet",
    "AuthenticationTsx",
]

log = Logger()

#: The :class:`~clearwater.stores.interfaces.ITimerService` kind of the authentication timer
#: (Clearwater's Chronos callback ``/authentication-timeout``).
AUTH_TIMEOUT_KIND = "authentication-timeout"

#: The most challenges kept per IMPI; beyond it those expiring soonest are dropped (a bound
#: on what a flood of unanswered REGISTERs can pile up in one record).
MAX_CHALLENGES_PER_IMPI = 64

# Extra keys of a stored digest challenge (Clearwater ignores unknown keys).
_HA1_SHA256 = "ha1_sha256"

_INITIAL_NONCE_COUNT = 1
_CAS_ATTEMPTS = 10
_NONCE_BYTES = 32  # base64(RAND || AUTN) decoded (RFC 3310 §3.2; Clearwater insists on 32)
_RAND_LEN = 16
_AKA_ALGORITHMS = {1: "AKAv1-MD5", 2: "AKAv2-MD5"}
# RFC 3261 §25.1 paramchar: what a URI parameter value may hold unescaped.
_PARAM_SAFE = "-_.!~*'()[]/:&+$"


def _random_token() -> str:
    """16 random characters, as Clearwater's ``pj_create_random_string`` gave."""
    return secrets.token_hex(8)


# --------------------------------------------------------------------------- identities


def _route_param(route: Optional[NameAddr], name: str) -> Optional[str]:
    """A parameter of the Route's URI (``orig``, ``username``, ...): ``""`` for a flag."""
    if route is None or not isinstance(route.uri, SipUri):
        return None
    return route.uri.param(name)


def _digest_credentials(request: Request, spec: HeaderSpec[Credentials]) -> Optional[Credentials]:
    """The first Digest value of Authorization / Proxy-Authorization that parses."""
    for text in request.headers.get_all(spec.name):
        try:
            credentials = spec.parse(text)
        except ParseError:
            continue
        if credentials.is_digest:
            return credentials
    return None


def _credentials(request: Request) -> Optional[Credentials]:
    """Authorization for a REGISTER, Proxy-Authorization otherwise (spec §3.2)."""
    spec = AUTHORIZATION if request.method == "REGISTER" else PROXY_AUTHORIZATION
    return _digest_credentials(request, spec)


def _is_emergency_registration(request: Request) -> bool:
    """Every Contact (one at least) has the ``sos`` URI parameter (RFC 5031 §5.2; Clearwater
    does not challenge such a REGISTER)."""
    try:
        contacts = request.headers.parsed(CONTACT)
    except ParseError:
        return False
    if not contacts:
        return False
    for contact in contacts:
        if not isinstance(contact, NameAddr) or not isinstance(contact.uri, SipUri):
            return False
        if not contact.uri.has_param("sos"):
            return False
    return True


def _nonce_count(credentials: Credentials) -> int:
    """The ``nc`` as a number; 1 when absent or unreadable (Clearwater's ``pj_strtoul2``)."""
    try:
        count = int(credentials.nc or "", 16)
    except ValueError:
        count = 0
    return count if count > 0 else 1


def _escape_param(text: str) -> str:
    return quote(text, safe=_PARAM_SAFE)


def _extra(challenge: StoredChallenge, key: str) -> str:
    for name, value in challenge.extra:
        if name == key and isinstance(value, str):
            return value
    return ""


# --------------------------------------------------------------------------- the sproutlet


class AuthenticationSproutlet(Sproutlet):
    """The S-CSCF's first stage (Clearwater's ``AuthenticationSproutlet``, spec §3.1, §3.2).

    ``homestead`` gives the vectors and hears of failures and timeouts; ``challenges`` is the
    IMPI store; ``timers`` runs the authentication timers (their handler, :meth:`auth_timeout`,
    is registered here); ``clock`` gives the time. Requests it does not take go, in process, to
    ``next_service``, as do those it authenticates (by a Route to it). ``token`` makes nonces
    and opaques.
    """

    def __init__(
        self,
        config: ScscfConfig,
        homestead: Homestead,
        challenges: IChallengeStore,
        timers: ITimerService,
        clock: IReactorTime,
        *,
        service_name: str = "scscf",
        port: int = 5054,
        uri: str = "",
        aliases: Sequence[str] = (),
        next_service: str = "registrar",
        network_function: str = "scscf",
        token: Callable[[], str] = _random_token,
    ) -> None:
        super().__init__(
            service_name,
            port,
            uri,
            aliases=aliases,
            network_function=network_function,
            next_service=next_service,
        )
        self.config = config
        self.homestead = homestead
        self.challenges = challenges
        self.timers = timers
        self.clock = clock
        self.token = token
        timers.listen(AUTH_TIMEOUT_KIND, self.auth_timeout)

    @override
    def get_tsx(
        self, helper: SproutletTsxHelper, alias: str, request: Request
    ) -> Optional[SproutletTsx]:
        """A tsx for the requests spec §3.1 gives this stage; None for the others (and for all
        with ``authentication`` off)."""
        if not self.config.authentication:
            return None
        if self._needs_authentication(request, helper.route_hdr()):
            return AuthenticationTsx(helper, self)
        return None

    def _needs_authentication(self, request: Request, route: Optional[NameAddr]) -> bool:
        if request.method == "REGISTER":
            if _is_emergency_registration(request):
                return False
            credentials = _digest_credentials(request, AUTHORIZATION)
            if credentials is not None:
                integrity = (credentials.integrity_protected or "").lower()
                if integrity == "tls-yes":
                    return False  # authenticated already, over TLS (TS 24.229 §5.4.1.2.2)
                if integrity == "yes" and not credentials.response:
                    return False  # AKA, on an integrity-protected channel, not answering
            return True
        if request.to.tag is not None:
            return False  # in dialog
        if _route_param(route, "orig") is None:
            return False  # not originating
        if self.config.authenticate_auto_reg and _route_param(route, "auto-reg") is not None:
            return True  # from the all-in-one's phone port: every initial request
        modes = self.config.non_register_authentication
        if (
            NonRegisterAuthentication.IF_PROXY_AUTHORIZATION_PRESENT in modes
            and PROXY_AUTHORIZATION.name in request.headers
        ):
            return True
        return (
            NonRegisterAuthentication.INITIAL_REQ_FROM_REG_DIGEST_ENDPOINT in modes
            and _route_param(route, "username") is not None
        )

    # -- the IMPI store

    def now(self) -> float:
        return self.clock.seconds()

    async def write_challenge(
        self,
        impi: str,
        challenge: StoredChallenge,
        read: Optional[tuple[tuple[StoredChallenge, ...], int]] = None,
    ) -> None:
        """Add ``challenge`` to the IMPI's record, or update the one with its nonce (its nonce
        count and expiry never going back, as Clearwater's ``write_challenge_to_store``),
        dropping expired ones; CAS, re-read and retried on contention. ``read`` is a
        ``get_challenges`` result to start from."""
        for _ in range(_CAS_ATTEMPTS):
            if read is None:
                read = await self.challenges.get_challenges(impi)
            current, cas = read
            read = None
            now = self.now()
            kept: list[StoredChallenge] = []
            merged = challenge
            for old in current:
                if old.expires <= now:
                    continue
                if old.nonce == challenge.nonce:
                    merged = attrs.evolve(
                        challenge,
                        nc=max(challenge.nc, old.nc),
                        expires=max(challenge.expires, old.expires),
                    )
                else:
                    kept.append(old)
            kept.append(merged)
            if len(kept) > MAX_CHALLENGES_PER_IMPI:
                kept.sort(key=lambda c: c.expires)
                kept = kept[len(kept) - MAX_CHALLENGES_PER_IMPI :]
            try:
                await self.challenges.set_challenges(impi, tuple(kept), cas, now)
            except DataContentionError:
                continue
            return
        raise DataContentionError("IMPI " + impi + " kept changing")

    async def remove_challenge(self, impi: str, nonce: str) -> None:
        """Drop the IMPI's challenge with ``nonce`` (CAS, retried on contention)."""
        for _ in range(_CAS_ATTEMPTS):
            current, cas = await self.challenges.get_challenges(impi)
            now = self.now()
            kept = tuple(c for c in current if c.nonce != nonce and c.expires > now)
            if len(kept) == len(current):
                return
            try:
                await self.challenges.set_challenges(impi, kept, cas, now)
            except DataContentionError:
                continue
            return
        raise DataContentionError("IMPI " + impi + " kept changing")

    # -- homestead, fire and forget

    def report(self, impu: str, impi: str, reqtype: ReqType) -> None:
        """``PUT /impu/<impu>/reg-data`` with ``reqtype``; a failure is only logged."""

        def failed(failure: Failure) -> None:
            log.failure(
                "{reqtype} for {impi} ({impu}) failed",
                failure,
                reqtype=reqtype.value,
                impi=impi,
                impu=impu,
            )

        self.homestead.put_reg_data(
            impu, reqtype, server_name=self.config.scscf_uri, private_id=impi
        ).addCallbacks(lambda _: None, failed)

    def delete_timer(self, timer_id: str) -> None:
        """Cancel an authentication timer; a failure is only logged."""
        if not timer_id:
            return

        def failed(failure: Failure) -> None:
            log.failure(
                "Deleting authentication timer {timer_id} failed", failure, timer_id=timer_id
            )

        self.timers.delete_timer(timer_id).addErrback(failed)

    # -- the authentication timer (Clearwater's AuthTimeoutTask)

    def auth_timeout(self, timer_id: str, opaque: dict[str, Any]) -> Deferred[None]:
        """An authentication timer popped: if its challenge is still unanswered (nonce count
        still the initial one), tell homestead (``dereg-auth-timeout``) and forget the
        challenge. A store failure, or a homestead one of 5xx, fails the Deferred so that the
        pop is delivered again; other homestead errors are logged."""
        return Deferred.fromCoroutine(self._auth_timeout(timer_id, opaque))

    async def _auth_timeout(self, timer_id: str, opaque: dict[str, Any]) -> None:
        impi, impu, nonce = (opaque.get(key) for key in ("impi", "impu", "nonce"))
        if not (isinstance(impi, str) and isinstance(impu, str) and isinstance(nonce, str)):
            log.warn(
                "Bad authentication timer {timer_id}: {opaque!r}", timer_id=timer_id, opaque=opaque
            )
            return
        current, _ = await self.challenges.get_challenges(impi)
        challenge = next((c for c in current if c.nonce == nonce), None)
        if challenge is None or challenge.nc > _INITIAL_NONCE_COUNT:
            return  # answered, or gone
        log.info("Authentication of {impi} ({impu}) timed out", impi=impi, impu=impu)
        try:
            await self.homestead.put_reg_data(
                impu,
                ReqType.DEREG_AUTH_TIMEOUT,
                server_name=challenge.scscf_uri or self.config.scscf_uri,
                private_id=impi,
            )
        except HomesteadError as e:
            if e.status >= 500:
                raise
            log.warn(
                "dereg-auth-timeout for {impi} ({impu}) refused: {status} {message}",
                impi=impi,
                impu=impu,
                status=e.status,
                message=e.message,
            )
            return
        await self.remove_challenge(impi, nonce)


# --------------------------------------------------------------------------- the tsx


@attrs.frozen
class _Vector:
    """What a new challenge is made from: homestead's vector, or the stored challenge an
    endpoint that registered with digest answered (``from_homestead`` False)."""

    av: Union[DigestAv, AkaAv]
    from_homestead: bool


class _NoVectorError(Exception):
    """No vector: ``status`` is what the request is answered with (403 or 504)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


class AuthenticationTsx(SproutletTsx):
    """One request at the authentication stage (Clearwater's ``AuthenticationSproutletTsx``)."""

    def __init__(self, helper: SproutletTsxHelper, sproutlet: AuthenticationSproutlet) -> None:
        super().__init__(helper)
        self.sproutlet = sproutlet
        self.config = sproutlet.config
        #: (impi, nonce) of a REGISTER authenticated with SIP digest: added to the
        #: Service-Route of its responses so that later requests can be challenged again.
        self.digest_identity: Optional[tuple[str, str]] = None

    # -- callbacks

    @override
    def on_rx_initial_request(self, request: Request) -> Deferred[None]:
        return Deferred.fromCoroutine(self._authenticate(request))

    @override
    def on_rx_response(self, response: Response, fork_id: int) -> None:
        if self.digest_identity is not None and 200 <= response.status < 300:
            self._add_service_route_params(response, *self.digest_identity)
        self.send_response(response)

    # -- the request

    async def _authenticate(self, request: Request) -> None:
        sproutlet = self.sproutlet
        credentials = _credentials(request)
        stale = False
        resync: Optional[str] = None
        if credentials is not None and credentials.response:
            impi = credentials.username or ""
            nonce = credentials.nonce or ""
            try:
                read = await sproutlet.challenges.get_challenges(impi)
            except StoreError as e:
                log.warn("Reading IMPI {impi} failed: {error}", impi=impi, error=e)
                self._reply(request, 504)
                return
            now = sproutlet.now()
            challenge = next(
                (c for c in read[0] if c.nonce == nonce and c.expires > now),
                None,
            )
            nc = _nonce_count(credentials)
            if challenge is not None and challenge.nc > _INITIAL_NONCE_COUNT:
                if not self.config.nonce_count_supported:
                    log.info("Nonce count {nc} for {impi}: not supported", nc=nc, impi=impi)
                    challenge = None
                elif nc < challenge.nc:
                    log.info(
                        "Nonce count {nc} for {impi} below {expected}: a replay?",
                        nc=nc,
                        impi=impi,
                        expected=challenge.nc,
                    )
                    challenge = None
            if challenge is None:
                stale = True  # unknown, expired or reused nonce
            else:
                verdict = self._verify(credentials, challenge, request)
                if verdict is False:
                    log.info("Authentication of {impi} failed", impi=impi)
                    self._forbid(request)
                    return
                if verdict is True:
                    await self._authenticated(request, impi, challenge, nc, read)
                    resync = self._resync(credentials, challenge)
                    if resync is None:
                        self._forward(request, impi, challenge)
                        return
                    if not resync:
                        log.info("Bad auts from {impi}", impi=impi)
                        self._forbid(request)
                        return
                # verdict None: credentials for another realm; challenge afresh
        await self._challenge(request, credentials, stale=stale, resync=resync or None)

    def _verify(
        self, credentials: Credentials, challenge: StoredChallenge, request: Request
    ) -> Optional[bool]:
        """Whether ``credentials`` answer ``challenge`` (None: they are for another realm)."""
        if challenge.type == "aka":
            # RFC 3310 §3.4 / RFC 4169: the password is the RES octets (AKAv1) or the AKAv2
            # password; empty when the UE reports a synchronisation failure (auts).
            try:
                password = (
                    b"" if credentials.auts is not None else bytes.fromhex(challenge.response)
                )
            except ValueError:
                return False
            realm = credentials.realm or ""
            ha1 = hashlib.md5(
                (credentials.username or "").encode("utf-8", "surrogateescape")
                + b":"
                + realm.encode("utf-8", "surrogateescape")
                + b":"
                + password
            ).hexdigest()
            as_md5 = attrs.evolve(
                credentials,
                params=tuple(p for p in credentials.params if p[0].lower() != "algorithm"),
            )
            return verify_digest(as_md5, ha1=ha1, method=request.method, body=request.body)
        if credentials.realm != challenge.realm:
            return None
        try:
            algorithm = digest_algorithm(credentials.algorithm)
        except ValueError:
            return False
        if algorithm.hash_name == "md5":
            ha1 = challenge.ha1
        elif algorithm.hash_name == "sha256":
            ha1 = _extra(challenge, _HA1_SHA256)
        else:
            ha1 = ""
        if not ha1:
            return False
        return verify_digest(credentials, ha1=ha1, method=request.method, body=request.body)

    async def _authenticated(
        self,
        request: Request,
        impi: str,
        challenge: StoredChallenge,
        nc: int,
        read: tuple[tuple[StoredChallenge, ...], int],
    ) -> None:
        """Record a right answer: the next nonce count, the challenge kept as long as the
        registration where later requests may use it, the timer cancelled."""
        sproutlet = self.sproutlet
        updated = attrs.evolve(challenge, nc=nc + 1, timer_id="")
        if request.method == "REGISTER" and (
            self.config.nonce_count_supported
            or (
                challenge.type == "digest"
                and NonRegisterAuthentication.INITIAL_REQ_FROM_REG_DIGEST_ENDPOINT
                in self.config.non_register_authentication
            )
        ):
            updated = attrs.evolve(
                updated, expires=int(sproutlet.now()) + self._binding_expiry(request)
            )
        try:
            await sproutlet.write_challenge(impi, updated, read)
        except StoreError as e:
            log.warn(
                "Updating the challenge of {impi} after authentication failed: {error}",
                impi=impi,
                error=e,
            )
        sproutlet.delete_timer(challenge.timer_id)

    def _binding_expiry(self, request: Request) -> int:
        """The longest binding the REGISTER asks for, capped at ``reg_max_expires`` (spec §3.3
        step 4); 0 with no Contact."""
        limit = self.config.reg_max_expires
        try:
            contacts = request.headers.parsed(CONTACT)
        except ParseError:
            return 0
        try:
            header = request.headers.first(EXPIRES)
        except ParseError:
            header = None
        default = limit if header is None else header
        longest = 0
        for contact in contacts:
            expires: Optional[int] = None
            if isinstance(contact, NameAddr):
                try:
                    expires = contact.expires
                except (ParseError, ValueError):
                    expires = None
            longest = max(longest, min(limit, default if expires is None else expires))
        return longest

    def _resync(self, credentials: Credentials, challenge: StoredChallenge) -> Optional[str]:
        """For a right AKA answer with ``auts``: homestead's ``resync-auth``, base64(RAND ‖
        AUTS), or ``""`` if the auts or the nonce is malformed. None: no resynchronisation."""
        auts_text = credentials.auts
        if challenge.type != "aka" or auts_text is None:
            return None
        try:
            auts = base64.b64decode(auts_text, validate=True)
            nonce = base64.b64decode(credentials.nonce or "", validate=True)
        except (binascii.Error, ValueError):
            return ""
        if len(auts) != AUTS_LEN or len(nonce) != _NONCE_BYTES:
            return ""
        return base64.b64encode(nonce[:_RAND_LEN] + auts).decode("ascii")

    def _forward(self, request: Request, impi: str, challenge: StoredChallenge) -> None:
        """Pass an authenticated request to the next stage: Proxy-Authorization removed (not
        Authorization: third-party REGISTERs carry it), a Route to ``next_service`` on top."""
        log.debug("Authenticated {impi}", impi=impi)
        request.headers.remove(PROXY_AUTHORIZATION.name)
        if challenge.type == "digest":
            self.digest_identity = (impi, challenge.nonce)
        route = self.route_hdr()
        base = route.uri if route is not None and isinstance(route.uri, SipUri) else None
        if base is None:
            base = self.get_reflexive_uri()
        next_hop = self.next_hop_uri(self.sproutlet.next_service, base)
        request.headers.prepend(ROUTE.name, "<" + str(next_hop) + ">")
        self.send_request(request)

    def _add_service_route_params(self, response: Response, impi: str, nonce: str) -> None:
        """``;username=<impi>;nonce=<nonce>`` (escaped) on the first Service-Route's URI."""
        try:
            routes = response.headers.parsed(SERVICE_ROUTE)
        except ParseError:
            return
        first = routes[0] if routes else None
        if first is None or not isinstance(first.uri, SipUri):
            return
        try:
            uri = first.uri.with_param("username", _escape_param(impi)).with_param(
                "nonce", _escape_param(nonce)
            )
        except ValueError:
            return
        response.headers.set_values(SERVICE_ROUTE, [attrs.evolve(first, uri=uri), *routes[1:]])

    # -- challenging

    def _identities(self, request: Request) -> tuple[str, str]:
        """(IMPI, IMPU) for homestead (Clearwater's ``get_impi_and_impu``): the IMPU from the
        To (REGISTER) or the originating served user (P-Asserted-Identity, else From); the IMPI
        from the credentials, else derived from the IMPU."""
        if request.method == "REGISTER":
            uri = request.to.uri
        else:
            try:
                asserted = request.headers.first(P_ASSERTED_IDENTITY)
            except ParseError:
                asserted = None
            uri = asserted.uri if asserted is not None else request.from_.uri
        credentials = _credentials(request)
        impi = credentials.username if credentials is not None else None
        return impi or default_private_id(uri, self.config.home_domain), public_id(uri)

    def _reply(self, request: Request, status: int) -> None:
        self.send_response(self.create_response(request, status))

    def _forbid(self, request: Request) -> None:
        """403, and homestead told that this authentication failed for good."""
        impi, impu = self._identities(request)
        self.sproutlet.report(impu, impi, ReqType.DEREG_AUTH_FAILED)
        self._reply(request, 403)

    async def _vector(
        self, request: Request, credentials: Optional[Credentials], resync: Optional[str]
    ) -> _Vector:
        route = self.route_hdr()
        if request.method == "REGISTER" or _route_param(route, "auto-reg") is not None:
            impi, impu = self._identities(request)
            scheme: Optional[AvScheme] = None
            if credentials is not None:
                integrity = (credentials.integrity_protected or "").lower()
                if integrity in ("yes", "no"):
                    scheme = AvScheme.AKA
                if (credentials.algorithm or "").lower() == "akav2-md5":
                    scheme = AvScheme.AKA2
            try:
                av = await self.sproutlet.homestead.get_av(
                    impi, impu, scheme, resync, server_name=self.config.scscf_uri
                )
            except HomesteadError as e:
                status = 504 if e.status in (503, 504) else 403
                raise _NoVectorError(status, "homestead: " + str(e)) from None
            except StoreError as e:  # homestead in process: its store failed
                raise _NoVectorError(504, "homestead's store: " + str(e)) from None
            return _Vector(av, from_homestead=True)
        # An endpoint that registered with digest: the challenge its REGISTER answered.
        username = _route_param(route, "username")
        nonce = _route_param(route, "nonce")
        if not username or not nonce:
            raise _NoVectorError(403, "no challenge named on the Route")
        impi, nonce = unquote(username), unquote(nonce)
        try:
            current, _ = await self.sproutlet.challenges.get_challenges(impi)
        except StoreError as e:
            raise _NoVectorError(504, "IMPI store: " + str(e)) from None
        now = self.sproutlet.now()
        for challenge in current:
            if challenge.nonce == nonce and challenge.type == "digest" and challenge.expires > now:
                digest = DigestAv(
                    challenge.ha1,
                    challenge.realm,
                    challenge.qop or "auth",
                    _extra(challenge, _HA1_SHA256),
                )
                return _Vector(digest, from_homestead=False)
        raise _NoVectorError(403, "no digest challenge " + nonce + " for " + impi)

    async def _challenge(
        self,
        request: Request,
        credentials: Optional[Credentials],
        *,
        stale: bool,
        resync: Optional[str],
    ) -> None:
        """Answer 401 / 407 with a new challenge (spec §3.2 "Challenge")."""
        is_register = request.method == "REGISTER"
        try:
            vector = await self._vector(request, credentials, resync)
        except _NoVectorError as e:
            log.info("No authentication vector: {why}", why=e.why)
            self._reply(request, e.status)  # homestead is told nothing (as Clearwater)
            return
        impi, impu = self._identities(request)
        if not vector.from_homestead:
            route_impi = _route_param(self.route_hdr(), "username")
            impi = unquote(route_impi or "") or impi
        try:
            headers, stored = self._build_challenge(request, vector.av, stale)
        except ValueError as e:
            log.warn("Bad authentication vector for {impi}: {error}", impi=impi, error=e)
            self._reply(request, 403)
            return
        sproutlet = self.sproutlet
        timer_id = ""
        if vector.from_homestead:
            try:
                timer_id = await sproutlet.timers.set_timer(
                    AUTH_TIMEOUT_KIND,
                    AUTH_TIMER_INTERVAL,
                    {"impi": impi, "impu": impu, "nonce": stored.nonce},
                )
            except Exception as e:
                log.warn("Setting the authentication timer failed: {error}", error=e)
        try:
            await sproutlet.write_challenge(impi, attrs.evolve(stored, timer_id=timer_id))
        except StoreError as e:
            log.warn("Storing the challenge for {impi} failed: {error}", impi=impi, error=e)
            sproutlet.delete_timer(timer_id)
            self._reply(request, 500)
            return
        response = self.create_response(request, 401 if is_register else 407)
        name = WWW_AUTHENTICATE.name if is_register else PROXY_AUTHENTICATE.name
        for header in headers:
            response.headers.add(name, header)
        self.send_response(response)

    def _build_challenge(
        self, request: Request, av: Union[DigestAv, AkaAv], stale: bool
    ) -> tuple[list[Challenge], StoredChallenge]:
        """The challenge header values and the record to store; ValueError for a vector we
        cannot use."""
        token = self.sproutlet.token
        now = int(self.sproutlet.now())
        try:
            correlator = request.top_via.branch or ""
        except ParseError:
            correlator = ""
        expires = now + AUTH_CHALLENGE_EXPIRES
        scscf_uri = self.config.scscf_uri
        if isinstance(av, AkaAv):
            algorithm = _AKA_ALGORITHMS.get(av.version)
            if algorithm is None:
                raise ValueError("AKA version " + str(av.version))
            xres = bytes.fromhex(av.response)
            if av.version == 2:
                password = akav2_password(
                    xres, bytes.fromhex(av.integritykey), bytes.fromhex(av.cryptkey)
                ).encode("ascii")
            else:
                password = xres
            bytes.fromhex(av.cryptkey + av.integritykey)  # both must be hex
            md5 = make_challenge(self.config.realm, av.challenge, opaque=token(), stale=stale)
            params = tuple(
                (name, algorithm) if name == "algorithm" else (name, value)
                for name, value in md5.params
            )
            params += (("ck", '"' + av.cryptkey + '"'), ("ik", '"' + av.integritykey + '"'))
            stored = StoredChallenge(
                type="aka",
                nonce=av.challenge,
                expires=expires,
                nc=_INITIAL_NONCE_COUNT,
                correlator=correlator,
                scscf_uri=scscf_uri,
                response=password.hex(),
            )
            return [Challenge(md5.scheme, params)], stored
        nonce = token()
        opaque = token()
        qop = av.qop or "auth"
        headers = [make_challenge(av.realm, nonce, qop=qop, opaque=opaque, stale=stale)]
        extra: tuple[tuple[str, Any], ...] = ()
        if av.ha1_sha256 and any(a.upper() == "SHA-256" for a in self.config.digest_algorithms):
            # RFC 8760 §2.4: one challenge per algorithm, the preferred (MD5: what every
            # phone answers) first; the same nonce, so one stored challenge checks either.
            headers.append(
                make_challenge(
                    av.realm, nonce, algorithm="SHA-256", qop=qop, opaque=opaque, stale=stale
                )
            )
            extra = ((_HA1_SHA256, av.ha1_sha256),)
        stored = StoredChallenge(
            type="digest",
            nonce=nonce,
            expires=expires,
            nc=_INITIAL_NONCE_COUNT,
            correlator=correlator,
            scscf_uri=scscf_uri,
            realm=av.realm,
            qop=qop,
            ha1=av.ha1,
            extra=extra,
        )
        return headers, stored
