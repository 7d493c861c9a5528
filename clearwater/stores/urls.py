"""Store URLs: how operators name a store on the command line (issue #5, ARCHITECTURE.md §3).

- ``memory:`` — in this process; gone when it stops (registrations, challenges, timers by
  default: Clearwater's memcached kept no more than that across a restart either);
- ``sqlite:PATH`` — a SQLite file (provisioned subscribers: the embedded default); a relative
  path is made absolute when the URL is parsed, since twistd may change directory later;
- ``redis://HOST[:PORT][/DB]`` — a Redis server (port 6379, database 0 by default);
- ``memcached://HOST[:PORT]`` — a memcached server (port 11211), Clearwater's key layout.

:func:`parse_store_url` checks the syntax and gives a :class:`StoreUrl`; whether a kind of store
can hold a kind of data (memcached holds no subscribers) is the caller's question, answered by
the ``kinds`` argument of :func:`parse_store_url`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Collection
from typing import Optional
from urllib.parse import urlsplit

import attrs
from typing_extensions import override

__all__ = ["StoreUrl", "parse_store_url"]

_DEFAULT_PORTS = {"redis": 6379, "memcached": 11211}
_HOST_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


@attrs.frozen
class StoreUrl:
    """A parsed store URL: ``kind`` is ``memory``, ``sqlite``, ``redis`` or ``memcached``."""

    kind: str
    path: str = ""  # sqlite: the absolute file path
    host: str = ""  # redis, memcached
    port: int = 0
    db: int = 0  # redis

    @override
    def __str__(self) -> str:
        if self.kind == "memory":
            return "memory:"
        if self.kind == "sqlite":
            return "sqlite:" + self.path
        host = "[" + self.host + "]" if ":" in self.host else self.host
        suffix = "/" + str(self.db) if self.kind == "redis" else ""
        return f"{self.kind}://{host}:{self.port}{suffix}"


def parse_store_url(text: str, kinds: Optional[Collection[str]] = None) -> StoreUrl:
    """Parse a store URL; ValueError with a message fit for a usage error otherwise.

    ``kinds`` limits the kinds accepted (e.g. ``("memory", "sqlite", "redis")`` for
    subscribers).
    """
    scheme, colon, rest = text.partition(":")
    kind = scheme.lower()
    if not colon or kind not in ("memory", "sqlite", "redis", "memcached"):
        raise ValueError(
            "expected memory:, sqlite:PATH, redis://HOST:PORT/DB or memcached://HOST:PORT, "
            "not " + repr(text)
        )
    if kinds is not None and kind not in kinds:
        raise ValueError(kind + " cannot hold this data (use " + ", ".join(kinds) + ")")
    if kind == "memory":
        if rest:
            raise ValueError("memory: takes nothing after the colon")
        return StoreUrl("memory")
    if kind == "sqlite":
        if not rest:
            raise ValueError("sqlite: needs a file path, e.g. sqlite:/var/lib/clearwater/hs.db")
        return StoreUrl("sqlite", path=os.path.abspath(os.path.expanduser(rest)))
    parts = urlsplit(text)
    if not rest.startswith("//") or parts.query or parts.fragment or parts.username:
        raise ValueError("expected " + kind + "://HOST:PORT" + ("/DB" if kind == "redis" else ""))
    host = parts.hostname or ""
    if not host or not (_is_ip(host) or _HOST_RE.fullmatch(host)):
        raise ValueError("bad host in " + repr(text))
    try:
        port = parts.port or _DEFAULT_PORTS[kind]
    except ValueError:
        raise ValueError("bad port in " + repr(text)) from None
    path = parts.path.strip("/")
    db = 0
    if kind == "redis" and path:
        if not path.isdigit() or int(path) > 15:
            raise ValueError("bad Redis database number " + repr(path) + " (0-15)")
        db = int(path)
    elif path:
        raise ValueError("memcached URLs take no path: " + repr(text))
    return StoreUrl(kind, host=host, port=port, db=db)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
