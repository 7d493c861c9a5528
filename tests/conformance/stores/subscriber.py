"""Conformance tests for :class:`~clearwater.stores.interfaces.ISubscriberStore`:
homestead-prov's provisioning model (spec §6.6, §1.4 ``homestead_provisioning``) as homestead
serves it (spec §6.1)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Optional
from xml.sax.saxutils import escape

from twisted.internet.defer import Deferred
from zope.interface.verify import verifyObject

from clearwater.stores.interfaces import ISubscriberStore, NotFoundError, StoreUnavailableError
from clearwater.stores.records import (
    AkaCredentials,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    RegState,
    ServiceProfile,
)
from tests.conformance.stores import StoreConformanceBase, long_identity, run_concurrently

__all__ = ["SubscriberStoreConformance", "digest_private", "public_identity"]

#: TS 35.208 test set 1 (K, OPc, AMF, SQN).
TEST_SET_1 = AkaCredentials(
    k=bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc"),
    opc=bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf"),
    amf=bytes.fromhex("b9b9"),
    sqn=0xFF9BB4D0B607,
)

IFCS = (
    "<InitialFilterCriteria><Priority>0</Priority><TriggerPoint>"
    "<ConditionTypeCNF>0</ConditionTypeCNF><SPT><ConditionNegated>0</ConditionNegated>"
    "<Group>0</Group><Method>INVITE</Method></SPT></TriggerPoint><ApplicationServer>"
    "<ServerName>sip:mmtel.example.com</ServerName><DefaultHandling>0</DefaultHandling>"
    "</ApplicationServer></InitialFilterCriteria>"
)


def digest_private(impi: str, ha1: str = "5ebe2294ecd0e0f08eab7690d2a6ee69") -> PrivateIdentity:
    """A digest-only private identity."""
    return PrivateIdentity(impi=impi, realm="example.com", digest_ha1=ha1)


def public_identity(
    impu: str, irs: str, sp: str, barred: bool = False, wildcard: Optional[str] = None
) -> PublicIdentity:
    """A public identity with its ``<PublicIdentity>`` XML (TS 29.228 Annex B)."""
    xml = "<PublicIdentity><Identity>" + escape(impu) + "</Identity>"
    if barred:
        xml += "<BarringIndication>1</BarringIndication>"
    if wildcard is not None:
        xml += "<IdentityType>3</IdentityType><WildcardedIMPU>" + escape(wildcard)
        xml += "</WildcardedIMPU>"
    xml += "</PublicIdentity>"
    return PublicIdentity(impu=impu, irs=irs, sp=sp, xml=xml, barred=barred, wildcard=wildcard)


class SubscriberStoreConformance(StoreConformanceBase):
    """The :class:`ISubscriberStore` contract, for every back end (memory, SQLite, Redis).

    Hooks (see :mod:`tests.conformance.stores`):

    - ``make_subscriber_store(self) -> ISubscriberStore``: a store for this test, empty at the
      start of the test (cleanup via ``self.addCleanup``); every store made in one test sees
      the same data.
    - optional ``async def restart_server(self)`` (SQLite: whatever stands for a restart; the
      data must survive it, stores made before must still work), ``async def
      stop_server(self)``, the attributes ``outage_deadline`` and ``server_persists_data``,
      and ``async def advance(self, seconds)`` (needed only by those tests, to poll).

    The contract as tested, where the interface leaves room:

    - Methods naming a missing IRS, service profile or identity fail with NotFoundError whose
      message contains the missing name. That includes the list lookups
      (``irs_of_private``, ``privates_of_irs``, ``service_profiles_of_irs``,
      ``publics_of_irs``, ``publics_of_private``) and ``set_registration``; the ``get_*``
      lookups give None (``get_registration``: NOT_REGISTERED). ``dissociate`` never fails.
    - ``put_private`` of an existing IMPI replaces its credentials and keeps its IRSs.
    - ``publics_of_irs``: order of first provisioning across the IRS's service profiles;
      replacing an IMPU in the same service profile keeps its place, deleting and putting it
      again puts it last.
    - ``list_publics`` and ``wildcard_publics`` order by IMPU (code points).
    """

    if TYPE_CHECKING:

        def make_subscriber_store(self) -> ISubscriberStore:
            """An empty subscriber store for this test (hook)."""

    async def assert_not_found(self, d: Deferred[Any], *names: str) -> None:
        """``d`` fails with NotFoundError whose message contains each of ``names``."""
        try:
            await d
        except NotFoundError as e:
            for name in names:
                assert name in str(e)
            return
        self.fail("no NotFoundError for " + repr(names))

    async def provision(
        self, store: ISubscriberStore, impi: str, *impus: str
    ) -> tuple[str, ServiceProfile]:
        """A digest user: IMPI in a new IRS with one service profile holding ``impus``."""
        await store.put_private(digest_private(impi))
        irs = await store.create_irs()
        await store.associate(irs, impi)
        sp = await store.create_service_profile(irs, IFCS)
        for impu in impus:
            await store.put_public(public_identity(impu, irs, sp.sp))
        return irs, sp

    # ------------------------------------------------------------------ private identities

    async def test_provides_interface(self) -> None:
        assert verifyObject(ISubscriberStore, self.make_subscriber_store())

    async def test_digest_private_identity_round_trips(self) -> None:
        store = self.make_subscriber_store()
        alice = digest_private("alice@example.com")
        await store.put_private(alice)
        assert await store.get_private("alice@example.com") == alice

    async def test_plaintext_password_round_trips_and_none_stays_none(self) -> None:
        store = self.make_subscriber_store()
        with_password = PrivateIdentity(
            impi="bob@example.com",
            realm="example.com",
            digest_ha1="0f8b5f5d2d1b3c7e6a9d4c2b1a0f9e8d",
            plaintext_password="sécret pass:word",
        )
        empty_password = PrivateIdentity(
            impi="carol@example.com", realm="example.com", digest_ha1="", plaintext_password=""
        )
        await store.put_private(with_password)
        await store.put_private(empty_password)
        await store.put_private(digest_private("dave@example.com"))
        assert await store.get_private("bob@example.com") == with_password
        assert await store.get_private("carol@example.com") == empty_password
        dave = await store.get_private("dave@example.com")
        assert dave is not None
        assert dave.plaintext_password is None

    async def test_aka_credentials_round_trip(self) -> None:
        store = self.make_subscriber_store()
        aka_only = PrivateIdentity(
            impi="ue1@ims.example.com", realm="ims.example.com", aka=TEST_SET_1
        )
        both = PrivateIdentity(
            impi="ue2@ims.example.com",
            realm="ims.example.com",
            digest_ha1="5ebe2294ecd0e0f08eab7690d2a6ee69",
            aka=AkaCredentials(k=b"\x00" * 15 + b"\xff", opc=b"\xff\x00" * 8, sqn=2**48 - 1),
        )
        await store.put_private(aka_only)
        await store.put_private(both)
        assert await store.get_private("ue1@ims.example.com") == aka_only
        assert await store.get_private("ue2@ims.example.com") == both

    async def test_unknown_private_identity_is_none(self) -> None:
        store = self.make_subscriber_store()
        assert await store.get_private("nobody@example.com") is None

    async def test_put_private_replaces_credentials_and_keeps_irs(self) -> None:
        store = self.make_subscriber_store()
        irs, _ = await self.provision(store, "alice@example.com", "sip:alice@example.com")
        replaced = PrivateIdentity(
            impi="alice@example.com", realm="other.example.com", plaintext_password="new"
        )
        await store.put_private(replaced)
        assert await store.get_private("alice@example.com") == replaced
        assert await store.irs_of_private("alice@example.com") == [irs]
        assert await store.publics_of_private("alice@example.com") == ["sip:alice@example.com"]

    async def test_delete_private_removes_it_and_its_associations(self) -> None:
        store = self.make_subscriber_store()
        irs, _ = await self.provision(store, "alice@example.com", "sip:alice@example.com")
        await store.put_private(digest_private("alice2@example.com"))
        await store.associate(irs, "alice2@example.com")
        await store.delete_private("alice@example.com")
        assert await store.get_private("alice@example.com") is None
        assert await store.privates_of_irs(irs) == ["alice2@example.com"]
        assert await store.get_public("sip:alice@example.com") is not None
        await self.assert_not_found(store.irs_of_private("alice@example.com"), "alice@")

    async def test_delete_unknown_private_raises_not_found(self) -> None:
        store = self.make_subscriber_store()
        await self.assert_not_found(store.delete_private("nobody@example.com"), "nobody@")

    async def test_advance_sqn_is_compare_and_set(self) -> None:
        store = self.make_subscriber_store()
        aka = AkaCredentials(k=TEST_SET_1.k, opc=TEST_SET_1.opc, amf=b"\x80\x00", sqn=5)
        ue = PrivateIdentity(
            impi="ue@ims.example.com", realm="ims.example.com", digest_ha1="ab" * 16, aka=aka
        )
        await store.put_private(ue)
        assert await store.advance_sqn("ue@ims.example.com", 5, 37)
        got = await store.get_private("ue@ims.example.com")
        assert got is not None and got.aka is not None
        assert got.aka.sqn == 37
        assert ((got.aka.k, got.aka.opc, got.aka.amf)) == (
            (TEST_SET_1.k, TEST_SET_1.opc, b"\x80\x00")
        )
        assert ((got.realm, got.digest_ha1)) == (("ims.example.com", "ab" * 16))
        assert not await store.advance_sqn("ue@ims.example.com", 5, 40)
        got = await store.get_private("ue@ims.example.com")
        assert got is not None and got.aka is not None
        assert got.aka.sqn == 37
        assert await store.advance_sqn("ue@ims.example.com", 37, 2**48 - 1)

    async def test_advance_sqn_without_aka_credentials_raises_not_found(self) -> None:
        store = self.make_subscriber_store()
        await store.put_private(digest_private("alice@example.com"))
        await self.assert_not_found(store.advance_sqn("alice@example.com", 0, 1), "alice@")
        await self.assert_not_found(store.advance_sqn("nobody@example.com", 0, 1), "nobody@")

    async def test_concurrent_advance_sqn_has_one_winner(self) -> None:
        store = self.make_subscriber_store()
        await store.put_private(
            PrivateIdentity(impi="ue@ims.example.com", realm="x", aka=TEST_SET_1)
        )
        start = TEST_SET_1.sqn
        won = await run_concurrently(
            *(store.advance_sqn("ue@ims.example.com", start, start + 32 * n) for n in range(1, 11))
        )
        assert won.count(True) == 1
        got = await store.get_private("ue@ims.example.com")
        assert got is not None and got.aka is not None
        assert got.aka.sqn == start + 32 * (won.index(True) + 1)

    # ------------------------------------------------------------------ IRSs

    async def test_create_irs_gives_distinct_uuids(self) -> None:
        store = self.make_subscriber_store()
        ids = [await store.create_irs() for _ in range(5)]
        assert len(set(ids)) == 5
        for irs in ids:
            uuid.UUID(irs)
            assert await store.privates_of_irs(irs) == []
            assert await store.service_profiles_of_irs(irs) == []
            assert await store.publics_of_irs(irs) == []

    async def test_create_irs_with_a_given_id(self) -> None:
        store = self.make_subscriber_store()
        chosen = "6f1c2a8e-0d4b-4e6f-9a2b-3c4d5e6f7a8b"
        assert await store.create_irs(chosen) == chosen
        await store.put_private(digest_private("alice@example.com"))
        await store.associate(chosen, "alice@example.com")
        assert await store.irs_of_private("alice@example.com") == [chosen]

    async def test_delete_unknown_irs_raises_not_found(self) -> None:
        store = self.make_subscriber_store()
        missing = str(uuid.uuid4())
        await self.assert_not_found(store.delete_irs(missing), missing)

    async def test_associations_are_sorted_and_idempotent(self) -> None:
        store = self.make_subscriber_store()
        irs_a = await store.create_irs()
        irs_b = await store.create_irs()
        for impi in ("carol@example.com", "alice@example.com", "bob@example.com"):
            await store.put_private(digest_private(impi))
            await store.associate(irs_a, impi)
        await store.associate(irs_a, "alice@example.com")
        await store.associate(irs_b, "alice@example.com")
        assert await store.privates_of_irs(irs_a) == [
            "alice@example.com",
            "bob@example.com",
            "carol@example.com",
        ]
        assert await store.privates_of_irs(irs_b) == ["alice@example.com"]
        assert await store.irs_of_private("alice@example.com") == sorted([irs_a, irs_b])
        assert await store.irs_of_private("bob@example.com") == [irs_a]

    async def test_associate_needs_both_ends(self) -> None:
        store = self.make_subscriber_store()
        irs = await store.create_irs()
        missing_irs = str(uuid.uuid4())
        await store.put_private(digest_private("alice@example.com"))
        await self.assert_not_found(store.associate(missing_irs, "alice@example.com"), missing_irs)
        await self.assert_not_found(store.associate(irs, "nobody@example.com"), "nobody@")
        assert await store.privates_of_irs(irs) == []
        assert await store.irs_of_private("alice@example.com") == []

    async def test_dissociate_is_idempotent(self) -> None:
        store = self.make_subscriber_store()
        irs, _ = await self.provision(store, "alice@example.com", "sip:alice@example.com")
        await store.dissociate(irs, "alice@example.com")
        await store.dissociate(irs, "alice@example.com")
        assert await store.privates_of_irs(irs) == []
        assert await store.irs_of_private("alice@example.com") == []
        assert await store.publics_of_private("alice@example.com") == []
        assert await store.get_private("alice@example.com") is not None
        assert len(await store.publics_of_irs(irs)) == 1

    async def test_list_lookups_name_what_is_missing(self) -> None:
        store = self.make_subscriber_store()
        missing = str(uuid.uuid4())
        await self.assert_not_found(store.privates_of_irs(missing), missing)
        await self.assert_not_found(store.service_profiles_of_irs(missing), missing)
        await self.assert_not_found(store.publics_of_irs(missing), missing)
        await self.assert_not_found(store.irs_of_private("nobody@example.com"), "nobody@")
        await self.assert_not_found(store.publics_of_private("nobody@example.com"), "nobody@")

    async def test_delete_irs_cascades(self) -> None:
        store = self.make_subscriber_store()
        irs, sp = await self.provision(
            store, "alice@example.com", "sip:alice@example.com", "tel:+15551230000"
        )
        await store.put_public(
            public_identity("sip:!.*!@example.com", irs, sp.sp, wildcard="sip:!.*!@example.com")
        )
        sp2 = await store.create_service_profile(irs)
        await store.put_public(public_identity("sip:alice2@example.com", irs, sp2.sp))
        other_irs, _ = await self.provision(store, "bob@example.com", "sip:bob@example.com")
        await store.associate(other_irs, "alice@example.com")
        await store.set_registration(irs, RegistrationState(RegState.REGISTERED, "sip:s", "a"))

        await store.delete_irs(irs)

        assert await store.get_private("alice@example.com") is not None
        assert await store.irs_of_private("alice@example.com") == [other_irs]
        assert await store.publics_of_private("alice@example.com") == ["sip:bob@example.com"]
        assert await store.get_service_profile(irs, sp.sp) is None
        assert await store.get_service_profile(irs, sp2.sp) is None
        for impu in ("sip:alice@example.com", "tel:+15551230000", "sip:alice2@example.com"):
            assert await store.get_public(impu) is None
        assert await store.wildcard_publics() == []
        assert [p.impu for p in await store.list_publics()] == ["sip:bob@example.com"]
        assert await store.get_registration(irs) == RegistrationState()
        await self.assert_not_found(store.privates_of_irs(irs), irs)
        # The same id again is a new, empty IRS.
        assert await store.create_irs(irs) == irs
        assert await store.privates_of_irs(irs) == []
        assert await store.publics_of_irs(irs) == []
        assert await store.get_registration(irs) == RegistrationState()

    # ------------------------------------------------------------------ service profiles

    async def test_service_profile_round_trip(self) -> None:
        store = self.make_subscriber_store()
        irs = await store.create_irs()
        sp = await store.create_service_profile(irs, IFCS)
        assert ((sp.irs, sp.ifcs_xml)) == ((irs, IFCS))
        assert sp.sp
        assert await store.get_service_profile(irs, sp.sp) == sp
        empty = await store.create_service_profile(irs)
        assert empty.ifcs_xml == ""
        assert empty.sp != sp.sp
        assert await store.get_service_profile(irs, empty.sp) == empty

    async def test_service_profile_lookups_miss_cleanly(self) -> None:
        store = self.make_subscriber_store()
        irs = await store.create_irs()
        other = await store.create_irs()
        sp = await store.create_service_profile(irs)
        assert await store.get_service_profile(irs, "no-such-sp") is None
        assert await store.get_service_profile(other, sp.sp) is None
        missing = str(uuid.uuid4())
        await self.assert_not_found(store.create_service_profile(missing, IFCS), missing)

    async def test_set_ifcs_replaces_them(self) -> None:
        store = self.make_subscriber_store()
        irs = await store.create_irs()
        sp = await store.create_service_profile(irs, IFCS)
        new_ifcs = IFCS.replace("mmtel", "ümlaut-as").replace("INVITE", "MESSAGE")
        await store.set_ifcs(irs, sp.sp, new_ifcs)
        assert await store.get_service_profile(irs, sp.sp) == ServiceProfile(irs, sp.sp, new_ifcs)
        await self.assert_not_found(store.set_ifcs(irs, "no-such-sp", IFCS), "no-such-sp")

    async def test_service_profiles_of_irs_are_sorted_by_id(self) -> None:
        store = self.make_subscriber_store()
        irs = await store.create_irs()
        other = await store.create_irs()
        made = [await store.create_service_profile(irs, IFCS + str(n)) for n in range(5)]
        await store.create_service_profile(other)
        assert await store.service_profiles_of_irs(irs) == sorted(made, key=lambda sp: sp.sp)

    async def test_delete_service_profile_removes_its_publics_only(self) -> None:
        store = self.make_subscriber_store()
        irs, sp = await self.provision(store, "alice@example.com", "sip:alice@example.com")
        sp2 = await store.create_service_profile(irs)
        await store.put_public(public_identity("sip:alice-work@example.com", irs, sp2.sp))
        await store.delete_service_profile(irs, sp.sp)
        assert await store.get_service_profile(irs, sp.sp) is None
        assert await store.get_public("sip:alice@example.com") is None
        assert await store.service_profiles_of_irs(irs) == [sp2]
        assert [p.impu for p in await store.publics_of_irs(irs)] == ["sip:alice-work@example.com"]
        assert await store.privates_of_irs(irs) == ["alice@example.com"]
        await self.assert_not_found(store.delete_service_profile(irs, sp.sp), sp.sp)

    # ------------------------------------------------------------------ public identities

    async def test_public_identity_round_trips(self) -> None:
        store = self.make_subscriber_store()
        irs, sp = await self.provision(store, "alice@example.com")
        plain = public_identity("sip:alice@example.com", irs, sp.sp)
        barred = public_identity("tel:+15551230000", irs, sp.sp, barred=True)
        await store.put_public(plain)
        await store.put_public(barred)
        assert await store.get_public("sip:alice@example.com") == plain
        assert await store.get_public("tel:+15551230000") == barred
        assert await store.get_public("sip:Alice@example.com") is None
        assert await store.get_public("sip:nobody@example.com") is None

    async def test_put_public_needs_its_service_profile(self) -> None:
        store = self.make_subscriber_store()
        irs = await store.create_irs()
        other = await store.create_irs()
        sp = await store.create_service_profile(irs)
        await self.assert_not_found(
            store.put_public(public_identity("sip:a@example.com", irs, "no-such-sp")),
            "no-such-sp",
        )
        # The service profile exists, but in another IRS.
        await self.assert_not_found(
            store.put_public(public_identity("sip:a@example.com", other, sp.sp)), sp.sp
        )
        assert await store.get_public("sip:a@example.com") is None

    async def test_put_public_moves_an_impu_between_service_profiles(self) -> None:
        store = self.make_subscriber_store()
        irs_a, sp_a = await self.provision(store, "alice@example.com", "sip:shared@example.com")
        irs_b, sp_b = await self.provision(store, "bob@example.com", "sip:bob@example.com")
        moved = public_identity("sip:shared@example.com", irs_b, sp_b.sp, barred=True)
        await store.put_public(moved)
        assert await store.get_public("sip:shared@example.com") == moved
        assert await store.publics_of_irs(irs_a) == []
        assert sorted(p.impu for p in await store.publics_of_irs(irs_b)) == [
            "sip:bob@example.com",
            "sip:shared@example.com",
        ]
        assert await store.publics_of_private("alice@example.com") == []
        assert await store.publics_of_private("bob@example.com") == [
            "sip:bob@example.com",
            "sip:shared@example.com",
        ]
        await store.delete_service_profile(irs_a, sp_a.sp)
        assert await store.get_public("sip:shared@example.com") == moved

    async def test_delete_public(self) -> None:
        store = self.make_subscriber_store()
        irs, _ = await self.provision(
            store, "alice@example.com", "sip:alice@example.com", "tel:+15551230000"
        )
        await store.delete_public("sip:alice@example.com")
        assert await store.get_public("sip:alice@example.com") is None
        assert [p.impu for p in await store.publics_of_irs(irs)] == ["tel:+15551230000"]
        assert [p.impu for p in await store.list_publics()] == ["tel:+15551230000"]
        await self.assert_not_found(
            store.delete_public("sip:alice@example.com"), "sip:alice@example.com"
        )

    async def test_publics_of_irs_in_provisioning_order(self) -> None:
        store = self.make_subscriber_store()
        irs, sp1 = await self.provision(store, "alice@example.com")
        sp2 = await store.create_service_profile(irs)
        order = [
            ("sip:zed@example.com", sp1.sp),
            ("sip:alice@example.com", sp2.sp),
            ("tel:+15551230000", sp1.sp),
            ("sip:bob@example.com", sp2.sp),
        ]
        for impu, sp in order:
            await store.put_public(public_identity(impu, irs, sp))
        expected = [impu for impu, _ in order]
        assert [p.impu for p in await store.publics_of_irs(irs)] == expected
        # Replacing an IMPU in place keeps its position (the default IMPU stays the default).
        await store.put_public(public_identity("sip:zed@example.com", irs, sp1.sp, barred=True))
        publics = await store.publics_of_irs(irs)
        assert [p.impu for p in publics] == expected
        assert publics[0].barred
        # Deleting and provisioning again puts it last.
        await store.delete_public("sip:alice@example.com")
        await store.put_public(public_identity("sip:alice@example.com", irs, sp2.sp))
        assert [p.impu for p in await store.publics_of_irs(irs)] == (
            [
                "sip:zed@example.com",
                "tel:+15551230000",
                "sip:bob@example.com",
                "sip:alice@example.com",
            ]
        )

    async def test_publics_of_private_spans_its_irss(self) -> None:
        store = self.make_subscriber_store()
        irs_a, _ = await self.provision(
            store, "alice@example.com", "tel:+15551230000", "sip:alice@example.com"
        )
        irs_b, _ = await self.provision(store, "shared@example.com", "sip:shared@example.com")
        await store.associate(irs_b, "alice@example.com")
        await store.associate(irs_a, "shared@example.com")
        assert await store.publics_of_private("alice@example.com") == [
            "sip:alice@example.com",
            "sip:shared@example.com",
            "tel:+15551230000",
        ]
        await store.put_private(digest_private("lonely@example.com"))
        assert await store.publics_of_private("lonely@example.com") == []

    async def test_wildcard_publics(self) -> None:
        store = self.make_subscriber_store()
        irs, sp = await self.provision(store, "pbx@example.com", "sip:pbx@example.com")
        wild_b = public_identity(
            "sip:!.*!@b.example.com", irs, sp.sp, wildcard="sip:!.*!@b.example.com"
        )
        wild_a = public_identity("tel:+1555!.*!", irs, sp.sp, wildcard="tel:+1555!.*!")
        await store.put_public(wild_b)
        await store.put_public(wild_a)
        assert await store.wildcard_publics() == [wild_b, wild_a]
        await store.delete_public("tel:+1555!.*!")
        assert await store.wildcard_publics() == [wild_b]
        assert await store.get_public("sip:!.*!@b.example.com") == wild_b

    async def test_list_publics_pages_in_impu_order(self) -> None:
        store = self.make_subscriber_store()
        irs, sp = await self.provision(store, "many@example.com")
        impus = [f"sip:user{n:02d}@example.com" for n in range(23)]
        impus += ["sip:Zed@example.com", "tel:+15551230000", "sip:ünïcode@example.com"]
        for impu in reversed(impus):
            await store.put_public(public_identity(impu, irs, sp.sp))
        expected = sorted(impus)
        assert [p.impu for p in await store.list_publics()] == expected
        pages: list[list[str]] = []
        after = ""
        for _ in range(5):  # bounded: a store that ignores `after` must fail, not hang
            page = [p.impu for p in await store.list_publics(after=after, limit=10)]
            if not page:
                break
            pages.append(page)
            after = page[-1]
        assert [len(p) for p in pages] == [10, 10, 6]
        assert [impu for page in pages for impu in page] == expected
        between = await store.list_publics(after="sip:user05@example.comm", limit=3)
        assert [p.impu for p in between] == (
            expected[expected.index("sip:user06@example.com") :][:3]
        )
        assert await store.list_publics(after=expected[-1]) == []
        listed = await store.list_publics(limit=1)
        assert listed == [public_identity(expected[0], irs, sp.sp)]

    async def test_long_non_ascii_identities(self) -> None:
        store = self.make_subscriber_store()
        impu = long_identity()
        impi = long_identity(scheme="")
        irs, sp = await self.provision(store, impi, impu)
        assert await store.get_private(impi) == digest_private(impi)
        assert await store.get_public(impu) == public_identity(impu, irs, sp.sp)
        assert await store.publics_of_private(impi) == [impu]
        assert await store.irs_of_private(impi) == [irs]
        assert [p.impu for p in await store.list_publics()] == [impu]
        assert await store.get_public(impu[:-1]) is None
        await store.delete_public(impu)
        await store.delete_private(impi)
        assert await store.get_private(impi) is None

    # ------------------------------------------------------------------ registration state

    async def test_registration_state_defaults_to_not_registered(self) -> None:
        store = self.make_subscriber_store()
        irs = await store.create_irs()
        assert await store.get_registration(irs) == RegistrationState()
        assert await store.get_registration(str(uuid.uuid4())) == RegistrationState()
        assert RegistrationState().state == RegState.NOT_REGISTERED

    async def test_registration_state_round_trips(self) -> None:
        store = self.make_subscriber_store()
        irs = await store.create_irs()
        other = await store.create_irs()
        registered = RegistrationState(
            RegState.REGISTERED,
            scscf="sip:scscf.sprout.example.com:5054;transport=tcp",
            impi="alice@example.com",
            updated=1700000123.25,
        )
        await store.set_registration(irs, registered)
        assert await store.get_registration(irs) == registered
        assert await store.get_registration(other) == RegistrationState()
        unregistered = RegistrationState(
            RegState.UNREGISTERED, "sip:scscf2.example.com", "", 1700000999.5
        )
        await store.set_registration(irs, unregistered)
        assert await store.get_registration(irs) == unregistered

    async def test_set_registration_of_unknown_irs_raises_not_found(self) -> None:
        store = self.make_subscriber_store()
        missing = str(uuid.uuid4())
        await self.assert_not_found(
            store.set_registration(missing, RegistrationState(RegState.REGISTERED)), missing
        )
        assert await store.get_registration(missing) == RegistrationState()

    # ------------------------------------------------------------------ sharing, servers

    async def test_stores_made_in_one_test_share_data(self) -> None:
        first = self.make_subscriber_store()
        irs, sp = await self.provision(first, "alice@example.com", "sip:alice@example.com")
        second = self.make_subscriber_store()
        assert await second.get_private("alice@example.com") == digest_private("alice@example.com")
        assert await second.get_public("sip:alice@example.com") == public_identity(
            "sip:alice@example.com", irs, sp.sp
        )

    async def test_data_survives_a_restart(self) -> None:
        store = self.make_subscriber_store()
        irs, sp = await self.provision(store, "alice@example.com", "sip:alice@example.com")
        state = RegistrationState(RegState.REGISTERED, "sip:scscf.example.com", "alice", 5.5)
        await store.set_registration(irs, state)
        await self.restart()
        if not self.persists:
            return
        fresh = self.make_subscriber_store()
        assert await fresh.get_private("alice@example.com") == digest_private("alice@example.com")
        assert await fresh.publics_of_irs(irs) == [
            public_identity("sip:alice@example.com", irs, sp.sp)
        ]
        assert await fresh.irs_of_private("alice@example.com") == [irs]
        assert await fresh.get_service_profile(irs, sp.sp) == sp
        assert await fresh.get_registration(irs) == state

    async def test_store_works_again_after_a_restart(self) -> None:
        store = self.make_subscriber_store()
        await store.put_private(digest_private("alice@example.com"))
        await self.restart()

        async def works() -> bool:
            try:
                await store.put_private(digest_private("bob@example.com"))
            except StoreUnavailableError:
                return False
            return True

        assert await self.poll_until(works, self.deadline)
        assert await store.get_private("bob@example.com") == digest_private("bob@example.com")

    async def test_server_down_fails_within_the_deadline(self) -> None:
        store = self.make_subscriber_store()
        await store.put_private(digest_private("alice@example.com"))
        await self.stop()
        for d in (
            store.get_private("alice@example.com"),
            store.put_private(digest_private("bob@example.com")),
            store.list_publics(),
            self.make_subscriber_store().get_private("alice@example.com"),
        ):
            assert await self.settles_within(d, self.deadline), "hung with the server down"
            self.assert_failed(d, StoreUnavailableError)
