"""An :class:`enum.Enum` base whose members hash in C.

``Enum.__hash__`` is Python code; the transaction machines hash their ``(state, input)`` pairs
and timers on every input. Members are singletons that compare by identity, so the identity
hash is a valid hash for them.
"""

from __future__ import annotations

import enum

__all__ = ["IdentityEnum"]


class IdentityEnum(enum.Enum):
    """An Enum hashed by identity."""

    __hash__ = object.__hash__
