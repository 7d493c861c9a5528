# -*- test-case-name: tests.unit.test_metrics -*-
"""SIP counters and latency histograms for one network function, in Prometheus form.

ARCHITECTURE.md §6: counters and latency histograms per function and per response class, served
at ``/metrics`` (:mod:`clearwater.http.management`); never a label per user. The metrics:

========================================  ==================  ==================================
name                                      labels              meaning
========================================  ==================  ==================================
``clearwater_sip_requests_total``         function, method    requests received
``clearwater_sip_responses_total``        function, class     responses sent upstream
``clearwater_sip_transaction_seconds``    function, method    transaction latency (histogram)
``clearwater_sip_transactions_active``    function            transactions in progress (gauge)
========================================  ==================  ==================================

Every label has a bounded set of values, so the number of series is fixed when a
:class:`SipMetrics` is made, whatever arrives on the wire:

- ``function``: one value per :class:`SipMetrics`, the name it was given (``"sprout"``).
- ``method``: the methods of :data:`SIP_METHODS` (RFC 3261 §7.1 and the extensions: RFC 3262
  PRACK, RFC 3265/6665 SUBSCRIBE and NOTIFY, RFC 3311 UPDATE, RFC 3428 MESSAGE, RFC 3515 REFER,
  RFC 3903 PUBLISH, RFC 6086 INFO); any other method is counted as ``"other"``. Method names
  are case-sensitive (RFC 3261 §7.1), so ``"invite"`` is ``"other"`` too.
- ``class``: ``"1xx"`` to ``"6xx"``. The status code must be 100-699, the only codes a SIP
  response can carry (RFC 3261 §7.2, §21; :class:`~clearwater.sip.Response` and the parser enforce
  it): :meth:`SipMetrics.response_sent` raises :exc:`ValueError` for any other, as a
  programming error, rather than miscount it.

Each instance has its :class:`~prometheus_client.CollectorRegistry`: a fresh one unless given,
never the process-global default, so tests do not collide. Several functions may share one
registry (the all-in-one ``clearwater`` plugin, one management port): their series differ by
``function``; two instances with the same name on one registry add to the same series.

The labelled children are made up front and kept in dicts: calling ``labels()`` on each event
would be slow on the SIP hot path.
"""

from __future__ import annotations

import weakref
from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS", "OTHER_METHOD", "SIP_METHODS", "SipMetrics"]

SIP_METHODS: frozenset[str] = frozenset(
    (
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "PRACK",
        "UPDATE",
        "MESSAGE",
        "REFER",
    )
)
"""The method label values; everything else is ``"other"``."""

OTHER_METHOD = "other"
"""The method label value for every method outside :data:`SIP_METHODS`."""

LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""Histogram bounds in seconds: from a 5 ms local answer to 30 s, just under the 32 s
(64 * T1) of timers B and F (RFC 3261 §17.1); slower transactions land in ``+Inf``."""

_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "6xx")

_Families = tuple[Counter, Counter, Histogram, Gauge]

# A registry accepts each metric name once; the functions sharing one (the all-in-one plugin's
# single management port) share the families and differ by their ``function`` label.
_FAMILIES: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()


def _families(registry: CollectorRegistry) -> _Families:
    families = _FAMILIES.get(registry)
    if families is None:
        families = (
            Counter(
                "clearwater_sip_requests",
                "SIP requests received, by method.",
                ("function", "method"),
                registry=registry,
            ),
            Counter(
                "clearwater_sip_responses",
                "SIP responses sent upstream, by status class.",
                ("function", "class"),
                registry=registry,
            ),
            Histogram(
                "clearwater_sip_transaction_seconds",
                "SIP transaction duration in seconds, by method.",
                ("function", "method"),
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            Gauge(
                "clearwater_sip_transactions_active",
                "SIP transactions in progress.",
                ("function",),
                registry=registry,
            ),
        )
        _FAMILIES[registry] = families
    return families


class SipMetrics:
    """The SIP metrics of one network function process, in :attr:`registry`.

    Call :meth:`request_received` for each request received, :meth:`response_sent` for each
    response sent upstream, and :meth:`transaction_started` / :meth:`transaction_ended` around
    each server transaction, with its duration measured on the reactor's clock.
    """

    __slots__ = (
        "_active",
        "_latency",
        "_other_latency",
        "_other_requests",
        "_requests",
        "_responses",
        "function",
        "registry",
    )

    def __init__(self, function: str, registry: Optional[CollectorRegistry] = None) -> None:
        self.function = function
        self.registry = CollectorRegistry() if registry is None else registry
        requests, responses, latency, active = _families(self.registry)
        # Every series exists from the start (a scrape shows zeros, not gaps), and the hot
        # path is a dict lookup and an increment.
        self._requests = {m: requests.labels(function, m) for m in SIP_METHODS}
        self._other_requests = requests.labels(function, OTHER_METHOD)
        self._latency = {m: latency.labels(function, m) for m in SIP_METHODS}
        self._other_latency = latency.labels(function, OTHER_METHOD)
        self._responses = tuple(responses.labels(function, c) for c in _CLASSES)
        self._active = active.labels(function)

    def request_received(self, method: str) -> None:
        """Count a request received with ``method`` (``"other"`` unless in :data:`SIP_METHODS`)."""
        self._requests.get(method, self._other_requests).inc()

    def response_sent(self, status: int) -> None:
        """Count a response sent upstream in the class of ``status``.

        Raises :exc:`ValueError` unless ``100 <= status <= 699``.
        """
        if not 100 <= status <= 699:
            raise ValueError("SIP status code out of range 100-699: " + str(status))
        self._responses[status // 100 - 1].inc()

    def transaction_started(self) -> None:
        """Count a transaction as in progress."""
        self._active.inc()

    def transaction_ended(self, method: str, seconds: float) -> None:
        """Record a transaction of ``method`` that took ``seconds``, and count it as over."""
        self._active.dec()
        self._latency.get(method, self._other_latency).observe(seconds)
