"""Which sproutlet a request is for: Clearwater's matching rules (spec §2.4).

The sproutlet proxy looks at the top Route URI, or the Request-URI when there is no Route, and
tries in order (``SproutletProxy::target_sproutlet`` / ``match_sproutlet_from_uri``):

1. the ``service`` URI parameter, when the host is one of this node's names
   (``sip:sprout.example.com;lr;service=registrar``: how internal hops are addressed);
2. the first DNS label of the host, when the rest is one of this node's names
   (``scscf.sprout.example.com`` → ``scscf``); IP literals have no labels to match;
3. the user part, when the host is one of this node's names (``sip:scscf@10.0.0.1``);
4. the port: when the host is this node's, the sproutlet owning the port the request arrived on,
   else the URI's port.

"This node's names" are the local hosts (the sprout hostname, local and public IP and hostname,
the home domains, the local alias list) and, where allowed, the remote ones (the remote alias
list: served when a request comes from the wire, and for internal hops unless the caller
forbids it). Names are looked up among the sproutlets' service names and aliases, which must be
unique (:func:`build_table` refuses a clash, as Clearwater refuses to start).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Optional

import attrs

from clearwater.sip import SipUri, Uri
from clearwater.sip.proxy import host_key
from clearwater.sip.sproutlet._api import Sproutlet
from clearwater.sip.transport import is_ip_literal

__all__ = ["Match", "ServiceTable", "build_table", "match_sproutlet"]


@attrs.frozen
class Match:
    """A request's sproutlet and the name it was reached by (its service name or an alias)."""

    sproutlet: Sproutlet
    alias: str


@attrs.frozen
class ServiceTable:
    """Sproutlets by name (service names and aliases, lower-case) and by port, and this node's
    local and remote host names (normalised with :func:`_host_key`)."""

    by_name: Mapping[str, Sproutlet]
    by_port: Mapping[int, Sproutlet]
    local_hosts: frozenset[str]
    remote_hosts: frozenset[str]


def build_table(
    sproutlets: Iterable[Sproutlet],
    *,
    local_hosts: Iterable[str],
    remote_hosts: Iterable[str] = (),
) -> ServiceTable:
    """The matching table; raises ValueError when two sproutlets claim a name or a port."""
    by_name: dict[str, Sproutlet] = {}
    by_port: dict[int, Sproutlet] = {}
    for sproutlet in sproutlets:
        for name in dict.fromkeys(n.lower() for n in (sproutlet.service_name, *sproutlet.aliases)):
            other = by_name.setdefault(name, sproutlet)
            if other is not sproutlet:
                raise _clash(other, sproutlet, "answer to " + repr(name))
        if sproutlet.port:
            other = by_port.setdefault(sproutlet.port, sproutlet)
            if other is not sproutlet:
                raise _clash(other, sproutlet, "listen on port " + str(sproutlet.port))
    return ServiceTable(
        by_name,
        by_port,
        frozenset(host_key(h) for h in local_hosts),
        frozenset(host_key(h) for h in remote_hosts),
    )


def match_sproutlet(
    table: ServiceTable,
    uri: Uri,
    *,
    arrival_port: Optional[int] = None,
    allow_remote: bool = True,
) -> Optional[Match]:
    """The sproutlet ``uri`` (top Route, else Request-URI) designates, or None (spec §2.4).

    ``arrival_port`` is the local port the request came in on (None for an internal hop);
    ``allow_remote`` says whether the remote alias list counts as this node's names.
    """
    if not isinstance(uri, SipUri):
        return None
    host = host_key(uri.host)
    ours = host in table.local_hosts or (allow_remote and host in table.remote_hosts)
    if ours:
        service = uri.param("service")
        if service:
            found = _named(table, service)
            if found is not None:
                return found
    if not is_ip_literal(host):
        label, dot, rest = host.partition(".")
        if dot and (rest in table.local_hosts or (allow_remote and rest in table.remote_hosts)):
            found = _named(table, label)
            if found is not None:
                return found
    if not ours:
        return None
    if uri.user:
        found = _named(table, uri.user)
        if found is not None:
            return found
    for port in (arrival_port, uri.port):
        sproutlet = table.by_port.get(port) if port else None
        if sproutlet is not None:
            return Match(sproutlet, sproutlet.service_name)
    return None


def _clash(first: Sproutlet, second: Sproutlet, what: str) -> ValueError:
    return ValueError(
        "sproutlets "
        + repr(first.service_name)
        + " and "
        + repr(second.service_name)
        + " both "
        + what
    )


def _named(table: ServiceTable, name: str) -> Optional[Match]:
    sproutlet = table.by_name.get(name.lower())
    return None if sproutlet is None else Match(sproutlet, name.lower())
