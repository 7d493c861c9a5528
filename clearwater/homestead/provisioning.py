"""Provisioning a subscriber in one call: a private identity with its credentials, an
implicit registration set, one service profile and its public identities (the subscriber
model of homestead-prov, spec §6.6). What tests, the all-in-one and tools use when they do
not go through homestead-prov's HTTP API."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Optional

from clearwater.sip.auth import digest_ha1
from clearwater.stores.interfaces import ISubscriberStore
from clearwater.stores.records import AkaCredentials, PrivateIdentity, PublicIdentity

__all__ = ["provision_subscriber", "public_identity_xml"]


def public_identity_xml(impu: str, barred: bool = False) -> str:
    """A ``<PublicIdentity>`` element (TS 29.228 Annex B) for ``impu``."""
    element = ET.Element("PublicIdentity")
    if barred:
        ET.SubElement(element, "BarringIndication").text = "1"
    ET.SubElement(element, "Identity").text = impu
    return ET.tostring(element, encoding="unicode")


async def provision_subscriber(
    store: ISubscriberStore,
    impi: str,
    impus: Sequence[str],
    *,
    realm: str,
    password: Optional[str] = None,
    aka: Optional[AkaCredentials] = None,
    ifcs_xml: str = "",
    barred: Sequence[str] = (),
) -> str:
    """Store ``impi`` (digest HA1 from ``password`` in ``realm``, the password itself kept
    for SHA-256 digest; and/or ``aka`` credentials) with one new implicit registration set
    holding ``impus`` (the first is the default identity; those in ``barred`` are barred) in
    one service profile with ``ifcs_xml``. Returns the set's id."""
    if password is None and aka is None:
        raise ValueError("a subscriber needs a password or AKA credentials")
    ha1 = digest_ha1(impi, realm, password) if password is not None else ""
    await store.put_private(
        PrivateIdentity(impi, realm, digest_ha1=ha1, plaintext_password=password, aka=aka)
    )
    irs = await store.create_irs()
    await store.associate(irs, impi)
    profile = await store.create_service_profile(irs, ifcs_xml)
    for impu in impus:
        is_barred = impu in barred
        await store.put_public(
            PublicIdentity(
                impu, irs, profile.sp, public_identity_xml(impu, is_barred), barred=is_barred
            )
        )
    return irs
