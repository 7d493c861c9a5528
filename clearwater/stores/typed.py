"""Registration and challenge records over any :class:`~clearwater.stores.interfaces.ICasStore`
(spec §3.4 registration store, §3.2 IMPI store, §1.4 key layout).

The records are kept as the JSON Clearwater's sprout wrote (:mod:`clearwater.stores.records`)
under table ``reg`` (key: the AoR's default IMPU) and ``impi`` (key: the IMPI), so a
memcached shared with Clearwater holds the same bytes under ``reg\\\\<impu>`` and
``impi\\\\<impi>``.

Lifetimes follow Clearwater: an AoR lives until its latest binding or subscription expiry
plus 10 s (so a registration-expiry timer pop still finds it); an IMPI record until its latest
challenge expiry. Lifetimes are whole seconds, rounded up, at least 1.

A record with nothing left to keep (no bindings or subscriptions; no live challenges) is
replaced, under CAS, by an empty value living 1 s: a tombstone, as Clearwater's memcached
store writes for deletes. A plain delete could wipe out a record another node wrote after
this writer read, which the CAS write cannot: deleting loses a race like any other write.

Reads treat a tombstone or a record that does not parse as absent (a corrupt record is logged),
as Clearwater does, but keep its CAS token: a writer that read it replaces it with that token,
where a CAS of 0 would keep losing until the bad record expired.

The temporary GRUU index (RFC 5627 §3.2; ours, Clearwater had no temp-gruu) lives beside the
AoRs in the same store, table ``tgruu``: key the random token of a binding's temporary GRUUs
(:class:`~clearwater.stores.records.TempGruu`), value ``{"aor": <AoR id>, "binding": <binding
id>}``, living as long as the binding (rewritten when a refresh extends it, left to expire when
the binding goes). It is what routes a temp-gruu, which must not name its AoR, to its binding.
"""

from __future__ import annotations

import math
from typing import Optional

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from clearwater.errors import ParseError
from clearwater.stores import records
from clearwater.stores.interfaces import (
    DataContentionError,
    ICasStore,
    IChallengeStore,
    IRegistrationStore,
)
from clearwater.stores.records import AoR, Challenge

__all__ = [
    "AOR_LINGER",
    "CHALLENGE_TABLE",
    "REGISTRATION_TABLE",
    "TEMP_GRUU_TABLE",
    "ChallengeStore",
    "RegistrationStore",
    "TempGruuStore",
    "TempGruuTarget",
    "ttl_until",
]

log = Logger()

#: Table of AoR records (spec §1.4).
REGISTRATION_TABLE = "reg"
#: Table of IMPI (challenge) records (spec §1.4).
CHALLENGE_TABLE = "impi"
#: Table of the temporary GRUU index (ours: token -> AoR and binding).
TEMP_GRUU_TABLE = "tgruu"
#: Read-then-write attempts of an index record before a contended write gives up.
_INDEX_ATTEMPTS = 3
#: Seconds an AoR outlives its latest binding or subscription (spec §3.4).
AOR_LINGER = 10
#: What a record with nothing left in it is replaced by, and how long that lives.
TOMBSTONE = b""
TOMBSTONE_TTL = 1


def ttl_until(expires: Optional[float], now: float) -> int:
    """Whole seconds from ``now`` until ``expires``, rounded up; 0 when that is not in the
    future (or ``expires`` is None): the record should not be kept."""
    if expires is None or expires <= now:
        return 0
    return max(1, math.ceil(expires - now))


def _reason(error: Exception) -> str:
    # records.loads lets json's RecursionError (absurdly deep nesting) through.
    return error.reason if isinstance(error, ParseError) else "Bad JSON: nested too deeply"


def _write(
    cas_store: ICasStore, table: str, key: str, data: bytes, cas: int, ttl: int
) -> Deferred[None]:
    if ttl <= 0:
        return cas_store.set_data(table, key, TOMBSTONE, cas, TOMBSTONE_TTL)
    return cas_store.set_data(table, key, data, cas, ttl)


@attrs.frozen
class TempGruuTarget:
    """Where a temporary GRUU token leads: the AoR (its default IMPU) and the binding id."""

    aor_id: str
    binding_id: str


class TempGruuStore:
    """The temporary GRUU index over ``cas_store``'s ``tgruu`` table (see the module notes).

    Tokens are URL-safe random strings, so they are valid keys for every back end."""

    def __init__(self, cas_store: ICasStore) -> None:
        self._cas = cas_store

    def get_target(self, token: str) -> Deferred[Optional[TempGruuTarget]]:
        """The binding ``token`` leads to; None when the token is unknown (never written, or
        expired), or its record is corrupt (logged)."""

        def parse(result: tuple[Optional[bytes], int]) -> Optional[TempGruuTarget]:
            data, _ = result
            if not data:
                return None
            try:
                obj = records.loads(data, "temp-gruu index")
                aor_id, binding_id = obj.get("aor"), obj.get("binding")
                if not isinstance(aor_id, str) or not isinstance(binding_id, str) or not aor_id:
                    raise ParseError("Bad temp-gruu index record: aor or binding")
            except (ParseError, RecursionError) as e:
                log.warn(
                    "Ignoring corrupt temp-gruu index record {token}: {reason}",
                    token=token,
                    reason=_reason(e),
                )
                return None
            return TempGruuTarget(aor_id, binding_id)

        return self._cas.get_data(TEMP_GRUU_TABLE, token).addCallback(parse)

    def set_target(
        self, token: str, target: TempGruuTarget, expires: float, now: float, *, new: bool = False
    ) -> Deferred[None]:
        """Index ``token`` to ``target`` until ``expires`` (epoch s; nothing is written when
        that has passed). ``new``: the token was just made, so the record is written without
        reading it first (one round trip); otherwise it is read for its CAS and overwritten,
        re-read on a lost race (DataContentionError after a few attempts)."""
        ttl = ttl_until(expires, now)
        if ttl <= 0:
            return succeed(None)
        data = records.dumps({"aor": target.aor_id, "binding": target.binding_id})
        return Deferred.fromCoroutine(self._put(token, data, ttl, new))

    async def _put(self, token: str, data: bytes, ttl: int, new: bool) -> None:
        if new:
            try:
                await self._cas.set_data(TEMP_GRUU_TABLE, token, data, 0, ttl)
                return
            except DataContentionError:
                pass  # somehow there already: overwrite it below
        for _ in range(_INDEX_ATTEMPTS):
            _, cas = await self._cas.get_data(TEMP_GRUU_TABLE, token)
            try:
                await self._cas.set_data(TEMP_GRUU_TABLE, token, data, cas, ttl)
                return
            except DataContentionError:
                continue
        raise DataContentionError("temp-gruu index record kept changing")


#: At most this many parsed AoRs are kept by :class:`RegistrationStore` (then it starts again).
_PARSED_AORS = 4096


@implementer(IRegistrationStore)
class RegistrationStore:
    """:class:`IRegistrationStore` over ``cas_store``'s ``reg`` table (see the module notes on
    lifetimes, tombstones and corrupt records). ``temp_gruus`` is the temporary GRUU index
    over the same store."""

    def __init__(self, cas_store: ICasStore) -> None:
        self._cas = cas_store
        self.temp_gruus = TempGruuStore(cas_store)
        # AoRs parsed, by their JSON: every call to a subscriber reads its AoR, which changes
        # only when it registers (AoRs are immutable: safe to share).
        self._parsed: dict[bytes, AoR] = {}

    def get_aor(self, aor_id: str) -> Deferred[tuple[Optional[AoR], int]]:
        def parse(result: tuple[Optional[bytes], int]) -> tuple[Optional[AoR], int]:
            data, cas = result
            if not data:
                return None, cas
            aor = self._parsed.get(data)
            if aor is not None:
                return aor, cas
            try:
                aor = AoR.from_json(records.loads(data, "AoR"))
            except (ParseError, RecursionError) as e:
                log.warn(
                    "Ignoring corrupt AoR record {aor_id}: {reason}",
                    aor_id=aor_id,
                    reason=_reason(e),
                )
                return None, cas
            if len(self._parsed) >= _PARSED_AORS:
                self._parsed.clear()
            self._parsed[data] = aor
            return aor, cas

        return self._cas.get_data(REGISTRATION_TABLE, aor_id).addCallback(parse)

    def set_aor(self, aor_id: str, aor: AoR, cas: int, now: float) -> Deferred[None]:
        expiry = aor.expiry()
        ttl = ttl_until(None if expiry is None else expiry + AOR_LINGER, now)
        data = records.dumps(aor.to_json()) if ttl > 0 else TOMBSTONE
        return _write(self._cas, REGISTRATION_TABLE, aor_id, data, cas, ttl)

    def delete_aor(self, aor_id: str) -> Deferred[None]:
        return self._cas.delete_data(REGISTRATION_TABLE, aor_id)


@implementer(IChallengeStore)
class ChallengeStore:
    """:class:`IChallengeStore` over ``cas_store``'s ``impi`` table, as
    ``{"authChallenges": [...]}`` (see the module notes on lifetimes, tombstones and corrupt
    records). Challenges are written as given: expired ones are dropped by the caller."""

    def __init__(self, cas_store: ICasStore) -> None:
        self._cas = cas_store

    def get_challenges(self, impi: str) -> Deferred[tuple[tuple[Challenge, ...], int]]:
        def parse(result: tuple[Optional[bytes], int]) -> tuple[tuple[Challenge, ...], int]:
            data, cas = result
            if not data:
                return (), cas
            try:
                return records.challenges_from_json(records.loads(data, "IMPI")), cas
            except (ParseError, RecursionError) as e:
                log.warn(
                    "Ignoring corrupt IMPI record {impi}: {reason}", impi=impi, reason=_reason(e)
                )
                return (), cas

        return self._cas.get_data(CHALLENGE_TABLE, impi).addCallback(parse)

    def set_challenges(
        self, impi: str, challenges: tuple[Challenge, ...], cas: int, now: float
    ) -> Deferred[None]:
        latest = max((c.expires for c in challenges), default=None)
        ttl = ttl_until(latest, now)
        data = records.dumps(records.challenges_to_json(challenges)) if ttl > 0 else TOMBSTONE
        return _write(self._cas, CHALLENGE_TABLE, impi, data, cas, ttl)
