"""State stores: interfaces, records and their implementations (ARCHITECTURE.md §3)."""

from __future__ import annotations

from clearwater.stores.interfaces import (
    DataContentionError,
    ICasStore,
    IChallengeStore,
    IRegistrationStore,
    ISubscriberStore,
    ITimerService,
    NotFoundError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    TimerHandler,
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
