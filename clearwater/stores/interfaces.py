"""The store interfaces (ARCHITECTURE.md §3): where sprout and homestead keep their state.

Sprout is stateless between transactions: registrations, authentication challenges, timers
and subscriber data live behind these interfaces. The embedded default keeps registrations,
challenges and timers in process memory and subscribers in a SQLite file; a cluster keeps
them in Redis (or registrations and challenges in memcached, with Clearwater's key layout).
Every implementation passes one conformance suite (``tests/conformance/stores``).

Two levels:

- :class:`ICasStore`: Clearwater's ``Store`` (cpp-common ``store.h``): tables of keys holding
  bytes with a CAS token and a lifetime. The memory, Redis and memcached back ends implement
  it; key ``K`` of table ``T`` is ``T\\\\K`` in memcached (``reg\\\\sip:alice@example.com``).
- :class:`IRegistrationStore` (table ``reg``) and :class:`IChallengeStore` (table ``impi``):
  typed records (:mod:`clearwater.stores.records`) over any :class:`ICasStore`, as JSON in
  Clearwater's layout.

:class:`ISubscriberStore` (provisioned subscribers: homestead's data) and
:class:`ITimerService` (Chronos' job) stand alone.

Every method returns a Deferred and never blocks. Failures: :class:`DataContentionError` (a CAS
write lost a race: re-read and retry), :class:`StoreUnavailableError` (the server is down or
refused: homestead answers 503, sprout 504 or 500), :class:`StoreTimeoutError` (no answer within
the store's timeout: 504).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred
from zope.interface import Interface

from clearwater.errors import ClearwaterError
from clearwater.stores.records import (
    AoR,
    Challenge,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    ServiceProfile,
)

__all__ = [
    "DataContentionError",
    "ICasStore",
    "IChallengeStore",
    "IRegistrationStore",
    "ISubscriberStore",
    "ITimerService",
    "NotFoundError",
    "StoreError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "TimerHandler",
]


class StoreError(ClearwaterError):
    """A store operation failed."""


class DataContentionError(StoreError):
    """A CAS write found the record changed (or, for CAS 0, already there): re-read, retry."""


class StoreUnavailableError(StoreError):
    """The store's server cannot be reached, refused the operation, or answered garbage."""


class StoreTimeoutError(StoreUnavailableError):
    """The store's server did not answer within the timeout."""


class NotFoundError(StoreError):
    """A subscriber-store operation named something that does not exist (an IRS, a service
    profile, a private or public identity); its message names it."""


class ICasStore(Interface):
    """Tables of keys holding bytes with a CAS token and a lifetime (Clearwater's Store).

    A CAS token is a positive int that changes on every write of a key; 0 stands for "no
    record". Lifetimes are whole seconds (at least 1); an expired record reads as absent. Empty
    data (``b""``) is a tombstone: it reads as absent, as Clearwater's deleted records did.
    """

    def get_data(table: str, key: str) -> Deferred[tuple[Optional[bytes], int]]:
        """``(data, cas)``, or ``(None, 0)`` when the key has no live record."""

    def set_data(table: str, key: str, data: bytes, cas: int, ttl: int) -> Deferred[None]:
        """Write ``data`` living ``ttl`` seconds, if the record's CAS is still ``cas`` (0: only
        if there is no live record). Fails with DataContentionError otherwise."""

    def delete_data(table: str, key: str) -> Deferred[None]:
        """Remove the record (no error if there is none)."""

    def close() -> Deferred[None]:
        """Release connections; the store is not used afterwards."""


class IRegistrationStore(Interface):
    """AoR id (the default IMPU) → :class:`~clearwater.stores.records.AoR` (spec §3.4)."""

    def get_aor(aor_id: str) -> Deferred[tuple[Optional[AoR], int]]:
        """``(record, cas)``; ``(None, cas)`` if there is none: the CAS is 0, or a tombstone's
        (an emptied record, kept briefly so that a stale writer loses) or a corrupt record's
        (logged), so that the next write replaces it. Expired bindings and subscriptions are
        not filtered here: that is :meth:`AoR.without_expired`'s job, with the caller's clock."""

    def set_aor(aor_id: str, aor: AoR, cas: int, now: float) -> Deferred[None]:
        """Write ``aor`` if its CAS is still ``cas``. The record lives until its latest
        binding or subscription expiry plus 10 s (spec §3.4: a timer pop still finds it);
        an AoR with neither is replaced by a tombstone living 1 s (a CAS write, so that it
        too loses to a newer record). DataContentionError on a lost race."""

    def delete_aor(aor_id: str) -> Deferred[None]:
        """Remove the record."""


class IChallengeStore(Interface):
    """IMPI → its outstanding authentication challenges (spec §3.2 IMPI store)."""

    def get_challenges(impi: str) -> Deferred[tuple[tuple[Challenge, ...], int]]:
        """``(challenges, cas)``; ``((), cas)`` if none, the CAS as
        :meth:`IRegistrationStore.get_aor` gives it."""

    def set_challenges(
        impi: str, challenges: tuple[Challenge, ...], cas: int, now: float
    ) -> Deferred[None]:
        """Write the IMPI's challenges if its CAS is still ``cas``; the record lives until the
        latest challenge expiry (none left, or all expired: a 1 s tombstone, as for an AoR).
        DataContentionError on a lost race."""


class ISubscriberStore(Interface):
    """Provisioned subscribers: homestead's data in HSS-less mode (spec §6.1, §6.6).

    The model is homestead-prov's: private identities with credentials; implicit
    registration sets (IRS, named by UUIDs) linking private identities to service profiles;
    a service profile's public identities and iFCs; and per IRS the registration state.
    A public identity belongs to exactly one service profile; a private identity may be in
    several IRSs. Methods that name a missing IRS, service profile or identity fail with
    NotFoundError: the list lookups (``irs_of_private``, ``privates_of_irs``,
    ``service_profiles_of_irs``, ``publics_of_irs``, ``publics_of_private``) and
    ``set_registration`` included. ``get_private``, ``get_public`` and ``get_service_profile``
    give None, ``get_registration`` NOT_REGISTERED, and ``dissociate`` never fails.
    """

    # -- private identities

    def put_private(identity: PrivateIdentity) -> Deferred[None]:
        """Create or replace a private identity."""

    def get_private(impi: str) -> Deferred[Optional[PrivateIdentity]]:
        """The private identity, or None."""

    def delete_private(impi: str) -> Deferred[None]:
        """Remove a private identity and its IRS associations (NotFoundError if absent)."""

    def advance_sqn(impi: str, expected: int, sqn: int) -> Deferred[bool]:
        """Set the AKA SQN to ``sqn`` if it is still ``expected`` (False otherwise: another
        vector was issued meanwhile; re-read and retry). NotFoundError if no AKA credentials."""

    # -- implicit registration sets

    def create_irs(irs: Optional[str] = None) -> Deferred[str]:
        """A new, empty IRS (a random UUID unless ``irs`` is given); returns its id."""

    def delete_irs(irs: str) -> Deferred[None]:
        """Remove an IRS with its service profiles, their public identities and its
        associations and registration state (NotFoundError if absent)."""

    def associate(irs: str, impi: str) -> Deferred[None]:
        """Link a private identity to an IRS (both must exist; idempotent)."""

    def dissociate(irs: str, impi: str) -> Deferred[None]:
        """Unlink them (idempotent)."""

    def irs_of_private(impi: str) -> Deferred[list[str]]:
        """The IRSs a private identity is in (sorted)."""

    def privates_of_irs(irs: str) -> Deferred[list[str]]:
        """The private identities in an IRS (sorted)."""

    # -- service profiles

    def create_service_profile(irs: str, ifcs_xml: str = "") -> Deferred[ServiceProfile]:
        """A new service profile in ``irs`` (NotFoundError if absent), with a random id."""

    def get_service_profile(irs: str, sp: str) -> Deferred[Optional[ServiceProfile]]:
        """The service profile, or None."""

    def set_ifcs(irs: str, sp: str, ifcs_xml: str) -> Deferred[None]:
        """Replace a service profile's iFC XML."""

    def delete_service_profile(irs: str, sp: str) -> Deferred[None]:
        """Remove a service profile and its public identities."""

    def service_profiles_of_irs(irs: str) -> Deferred[list[ServiceProfile]]:
        """The IRS's service profiles (sorted by id)."""

    # -- public identities

    def put_public(identity: PublicIdentity) -> Deferred[None]:
        """Create or replace a public identity in its service profile (which must exist);
        an IMPU already in another service profile is moved."""

    def get_public(impu: str) -> Deferred[Optional[PublicIdentity]]:
        """The public identity provisioned as exactly ``impu``, or None. Wildcard matching
        is the caller's: see :meth:`wildcard_publics`."""

    def delete_public(impu: str) -> Deferred[None]:
        """Remove a public identity (NotFoundError if absent)."""

    def publics_of_irs(irs: str) -> Deferred[list[PublicIdentity]]:
        """Every public identity of an IRS, in provisioning order (the first is the
        default public identity)."""

    def publics_of_private(impi: str) -> Deferred[list[str]]:
        """The IMPUs of every IRS the private identity is in (sorted, no repeats)."""

    def wildcard_publics() -> Deferred[list[PublicIdentity]]:
        """Every public identity that carries a wildcard."""

    def list_publics(after: str = "", limit: int = 1000) -> Deferred[list[PublicIdentity]]:
        """Public identities in IMPU order, those after ``after``, at most ``limit``
        (paging for ``list-users`` and the ``/public/`` listing)."""

    # -- registration state

    def get_registration(irs: str) -> Deferred[RegistrationState]:
        """The IRS's registration state (NOT_REGISTERED if never set)."""

    def set_registration(irs: str, state: RegistrationState) -> Deferred[None]:
        """Record the IRS's registration state."""

    def close() -> Deferred[None]:
        """Release files and connections."""


#: What runs when a timer pops: ``handler(timer_id, opaque)``; a Deferred result is waited
#: for. A handler that fails (or whose node dies first) has the pop delivered again.
TimerHandler = Callable[[str, dict[str, Any]], Optional[Deferred[None]]]


class ITimerService(Interface):
    """Timers that outlive a node: registration expiry, authentication timeouts, Rf interims
    (Chronos' job, spec §3.5, §6.3).

    A timer has an id, a ``kind`` naming the handler that runs on each pop (registered with
    :meth:`listen` on every node) and a JSON-ready ``opaque`` dict. Delivery is at least once:
    each pop goes to exactly one node under normal operation; if that node's handler fails
    or the node dies before finishing, the pop is delivered again (to any node) after the
    service's redelivery delay.
    """

    def listen(kind: str, handler: TimerHandler) -> None:
        """Run ``handler`` for pops of timers of ``kind`` on this node."""

    def set_timer(
        kind: str,
        interval: float,
        opaque: dict[str, Any],
        timer_id: Optional[str] = None,
        repeat_for: Optional[float] = None,
    ) -> Deferred[str]:
        """Pop in ``interval`` seconds, then every ``interval`` until ``repeat_for`` seconds
        have passed (default: once). With ``timer_id``, replace that timer (or create it
        with that id). Returns the timer's id."""

    def delete_timer(timer_id: str) -> Deferred[None]:
        """Cancel a timer (no error if it is unknown or has already popped)."""

    def close() -> Deferred[None]:
        """Stop popping timers on this node."""
