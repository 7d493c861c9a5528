"""Random hex for branches and tags, from the operating system's CSPRNG in bulk.

RFC 3261 §8.1.1.7 wants branches unique across space and time and §19.3 wants tags random;
unpredictable values also keep an off-path attacker from forging responses that match our
transactions. :func:`random_hex` gives the same bytes as :func:`secrets.token_hex` (``os.urandom``)
but reads them 4 KiB at a time: one system call per branch was measurable on the proxy's hot
path. Not for keys or nonces (use :mod:`secrets`): the buffer lives in process memory.
"""

from __future__ import annotations

import os

__all__ = ["random_hex"]

_CHUNK = 4096
_pool = b""
_offset = 0


def random_hex(nbytes: int) -> str:
    """``nbytes`` random bytes as ``2 * nbytes`` lower-case hex digits."""
    global _pool, _offset
    if _offset + nbytes > len(_pool):
        _pool = os.urandom(max(_CHUNK, nbytes))
        _offset = 0
    start = _offset
    _offset += nbytes
    return _pool[start : start + nbytes].hex()
