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

The counts are plain integers on the instance, turned into metric families only when the
registry is scraped: prometheus_client's own Counter takes a lock on every increment, which is
measurable on the SIP hot path.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable
from typing import Optional

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from typing_extensions import override

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
_METHOD_LABELS = (*sorted(SIP_METHODS), OTHER_METHOD)


class _Latency:
    """One histogram series: a count per bucket (not cumulative), the sum and the count."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1
                return


class _Collector(Collector):
    """The families of every :class:`SipMetrics` on one registry, built at scrape time from
    their plain counters; instances with the same function add up."""

    def __init__(self) -> None:
        self.members: weakref.WeakSet[SipMetrics] = weakref.WeakSet()

    @override
    def collect(self) -> Iterable[Metric]:
        labels = ["function", "method"]
        requests = CounterMetricFamily(
            "clearwater_sip_requests", "SIP requests received, by method.", labels=labels
        )
        responses = CounterMetricFamily(
            "clearwater_sip_responses",
            "SIP responses sent upstream, by status class.",
            labels=["function", "class"],
        )
        latency = HistogramMetricFamily(
            "clearwater_sip_transaction_seconds",
            "SIP transaction duration in seconds, by method.",
            labels=labels,
        )
        active = GaugeMetricFamily(
            "clearwater_sip_transactions_active",
            "SIP transactions in progress.",
            labels=["function"],
        )
        by_function: dict[str, list[SipMetrics]] = {}
        for member in list(self.members):
            by_function.setdefault(member.function, []).append(member)
        for function, members in sorted(by_function.items()):
            for method in _METHOD_LABELS:
                requests.add_metric([function, method], sum(m._requests[method] for m in members))
                buckets = [0] * len(LATENCY_BUCKETS)
                count, total = 0, 0.0
                for m in members:
                    series = m._latency[method]
                    buckets = [a + b for a, b in zip(buckets, series.buckets)]
                    count += series.count
                    total += series.total
                cumulative = list(itertools.accumulate(buckets))
                latency.add_metric(
                    [function, method],
                    [
                        *((_bound(b), float(n)) for b, n in zip(LATENCY_BUCKETS, cumulative)),
                        ("+Inf", float(count)),
                    ],
                    total,
                )
            for i, name in enumerate(_CLASSES):
                responses.add_metric([function, name], sum(m._responses[i] for m in members))
            active.add_metric([function], sum(m._active for m in members))
        return [requests, responses, latency, active]


def _bound(value: float) -> str:
    return repr(value)  # as prometheus_client writes a bucket bound: "0.005", "1.0"


# One collector per registry: the functions sharing one (the all-in-one plugin's single
# management port) share the families and differ by their ``function`` label.
_COLLECTORS: weakref.WeakKeyDictionary[CollectorRegistry, _Collector] = weakref.WeakKeyDictionary()


class SipMetrics:
    """The SIP metrics of one network function process, in :attr:`registry`.

    Call :meth:`request_received` for each request received, :meth:`response_sent` for each
    response sent upstream, and :meth:`transaction_started` / :meth:`transaction_ended` around
    each server transaction, with its duration measured on the reactor's clock.
    """

    __slots__ = (
        "__weakref__",
        "_active",
        "_latency",
        "_requests",
        "_responses",
        "function",
        "registry",
    )

    def __init__(self, function: str, registry: Optional[CollectorRegistry] = None) -> None:
        self.function = function
        self.registry = CollectorRegistry() if registry is None else registry
        collector = _COLLECTORS.get(self.registry)
        if collector is None:
            collector = _COLLECTORS[self.registry] = _Collector()
            self.registry.register(collector)
        collector.members.add(self)
        # Plain counters, read at scrape time: the hot path is a dict lookup and an addition
        # (prometheus_client's own metrics take a lock on every increment).
        self._requests = dict.fromkeys(_METHOD_LABELS, 0)
        self._latency = {m: _Latency() for m in _METHOD_LABELS}
        self._responses = [0] * len(_CLASSES)
        self._active = 0

    def request_received(self, method: str) -> None:
        """Count a request received with ``method`` (``"other"`` unless in :data:`SIP_METHODS`)."""
        key = method if method in SIP_METHODS else OTHER_METHOD
        self._requests[key] += 1

    def response_sent(self, status: int) -> None:
        """Count a response sent upstream in the class of ``status``.

        Raises :exc:`ValueError` unless ``100 <= status <= 699``.
        """
        if not 100 <= status <= 699:
            raise ValueError("SIP status code out of range 100-699: " + str(status))
        self._responses[status // 100 - 1] += 1

    def transaction_started(self) -> None:
        """Count a transaction as in progress."""
        self._active += 1

    def transaction_ended(self, method: str, seconds: float) -> None:
        """Record a transaction of ``method`` that took ``seconds``, and count it as over."""
        self._active -= 1
        self._latency[method if method in SIP_METHODS else OTHER_METHOD].observe(seconds)
