"""TLS settings for SIP over TLS and WSS (RFC 3261 §26.2.1, RFC 5922, RFC 5630).

:class:`TlsSettings` holds the operator's choices (certificate, key, CA file, whether peers are
verified, whether clients must present a certificate) and builds the pyOpenSSL options Twisted
needs:

- as a server: our certificate chain and key; with ``require_client_certificate`` (mutual TLS) the
  client's certificate must chain to the CA file.
- as a client: the server's certificate is verified against the CA file (or the platform's trust
  store) and its name is checked with ``service_identity`` against the target's domain (RFC 5922
  §7.1), which also goes out as SNI. Our own certificate is offered when one is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL.crypto import X509, PKey
from OpenSSL.SSL import Connection
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

__all__ = ["TlsSettings"]


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError("cannot read TLS " + what + " " + path + ": " + str(e.strerror)) from None


@attrs.frozen
class TlsSettings:
    """Certificates and verification rules for TLS listeners and outgoing TLS connections."""

    #: PEM file with our certificate (and any intermediate certificates after it).
    certificate: Optional[str] = None
    #: PEM file with our private key (may be the certificate file).
    key: Optional[str] = None
    #: PEM file with the CA certificates peers must chain to; None: the platform's trust store.
    ca: Optional[str] = None
    #: Verify servers we connect to (certificate chain and name). Turn off only for testing.
    verify_peer: bool = True
    #: Ask TLS clients for a certificate and refuse those without one that chains to ``ca``.
    require_client_certificate: bool = False

    def __attrs_post_init__(self) -> None:
        if (self.certificate is None) != (self.key is None):
            raise ValueError("a TLS certificate needs its key, and a key its certificate")
        if self.require_client_certificate and self.ca is None:
            raise ValueError("mutual TLS needs a CA file to check client certificates against")

    def _own_certificate(self) -> Optional[tuple[PKey, list[X509]]]:
        """Our key and certificate chain (leaf first), or None if none is configured."""
        if self.certificate is None or self.key is None:
            return None
        chain = _load_certificates(_read(self.certificate, "certificate"), self.certificate)
        key_pem = _read(self.key, "key")
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as e:
            raise ValueError("bad TLS key " + self.key + ": " + str(e)) from None
        return PKey.from_cryptography_key(key), chain  # type: ignore[arg-type]  # any PEM key type

    def _authorities(self) -> list[X509]:
        if self.ca is None:
            return []
        return _load_certificates(_read(self.ca, "CA file"), self.ca)

    def server_options(self, alpn: Sequence[bytes] = ()) -> ssl.CertificateOptions:
        """Options for a TLS listener offering the ALPN protocols ``alpn`` (RFC 7301; e.g.
        ``stun.turn``, RFC 7443). Raises ValueError without a certificate and key."""
        own = self._own_certificate()
        if own is None:
            raise ValueError("a TLS listener needs a certificate and a key")
        key, chain = own
        mutual = self.require_client_certificate
        return ssl.CertificateOptions(
            privateKey=key,
            certificate=chain[0],
            extraCertChain=chain[1:],
            verify=mutual,
            caCerts=self._authorities() if mutual else None,
            requireCertificate=mutual,
            acceptableProtocols=list(alpn) or None,
        )

    def client_options(self, server_name: str) -> IOpenSSLClientConnectionCreator:
        """Options for a connection to ``server_name`` (a domain or an IP address)."""
        own = self._own_certificate()
        if not self.verify_peer:
            return _Insecure(
                ssl.CertificateOptions(
                    privateKey=own[0] if own else None,
                    certificate=own[1][0] if own else None,
                    verify=False,
                )
            )
        # twisted.internet.ssl's trust helpers are untyped; their results are IOpenSSLTrustRoot.
        authorities = [ssl.Certificate(c) for c in self._authorities()]  # type: ignore[no-untyped-call]
        trust = (
            ssl.trustRootFromCertificates(authorities)  # type: ignore[no-untyped-call]
            if authorities
            else ssl.platformTrust()  # type: ignore[no-untyped-call]
        )
        own_options: dict[str, object] = {}
        if own is not None:
            own_options = {
                "privateKey": own[0],
                "certificate": own[1][0],
                "extraCertChain": own[1][1:],
            }
        creator: IOpenSSLClientConnectionCreator = ssl.optionsForClientTLS(
            server_name, trustRoot=trust, extraCertificateOptions=own_options
        )
        return creator


def _load_certificates(pem: bytes, path: str) -> list[X509]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise ValueError("bad TLS certificate file " + path + ": " + str(e)) from None
    return [X509.from_cryptography(c) for c in certificates]


@implementer(IOpenSSLClientConnectionCreator)
class _Insecure:
    """Client options that skip verification (``verify_peer=False``, tests only)."""

    def __init__(self, options: ssl.CertificateOptions) -> None:
        self._options = options

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> Connection:  # noqa: N802, N803
        connection = Connection(self._options.getContext(), None)
        connection.set_app_data(tlsProtocol)
        return connection
