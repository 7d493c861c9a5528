"""Our additions to the registration records and store (not in Clearwater's): a binding's
temporary GRUU token and a subscription's reginfo version in the JSON (clearwater.stores.records),
and the temp-gruu index (clearwater.stores.typed.TempGruuStore) over the memory CAS store."""

from __future__ import annotations

import json
from typing import Any, Optional, cast

import attrs
import pytest
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from typing_extensions import override

from clearwater.errors import ParseError
from clearwater.stores import records
from clearwater.stores.interfaces import DataContentionError
from clearwater.stores.memory import MemoryCasStore
from clearwater.stores.records import AoR, Binding, Subscription, TempGruu
from clearwater.stores.typed import (
    REGISTRATION_TABLE,
    TEMP_GRUU_TABLE,
    RegistrationStore,
    TempGruuStore,
    TempGruuTarget,
)

NOW = 1_700_000_000
TOKEN = "Q2xlYXJ3YXRlci10ZW1w"
TARGET = TempGruuTarget("sip:alice@example.com", "<urn:uuid:1>")
BINDING = Binding("sip:alice@192.0.2.1", "cid", 3, NOW + 300)
SUBSCRIPTION = Subscription("sip:w@192.0.2.9", "sip:a@b", "f", "sip:a@b", "t", "cid")


# --------------------------------------------------------------------------- records


def roundtrip(aor: AoR) -> tuple[AoR, dict[str, Any]]:
    data = records.dumps(aor.to_json())
    return AoR.from_json(records.loads(data, "AoR")), json.loads(data)


def test_a_binding_token_round_trips_as_our_own_member() -> None:
    binding = attrs.evolve(BINDING, temp_gruu=TempGruu(TOKEN, 2))
    aor, raw = roundtrip(AoR(bindings=(("b", binding),)))
    assert aor.bindings == (("b", binding),)
    assert raw["bindings"]["b"]["temp_gruu"] == {"token": TOKEN, "first_cseq": 2}
    assert aor.bindings[0][1].extra == ()


def test_a_subscription_version_round_trips_as_our_own_member() -> None:
    subscription = attrs.evolve(SUBSCRIPTION, version=7)
    aor, raw = roundtrip(AoR(subscriptions=(("t", subscription),)))
    assert aor.subscriptions == (("t", subscription),)
    assert raw["subscriptions"]["t"]["reginfo_version"] == 7


def test_without_them_the_json_is_clearwaters() -> None:
    _, raw = roundtrip(AoR(bindings=(("b", BINDING),), subscriptions=(("t", SUBSCRIPTION),)))
    assert set(raw["bindings"]["b"]) == set(records._BINDING_KEYS) - {"temp_gruu"}
    assert set(raw["subscriptions"]["t"]) == set(records._SUBSCRIPTION_KEYS) - {"reginfo_version"}


def test_records_written_before_them_still_load() -> None:
    old = {
        "bindings": {"b": {"uri": "sip:a@b", "cid": "c", "cseq": 1, "expires": NOW}},
        "subscriptions": {"t": {"to_tag": "t", "expires": NOW}},
    }
    aor = AoR.from_json(old)
    assert aor.bindings[0][1].temp_gruu is None
    assert aor.subscriptions[0][1].version is None


@pytest.mark.parametrize(
    "temp_gruu",
    [
        "token",
        {"token": ""},
        {"first_cseq": 1},
        {"token": 5, "first_cseq": 1},
        {"token": TOKEN, "first_cseq": "1"},
        {"token": TOKEN, "first_cseq": True},
    ],
)
def test_a_bad_token_member_is_a_parse_error(temp_gruu: Any) -> None:
    with pytest.raises(ParseError):
        Binding.from_json({"uri": "sip:a@b", "temp_gruu": temp_gruu})


@pytest.mark.parametrize("version", ["1", True, 1.5, [1]])
def test_a_bad_version_member_is_a_parse_error(version: Any) -> None:
    with pytest.raises(ParseError):
        Subscription.from_json({"to_tag": "t", "reginfo_version": version})


# --------------------------------------------------------------------------- the index


class _Flaky:
    """A CAS store whose next ``losses`` conditional writes lose their race."""

    def __init__(self, inner: MemoryCasStore, losses: int) -> None:
        self.inner = inner
        self.losses = losses
        self.calls: list[tuple[str, int]] = []

    def get_data(self, table: str, key: str) -> Deferred[tuple[Optional[bytes], int]]:
        self.calls.append(("get", 0))
        return self.inner.get_data(table, key)

    def set_data(self, table: str, key: str, data: bytes, cas: int, ttl: int) -> Deferred[None]:
        self.calls.append(("set", cas))
        if self.losses > 0:
            self.losses -= 1
            return fail(DataContentionError("lost"))
        return self.inner.set_data(table, key, data, cas, ttl)


class TempGruuStoreTests(SynchronousTestCase):
    @override
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.cas = MemoryCasStore(self.clock)
        self.index = TempGruuStore(self.cas)

    def get(self, token: str = TOKEN) -> Optional[TempGruuTarget]:
        return self.successResultOf(self.index.get_target(token))

    def test_a_target_lives_until_the_binding_expires(self) -> None:
        self.successResultOf(self.index.set_target(TOKEN, TARGET, NOW + 30, NOW, new=True))
        assert self.get() == TARGET
        data, _ = self.successResultOf(self.cas.get_data(TEMP_GRUU_TABLE, TOKEN))
        assert json.loads(data or b"") == {"aor": TARGET.aor_id, "binding": TARGET.binding_id}
        self.clock.advance(29)
        assert self.get() == TARGET
        self.clock.advance(1)
        assert self.get() is None

    def test_rewriting_extends_it(self) -> None:
        self.successResultOf(self.index.set_target(TOKEN, TARGET, NOW + 30, NOW, new=True))
        self.clock.advance(20)
        self.successResultOf(self.index.set_target(TOKEN, TARGET, NOW + 80, NOW + 20))
        self.clock.advance(50)
        assert self.get() == TARGET
        self.clock.advance(10)
        assert self.get() is None

    def test_a_new_token_is_written_without_a_read_and_an_old_one_with_its_cas(self) -> None:
        flaky = _Flaky(self.cas, 0)
        index = TempGruuStore(flaky)  # type: ignore[arg-type]  # duck-typed ICasStore
        self.successResultOf(index.set_target(TOKEN, TARGET, NOW + 30, NOW, new=True))
        assert flaky.calls == [("set", 0)]
        flaky.calls.clear()
        self.successResultOf(index.set_target(TOKEN, TARGET, NOW + 60, NOW))
        assert [c[0] for c in flaky.calls] == ["get", "set"] and flaky.calls[1][1] > 0

    def test_a_lost_race_is_retried_from_a_fresh_read(self) -> None:
        flaky = _Flaky(self.cas, 2)
        index = TempGruuStore(flaky)  # type: ignore[arg-type]  # duck-typed ICasStore
        self.successResultOf(index.set_target(TOKEN, TARGET, NOW + 30, NOW, new=True))
        assert [c[0] for c in flaky.calls] == ["set", "get", "set", "get", "set"]
        assert self.get() == TARGET

    def test_a_record_that_keeps_changing_gives_up(self) -> None:
        flaky = _Flaky(self.cas, 100)
        index = TempGruuStore(flaky)  # type: ignore[arg-type]  # duck-typed ICasStore
        d = index.set_target(TOKEN, TARGET, NOW + 30, NOW)
        self.failureResultOf(d, DataContentionError)  # type: ignore[no-untyped-call]
        assert len(flaky.calls) == 6  # three reads, three writes

    def test_nothing_is_written_for_a_binding_already_expired(self) -> None:
        self.successResultOf(self.index.set_target(TOKEN, TARGET, NOW, NOW, new=True))
        assert len(self.cas) == 0

    def test_a_corrupt_record_reads_as_unknown_and_is_logged(self) -> None:
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        for data in (b"{", b"[]", b'{"aor": "x"}', b'{"aor": "", "binding": "b"}'):
            self.successResultOf(self.cas.delete_data(TEMP_GRUU_TABLE, TOKEN))
            self.successResultOf(self.cas.set_data(TEMP_GRUU_TABLE, TOKEN, data, 0, 30))
            assert self.get() is None
        corrupt = [e for e in events if e.get("token") == TOKEN]
        assert len(corrupt) == 4

    def test_an_unknown_token_is_none(self) -> None:
        assert self.get("unknown") is None

    def test_the_registration_store_has_one_over_the_same_store(self) -> None:
        registrations = RegistrationStore(self.cas)
        self.successResultOf(
            registrations.temp_gruus.set_target(TOKEN, TARGET, NOW + 30, NOW, new=True)
        )
        assert self.get() == TARGET
        assert self.successResultOf(self.cas.get_data(REGISTRATION_TABLE, TOKEN)) == (None, 0)


def test_table_name() -> None:
    assert TEMP_GRUU_TABLE == "tgruu"  # spec §1.4's tables: reg, impi; this one is ours
