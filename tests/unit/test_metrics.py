"""SIP metrics (ARCHITECTURE.md §6): names, bounded labels, buckets, and one registry each."""

from __future__ import annotations

from typing import Optional

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from clearwater.metrics import LATENCY_BUCKETS, OTHER_METHOD, SIP_METHODS, SipMetrics


def _value(metrics: SipMetrics, name: str, **labels: str) -> Optional[float]:
    return metrics.registry.get_sample_value(name, {"function": metrics.function, **labels})


def _requests(metrics: SipMetrics, method: str) -> Optional[float]:
    return _value(metrics, "clearwater_sip_requests_total", method=method)


def _responses(metrics: SipMetrics, status_class: str) -> Optional[float]:
    return _value(metrics, "clearwater_sip_responses_total", **{"class": status_class})


def _series(metrics: SipMetrics) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in metrics.registry.collect()
        for sample in family.samples
    }


def test_method_labels_are_the_rfc_3261_methods_and_extensions() -> None:
    rfc_3261 = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"}
    extensions = {"SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "PRACK", "UPDATE", "MESSAGE", "REFER"}
    assert rfc_3261 | extensions == SIP_METHODS
    assert OTHER_METHOD == "other"


def test_each_instance_has_its_own_registry_not_the_global_one() -> None:
    first, second = SipMetrics("sprout"), SipMetrics("sprout")
    assert first.registry is not second.registry
    assert first.registry is not REGISTRY
    first.request_received("INVITE")
    assert _requests(first, "INVITE") == 1.0
    assert _requests(second, "INVITE") == 0.0
    global_names = {s.name for f in REGISTRY.collect() for s in f.samples}
    assert not any(name.startswith("clearwater_") for name in global_names)


def test_a_given_registry_is_used() -> None:
    registry = CollectorRegistry()
    metrics = SipMetrics("bono", registry)
    metrics.request_received("REGISTER")
    assert metrics.registry is registry
    labels = {"function": "bono", "method": "REGISTER"}
    assert registry.get_sample_value("clearwater_sip_requests_total", labels) == 1.0


def test_every_series_exists_at_zero_from_the_start() -> None:
    metrics = SipMetrics("icscf")
    for method in (*SIP_METHODS, OTHER_METHOD):
        assert _requests(metrics, method) == 0.0
        assert _value(metrics, "clearwater_sip_transaction_seconds_count", method=method) == 0.0
    for status_class in ("1xx", "2xx", "3xx", "4xx", "5xx", "6xx"):
        assert _responses(metrics, status_class) == 0.0
    assert _value(metrics, "clearwater_sip_transactions_active") == 0.0


def test_requests_are_counted_by_method() -> None:
    metrics = SipMetrics("sprout")
    for method in ("INVITE", "ACK", "INVITE", "REFER", "MESSAGE"):
        metrics.request_received(method)
    assert _requests(metrics, "INVITE") == 2.0
    assert _requests(metrics, "ACK") == 1.0
    assert _requests(metrics, "REFER") == 1.0
    assert _requests(metrics, "MESSAGE") == 1.0
    assert _requests(metrics, "BYE") == 0.0
    assert _requests(metrics, OTHER_METHOD) == 0.0


def test_unknown_methods_are_counted_as_other_and_add_no_series() -> None:
    metrics = SipMetrics("sprout")
    before = _series(metrics)
    for method in ("FROB", "invite", "Register", "X" * 200, "", "INVITE "):
        metrics.request_received(method)
        metrics.transaction_started()
        metrics.transaction_ended(method, 0.02)
    for n in range(1000):
        metrics.request_received("M" + str(n))
    assert _requests(metrics, OTHER_METHOD) == 1006.0
    assert _requests(metrics, "INVITE") == 0.0
    assert _value(metrics, "clearwater_sip_transaction_seconds_count", method=OTHER_METHOD) == 6
    assert _series(metrics) == before


_CLASS_OF = {100: "1xx", 180: "1xx", 199: "1xx", 200: "2xx", 302: "3xx", 401: "4xx", 486: "4xx"}
_CLASS_OF.update({500: "5xx", 503: "5xx", 600: "6xx", 699: "6xx"})


@pytest.mark.parametrize(("status", "status_class"), sorted(_CLASS_OF.items()))
def test_responses_are_counted_by_class(status: int, status_class: str) -> None:
    metrics = SipMetrics("sprout")
    metrics.response_sent(status)
    metrics.response_sent(status)
    counts = {c: _responses(metrics, c) for c in ("1xx", "2xx", "3xx", "4xx", "5xx", "6xx")}
    assert counts == {c: (2.0 if c == status_class else 0.0) for c in counts}


@pytest.mark.parametrize("status", [-1, 0, 99, 700, 999, 1000])
def test_status_codes_outside_100_to_699_are_rejected(status: int) -> None:
    metrics = SipMetrics("sprout")
    before = sorted((s.name, s.value) for f in metrics.registry.collect() for s in f.samples)
    with pytest.raises(ValueError, match="out of range 100-699: " + str(status)):
        metrics.response_sent(status)
    after = sorted((s.name, s.value) for f in metrics.registry.collect() for s in f.samples)
    assert after == before


def test_active_transactions_gauge_follows_start_and_end() -> None:
    metrics = SipMetrics("sprout")
    metrics.transaction_started()
    metrics.transaction_started()
    assert _value(metrics, "clearwater_sip_transactions_active") == 2.0
    metrics.transaction_ended("INVITE", 0.1)
    assert _value(metrics, "clearwater_sip_transactions_active") == 1.0
    metrics.transaction_ended("BYE", 0.1)
    assert _value(metrics, "clearwater_sip_transactions_active") == 0.0


def test_transaction_latency_buckets_span_5_ms_to_30_s() -> None:
    metrics = SipMetrics("sprout")
    families = {f.name: f for f in metrics.registry.collect()}
    histogram = families["clearwater_sip_transaction_seconds"]
    assert histogram.type == "histogram"
    bounds = [
        s.labels["le"]
        for s in histogram.samples
        if s.name.endswith("_bucket") and s.labels["method"] == "INVITE"
    ]
    assert bounds == [str(b) for b in LATENCY_BUCKETS] + ["+Inf"]
    assert LATENCY_BUCKETS[0] == 0.005 and LATENCY_BUCKETS[-1] == 30.0
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


def test_transaction_latency_is_observed_per_method() -> None:
    metrics = SipMetrics("sprout")
    for seconds in (0.004, 0.005, 0.2, 31.0):
        metrics.transaction_started()
        metrics.transaction_ended("INVITE", seconds)
    metrics.transaction_started()
    metrics.transaction_ended("OPTIONS", 0.001)

    def bucket(method: str, le: str) -> Optional[float]:
        return _value(metrics, "clearwater_sip_transaction_seconds_bucket", method=method, le=le)

    assert bucket("INVITE", "0.005") == 2.0  # buckets are cumulative, bounds inclusive
    assert bucket("INVITE", "0.1") == 2.0
    assert bucket("INVITE", "0.25") == 3.0
    assert bucket("INVITE", "30.0") == 3.0
    assert bucket("INVITE", "+Inf") == 4.0
    assert _value(metrics, "clearwater_sip_transaction_seconds_count", method="INVITE") == 4.0
    total = _value(metrics, "clearwater_sip_transaction_seconds_sum", method="INVITE")
    assert total == pytest.approx(31.209)
    assert bucket("OPTIONS", "0.005") == 1.0
    assert bucket("BYE", "+Inf") == 0.0


def test_every_sample_carries_the_function_label_and_only_bounded_labels() -> None:
    metrics = SipMetrics("scscf")
    metrics.request_received("sip:alice@example.com")
    metrics.response_sent(200)
    allowed_methods = SIP_METHODS | {OTHER_METHOD}
    for family in metrics.registry.collect():
        assert family.name.startswith("clearwater_sip_")
        for sample in family.samples:
            assert sample.labels["function"] == "scscf"
            assert set(sample.labels) <= {"function", "method", "class", "le"}
            if "method" in sample.labels:
                assert sample.labels["method"] in allowed_methods
    assert len(_series(metrics)) == len(_series(SipMetrics("other-function")))


def test_metric_names_in_the_exposition() -> None:
    metrics = SipMetrics("sprout")
    names = {s.name for f in metrics.registry.collect() for s in f.samples}
    assert {
        "clearwater_sip_requests_total",
        "clearwater_sip_responses_total",
        "clearwater_sip_transaction_seconds_bucket",
        "clearwater_sip_transaction_seconds_count",
        "clearwater_sip_transaction_seconds_sum",
        "clearwater_sip_transactions_active",
    } <= names


def test_functions_can_share_a_registry_and_differ_by_function_label() -> None:
    registry = CollectorRegistry()
    sprout, bono = SipMetrics("sprout", registry), SipMetrics("bono", registry)
    sprout.request_received("INVITE")
    bono.request_received("INVITE")
    bono.request_received("INVITE")
    bono.response_sent(200)
    assert _requests(sprout, "INVITE") == 1.0
    assert _requests(bono, "INVITE") == 2.0
    assert _responses(sprout, "2xx") == 0.0
    assert _responses(bono, "2xx") == 1.0
    families = [f.name for f in registry.collect()]
    assert len(families) == len(set(families)) == 4
    functions = {s.labels["function"] for f in registry.collect() for s in f.samples}
    assert functions == {"sprout", "bono"}


def test_two_instances_with_one_name_on_one_registry_add_up() -> None:
    registry = CollectorRegistry()
    first, second = SipMetrics("sprout", registry), SipMetrics("sprout", registry)
    first.request_received("BYE")
    second.request_received("BYE")
    assert _requests(first, "BYE") == _requests(second, "BYE") == 2.0
