"""Identities as Clearwater derives them from URIs (sprout's ``public_id_from_uri`` and
``default_private_id_from_uri``), shared by the S-CSCF's stages."""

from __future__ import annotations

from clearwater.sip import SipUri, TelUri, Uri

__all__ = ["default_private_id", "public_id"]


def public_id(uri: Uri) -> str:
    """The public identity a URI names: a SIP URI without password, port, parameters and
    headers; ``tel:<number>``."""
    if isinstance(uri, SipUri):
        return str(uri.replace(password=None, port=None, params=(), headers=()))
    if isinstance(uri, TelUri):
        return "tel:" + uri.number
    return str(uri)


def default_private_id(uri: Uri, home_domain: str) -> str:
    """The private identity assumed when a request names none: ``user@host``,
    ``<number>@<home domain>``."""
    if isinstance(uri, SipUri):
        user = uri.user_unescaped
        return uri.host if not user else user + "@" + uri.host
    if isinstance(uri, TelUri):
        return uri.number + "@" + home_domain
    return str(uri)
