"""Diameter options shared by the functions that speak it (homestead's Cx, ralf's Rf): TLS
(RFC 6733 §2.1: TLS from the first byte) for the node's listener and its outgoing
connections.

``--diameter-tls-cert`` and ``--diameter-tls-key`` are our certificate and key (sent to peers
that connect to ``--diameter-tls-port``, and to peers we connect to over TLS if they ask for a
client certificate); ``--diameter-tls-ca`` the CA certificates a peer's certificate must chain
to (default: the system's trust store). A peer's certificate must name its Diameter identity.
"""

from __future__ import annotations

from typing import Any, Optional

import attrs
from twisted.python import usage

from clearwater.services._options import ConfigOptions, Setting, port_number, readable_file

__all__ = [
    "DIAMETER_TLS_CA",
    "DIAMETER_TLS_CERT",
    "DIAMETER_TLS_KEY",
    "DIAMETER_TLS_PORT",
    "DiameterTls",
    "diameter_tls",
    "node_tls",
]

DIAMETER_TLS_CERT = Setting(
    "diameter-tls-cert", None, readable_file, help="PEM certificate (chain) for Diameter over TLS"
)
DIAMETER_TLS_KEY = Setting(
    "diameter-tls-key", None, readable_file, help="PEM private key for Diameter over TLS"
)
DIAMETER_TLS_CA = Setting(
    "diameter-tls-ca",
    None,
    readable_file,
    help="PEM CA certificates Diameter peers' certificates must chain to",
    default_help="the system's trust store",
)
DIAMETER_TLS_PORT = Setting(
    "diameter-tls-port",
    None,
    port_number,
    "0",
    "Port peers may connect to over TLS (RFC 6733: 5658), on --local-ip; 0: none; needs "
    "--diameter-tls-cert and --diameter-tls-key",
)


@attrs.frozen
class DiameterTls:
    """Validated Diameter TLS settings."""

    cert: Optional[str] = None
    key: Optional[str] = None
    ca: Optional[str] = None
    port: int = 0  # 0: no TLS listener


def diameter_tls(options: ConfigOptions, peers_over_tls: bool, flag: str) -> Optional[DiameterTls]:
    """The TLS settings of ``options`` (None when nothing uses TLS); ``peers_over_tls`` is
    whether the ``--<flag>`` option asks for TLS to the peers we connect to."""
    cert = options.setting_value(DIAMETER_TLS_CERT)
    key = options.setting_value(DIAMETER_TLS_KEY)
    ca = options.setting_value(DIAMETER_TLS_CA)
    port = options.required_value(DIAMETER_TLS_PORT)
    if (cert is None) != (key is None):
        raise usage.UsageError("--diameter-tls-cert and --diameter-tls-key go together")
    if port and cert is None:
        raise usage.UsageError(
            "--diameter-tls-port needs --diameter-tls-cert and --diameter-tls-key"
        )
    if not port and not peers_over_tls:
        if cert is not None or ca is not None:
            raise usage.UsageError(
                f"--diameter-tls-cert/-key/-ca are used only with --diameter-tls-port or --{flag}"
            )
        return None
    return DiameterTls(cert, key, ca, port)


def node_tls(tls: Optional[DiameterTls], local_ip: str) -> dict[str, Any]:
    """The TLS arguments of a :class:`~clearwater.diameter.node.DiameterNode` for ``tls``."""
    if tls is None:
        return {}
    from clearwater.sip.transport import TlsSettings

    settings = TlsSettings(certificate=tls.cert, key=tls.key, ca=tls.ca)
    arguments: dict[str, Any] = {"tls_client": settings.client_options}
    if tls.port:
        arguments["tls_listen"] = (tls.port, local_ip)
        arguments["tls_server"] = settings.server_options()
    return arguments
