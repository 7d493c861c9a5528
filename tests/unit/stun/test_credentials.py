"""TURN key providers: static users, the TURN REST API shared secret, homestead's digest."""

from __future__ import annotations

from typing import Any, Optional, cast

import pytest
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer
from zope.interface import implementer
from zope.interface.verify import verifyObject

from clearwater.stun.credentials import (
    HomesteadDigest,
    IKeyProvider,
    SharedSecret,
    StaticUsers,
    parse_key,
    rest_api_expiry,
    rest_api_password,
)

REALM = "example.com"
# md5("alice:example.com:secret"), computed with md5sum.
ALICE_KEY = bytes.fromhex("b1726872c344b6dc8365b774f8fd6412")


def result(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "Deferred has not fired"
    value = results[0]
    if isinstance(value, Failure):
        value.raiseException()
    return value


def fired(d: Deferred[Any]) -> bool:
    return d.called


# --- static users


def test_static_users_key_is_the_long_term_key() -> None:
    users = StaticUsers(REALM, [("alice", "secret"), ("bob", "0x" + "ab" * 16)])
    assert verifyObject(IKeyProvider, users)
    assert result(users.key("alice")) == ALICE_KEY
    assert result(users.key("bob")) == b"\xab" * 16  # coturn's 0x<hex> form is the key
    assert result(users.key("carol")) is None
    assert result(users.key("Alice")) is None  # usernames are compared as sent


def test_parse_key_needs_exactly_32_hex_digits() -> None:
    assert parse_key("0x" + "00" * 16) == bytes(16)
    assert parse_key("0x" + "00" * 15) is None
    assert parse_key("0x" + "zz" * 16) is None
    assert parse_key("00" * 17) is None


def test_static_users_refuse_a_password_saslprep_refuses() -> None:
    with pytest.raises(ValueError, match="SASLprep"):
        StaticUsers(REALM, [("alice", "bad\u0007password")])


# --- the TURN REST API shared secret


@pytest.mark.parametrize(
    ("username", "expiry"),
    [
        ("1700000000:alice", 1700000000),  # turnutils_uclient -W -u alice
        ("alice:1700000000", 1700000000),  # coturn also reads the timestamp second
        ("1700000000", 1700000000),  # turnutils_uclient -W without -u
        (":1700000000", 1700000000),
        ("1700000000:alice:x", 1700000000),
        ("alice", None),
        ("alice:bob", None),
        ("alice:17x", None),
        ("", None),
        ("1" * 21 + ":alice", None),
        ("\u0661\u0662:alice", None),  # Arabic-Indic digits are not ASCII digits
    ],
)
def test_rest_api_expiry(username: str, expiry: Optional[int]) -> None:
    assert rest_api_expiry(username) == expiry


def test_rest_api_expiry_other_separator() -> None:
    assert rest_api_expiry("1700000000-alice", "-") == 1700000000
    assert rest_api_expiry("1700000000-alice") is None


def test_rest_api_password_is_base64_hmac_sha1() -> None:
    # echo -n 1700000000:alice | openssl dgst -sha1 -hmac north -binary | base64
    assert rest_api_password(b"north", "1700000000:alice") == "Cd/49soE35ICqcJF/bCTn8Z4OyE="


def test_shared_secret_key_until_expiry() -> None:
    clock = Clock()
    clock.advance(1700000000 - 10)
    provider = SharedSecret(REALM, "north", cast(IReactorTime, clock))
    assert verifyObject(IKeyProvider, provider)
    # md5 of "1700000000:alice:example.com:Cd/49soE35ICqcJF/bCTn8Z4OyE=", with md5sum.
    key = bytes.fromhex("274b1cfd307d285c98a8fea1e4046455")
    assert result(provider.key("1700000000:alice")) == key
    clock.advance(10)
    assert result(provider.key("1700000000:alice")) == key  # valid up to its second
    clock.advance(1)
    assert result(provider.key("1700000000:alice")) is None
    assert result(provider.key("alice")) is None


def test_shared_secret_user_first() -> None:
    clock = Clock()
    clock.advance(1000)
    provider = SharedSecret(REALM, b"north", cast(IReactorTime, clock))
    username = "alice:2000"
    password = rest_api_password(b"north", username)
    from clearwater.stun import long_term_key

    assert result(provider.key(username)) == long_term_key(username, REALM, password)
    assert result(provider.key("alice:999")) is None


def test_shared_secret_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        SharedSecret(REALM, "", cast(IReactorTime, Clock()))


# --- homestead


class _Response:
    """Just enough of ``IResponse`` for HomesteadClient."""

    def __init__(self, code: int, body: bytes) -> None:
        self.code = code
        self.length = len(body)
        self.headers = Headers()
        self._body = body

    def deliverBody(self, protocol: Protocol) -> None:  # noqa: N802 (IResponse)
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))  # type: ignore[no-untyped-call]


@implementer(IAgent)
class _Agent:
    """Answers requests from a script: a (code, body) pair, an exception, or "stall" (a
    Deferred that never fires on its own)."""

    def __init__(self) -> None:
        self.uris: list[bytes] = []
        self.answers: list[object] = []
        self.stalled: list[Deferred[Any]] = []

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Optional[Headers] = None,
        bodyProducer: Optional[IBodyProducer] = None,  # noqa: N803 (IAgent's name)
    ) -> Deferred[Any]:
        assert method == b"GET"
        self.uris.append(uri)
        answer = self.answers.pop(0)
        if answer == "stall":
            d: Deferred[Any] = Deferred()
            self.stalled.append(d)
            return d
        if isinstance(answer, Exception):
            return fail(answer)
        code, body = cast("tuple[int, bytes]", answer)
        return succeed(_Response(code, body))


def _homestead(ttl: float = 30.0, max_entries: int = 100) -> tuple[HomesteadDigest, _Agent, Clock]:
    clock = Clock()
    agent = _Agent()
    provider = HomesteadDigest.over_http(
        cast(IReactorTime, clock),
        agent,
        ["http://hs.example.com:8888"],
        timeout=1.2,
        ttl=ttl,
        max_entries=max_entries,
    )
    return provider, agent, clock


def _digest(key: bytes) -> tuple[int, bytes]:
    return 200, b'{"digest_ha1": "' + key.hex().encode() + b'"}'


def test_homestead_key_is_the_digest_ha1() -> None:
    provider, agent, _ = _homestead()
    assert verifyObject(IKeyProvider, provider)
    agent.answers.append(_digest(ALICE_KEY))
    assert result(provider.key("alice@example.com")) == ALICE_KEY
    assert agent.uris == [b"http://hs.example.com:8888/impi/alice%40example.com/digest"]


def test_homestead_answers_are_cached_for_the_ttl() -> None:
    provider, agent, clock = _homestead(ttl=30)
    agent.answers += [_digest(ALICE_KEY), _digest(bytes(16))]
    assert result(provider.key("alice")) == ALICE_KEY
    clock.advance(29.9)
    assert result(provider.key("alice")) == ALICE_KEY
    assert len(agent.uris) == 1
    clock.advance(0.1)
    assert result(provider.key("alice")) == bytes(16)  # asked again: the password changed
    assert len(agent.uris) == 2


def test_homestead_unknown_user_is_none_and_cached() -> None:
    provider, agent, clock = _homestead()
    agent.answers += [(404, b'{"error": "Unknown private identity"}'), _digest(ALICE_KEY)]
    assert result(provider.key("alice")) is None
    assert result(provider.key("alice")) is None
    assert len(agent.uris) == 1
    clock.advance(30)
    assert result(provider.key("alice")) == ALICE_KEY


@pytest.mark.parametrize(
    "answer",
    [
        (500, b'{"error": "oops"}'),
        (200, b'{"digest_ha1": "not hex"}'),
        (200, b'{"digest_ha1": "abcd"}'),  # not 16 bytes
        (200, b"[]"),
        ConnectionRefusedError(),  # type: ignore[no-untyped-call]
    ],
)
def test_homestead_failures_are_none_and_not_cached(answer: object) -> None:
    provider, agent, _ = _homestead()
    agent.answers += [answer, _digest(ALICE_KEY)]
    assert result(provider.key("alice")) is None
    assert result(provider.key("alice")) == ALICE_KEY
    assert len(agent.uris) == 2


def test_homestead_timeout_is_none_and_not_cached() -> None:
    provider, agent, clock = _homestead()
    agent.answers += ["stall", _digest(ALICE_KEY)]
    d = provider.key("alice")
    assert not fired(d)
    clock.advance(1.19)
    assert not fired(d)
    clock.advance(0.01)
    assert result(d) is None
    assert agent.stalled[0].called  # the request was cancelled
    assert result(provider.key("alice")) == ALICE_KEY


def test_homestead_concurrent_requests_share_one_lookup() -> None:
    provider, agent, _ = _homestead()
    agent.answers += ["stall"]
    first, second = provider.key("alice"), provider.key("alice")
    assert len(agent.uris) == 1
    second.cancel()  # one waiter giving up does not end the other's
    assert isinstance(second.result, Failure)
    assert isinstance(second.result.value, CancelledError)
    second.addErrback(lambda _: None)
    agent.stalled[0].callback(_Response(*_digest(ALICE_KEY)))
    assert result(first) == ALICE_KEY
    assert result(provider.key("alice")) == ALICE_KEY
    assert len(agent.uris) == 1


def test_homestead_cache_is_bounded_least_recently_used_first() -> None:
    provider, agent, _ = _homestead(max_entries=2)
    agent.answers += [_digest(bytes([n]) * 16) for n in range(4)]
    result(provider.key("a"))
    result(provider.key("b"))
    result(provider.key("a"))  # a is now more recent than b
    result(provider.key("c"))  # evicts b
    assert provider.cached == 2
    assert result(provider.key("a")) == bytes([0]) * 16
    assert len(agent.uris) == 3
    assert result(provider.key("b")) == bytes([3]) * 16  # asked again
    assert len(agent.uris) == 4


def test_homestead_ttl_zero_caches_nothing() -> None:
    provider, agent, _ = _homestead(ttl=0)
    agent.answers += [_digest(ALICE_KEY), _digest(ALICE_KEY)]
    result(provider.key("alice"))
    result(provider.key("alice"))
    assert len(agent.uris) == 2
    assert provider.cached == 0
