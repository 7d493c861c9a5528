# -*- test-case-name: tests.unit.http.test_homestead_client -*-
"""The homestead client sprout uses (clearwater spec §6.1; Clearwater's sprout
``src/hssconnection.cpp``).

One method per homestead path, each returning a Deferred of a typed answer from
:mod:`clearwater.homestead.hssless` (the server builds the same types):

* :meth:`HomesteadClient.get_av` → :class:`~clearwater.homestead.hssless.DigestAv` or
  :class:`~clearwater.homestead.hssless.AkaAv`;
* :meth:`~HomesteadClient.get_digest` → the HA1;
* :meth:`~HomesteadClient.registration_status`, :meth:`~HomesteadClient.location` →
  :class:`~clearwater.homestead.hssless.ServerAssignment`;
* :meth:`~HomesteadClient.get_reg_data`, :meth:`~HomesteadClient.put_reg_data` →
  :class:`~clearwater.homestead.hssless.RegData` (state, the ``<IMSSubscription>`` XML and its
  parsed identities and iFCs).

Failover. The base URLs are tried in order. An attempt that cannot connect, fails on the
way, takes longer than ``timeout`` (sprout's default is 1200 ms, spec §6.1), or gets a 5xx
answer moves on to the next URL; any other answer is final. A 4xx fails at once with
:class:`~clearwater.homestead.hssless.HomesteadError` of that status. When every URL failed,
the error carries the last 5xx status if the last attempt got one, else **504** (no
homestead answered: what sprout turns into a SIP 504). ``http_status`` keeps the raw status
of the last answer (None when there was none); a 200 whose body does not parse is a 500 with
``http_status`` 200. The timeout runs on the injected reactor, per attempt, and a timed-out
attempt is cancelled (its connection aborted). Answer bodies over ``max_body`` bytes fail
the attempt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Callable, NoReturn, Optional, TypeVar, Union
from urllib.parse import quote, urlencode

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent

from clearwater.errors import ParseError
from clearwater.homestead.hssless import (
    AkaAv,
    AvScheme,
    DigestAv,
    HomesteadError,
    RegData,
    ReqType,
    ServerAssignment,
    parse_av,
)
from clearwater.http._client import BytesProducer, read_body

__all__ = ["DEFAULT_TIMEOUT", "MAX_BODY", "HomesteadClient"]

#: Sprout's default homestead timeout, seconds (spec §6.1: 1200 ms).
DEFAULT_TIMEOUT = 1.2

#: The largest answer body read, bytes.
MAX_BODY = 1 << 20

_T = TypeVar("_T")
_log = Logger()


class _AttemptTimedOutError(Exception):
    pass


def _timed_out(result: object, timeout: float) -> NoReturn:
    """``addTimeout``'s translation: whatever a timed-out attempt failed with, it timed out."""
    raise _AttemptTimedOutError(timeout)


@attrs.define
class _CallState:
    cancelled: bool = False


def _path(*segments: str) -> str:
    return "".join("/" + quote(segment, safe="") for segment in segments)


def _with_query(path: str, params: Mapping[str, Optional[str]]) -> str:
    present = {name: value for name, value in params.items() if value is not None}
    if not present:
        return path
    return path + "?" + urlencode(present, quote_via=quote)


def _error_message(body: bytes, code: int) -> str:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        value = None
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        message: str = value["error"]
        return message
    return "homestead answered " + str(code)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ParseError("Bad JSON: " + str(e)) from None
    if not isinstance(value, dict):
        raise ParseError("Bad JSON: not an object")
    return value


class HomesteadClient:
    """Sprout's client for homestead's HTTP API (see the module docstring).

    ``agent`` makes the requests (an :class:`~twisted.web.client.Agent`, with a persistent
    connection pool for keep-alive); ``base_urls`` are the homesteads, e.g.
    ``["http://hs1.example.com:8888", "http://hs2.example.com:8888"]``, tried in order;
    ``timeout`` bounds each attempt, on ``reactor``.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        agent: IAgent,
        base_urls: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT,
        max_body: int = MAX_BODY,
    ) -> None:
        if not base_urls:
            raise ValueError("no homestead base URL")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._reactor = reactor
        self._agent = agent
        self._base_urls = [url.rstrip("/") for url in base_urls]
        self._timeout = timeout
        self._max_body = max_body

    # -- the API

    def get_av(
        self,
        impi: str,
        impu: str,
        scheme: Optional[Union[AvScheme, str]] = None,
        resync_auth: Optional[str] = None,
        server_name: Optional[str] = None,
    ) -> Deferred[Union[DigestAv, AkaAv]]:
        """``GET /impi/<impi>/av[/<scheme>]?impu=…[&resync-auth=…][&server-name=…]``."""
        segments = ["impi", impi, "av"]
        if scheme is not None:
            segments.append(AvScheme(scheme).value)
        path = _with_query(
            _path(*segments),
            {"impu": impu, "resync-auth": resync_auth, "server-name": server_name},
        )
        return self._call(b"GET", path, None, _vector)

    def get_digest(self, impi: str, public_id: Optional[str] = None) -> Deferred[str]:
        """``GET /impi/<impi>/digest[?public_id=…]``: the digest HA1."""
        path = _with_query(_path("impi", impi, "digest"), {"public_id": public_id})
        return self._call(b"GET", path, None, _digest_ha1)

    def registration_status(
        self,
        impi: str,
        impu: str,
        visited_network: Optional[str] = None,
        auth_type: Optional[str] = None,
        sos: bool = False,
    ) -> Deferred[ServerAssignment]:
        """``GET /impi/<impi>/registration-status?impu=…`` (UAR)."""
        params = {
            "impu": impu,
            "visited-network": visited_network,
            "auth-type": auth_type,
            "sos": "true" if sos else None,
        }
        path = _with_query(_path("impi", impi, "registration-status"), params)
        return self._call(b"GET", path, None, _assignment)

    def location(
        self, impu: str, originating: bool = False, auth_type: Optional[str] = None
    ) -> Deferred[ServerAssignment]:
        """``GET /impu/<impu>/location`` (LIR)."""
        params = {"originating": "true" if originating else None, "auth-type": auth_type}
        path = _with_query(_impu_path(impu, "location"), params)
        return self._call(b"GET", path, None, _assignment)

    def get_reg_data(self, impu: str) -> Deferred[RegData]:
        """``GET /impu/<impu>/reg-data``: what homestead has, changing nothing."""
        return self._call(b"GET", _impu_path(impu, "reg-data"), None, RegData.from_xml)

    def put_reg_data(
        self,
        impu: str,
        reqtype: Union[ReqType, str],
        server_name: Optional[str] = None,
        private_id: Optional[str] = None,
        wildcard_identity: Optional[str] = None,
    ) -> Deferred[RegData]:
        """``PUT /impu/<impu>/reg-data[?private_id=…]`` with ``{"reqtype", "server_name"
        [, "wildcard_identity"]}``; the reg-data after the change."""
        body: dict[str, str] = {"reqtype": ReqType(reqtype).value}
        if server_name is not None:
            body["server_name"] = server_name
        if wildcard_identity is not None:
            body["wildcard_identity"] = wildcard_identity
        path = _with_query(_impu_path(impu, "reg-data"), {"private_id": private_id})
        data = json.dumps(body, separators=(",", ":")).encode("ascii")
        return self._call(b"PUT", path, data, RegData.from_xml)

    # -- requests

    def _call(
        self, method: bytes, path: str, body: Optional[bytes], parse: Callable[[bytes], _T]
    ) -> Deferred[_T]:
        state = _CallState()
        inner = Deferred.fromCoroutine(self._request(method, path, body, parse, state))

        def cancel(outer: Deferred[_T]) -> None:
            state.cancelled = True
            inner.cancel()

        outer: Deferred[_T] = Deferred(cancel)

        def relay(value: Union[_T, Failure]) -> None:
            if outer.called:
                return  # cancelled: whatever the attempt ended with is moot
            if isinstance(value, Failure):
                outer.errback(value)
            else:
                outer.callback(value)

        inner.addBoth(relay)
        return outer

    async def _request(
        self,
        method: bytes,
        path: str,
        body: Optional[bytes],
        parse: Callable[[bytes], _T],
        state: _CallState,
    ) -> _T:
        last_code: Optional[int] = None
        last_body = b""
        reason = "no homestead"
        for base in self._base_urls:
            url = base + path
            attempt = Deferred.fromCoroutine(self._attempt(method, url, body))
            attempt.addTimeout(self._timeout, self._reactor, onTimeoutCancel=_timed_out)
            try:
                code, data = await attempt
            except Exception as e:
                if state.cancelled:
                    raise CancelledError() from None  # our caller gave up: no next attempt
                last_code = None
                if isinstance(e, _AttemptTimedOutError):
                    reason = "timed out after " + str(self._timeout) + " s"
                else:
                    reason = type(e).__name__
                _log.warn("Homestead {url} failed: {reason}", url=url, reason=reason)
                continue
            if code >= 500:
                last_code, last_body = code, data
                _log.warn("Homestead {url} answered {code}", url=url, code=code)
                continue
            if code >= 300:
                raise HomesteadError(code, _error_message(data, code), http_status=code)
            try:
                return parse(data)
            except ParseError as e:
                raise HomesteadError(
                    500, "Bad homestead answer: " + e.reason, http_status=code
                ) from e
        if last_code is not None:
            raise HomesteadError(last_code, _error_message(last_body, last_code), last_code)
        raise HomesteadError(504, "No homestead answered (" + reason + ")")

    async def _attempt(self, method: bytes, url: str, body: Optional[bytes]) -> tuple[int, bytes]:
        headers = Headers({b"Accept": [b"application/json, application/xml"]})
        producer = None
        if body is not None:
            headers.addRawHeader(b"Content-Type", b"application/json")
            producer = BytesProducer(body)
        response = await self._agent.request(method, url.encode("ascii"), headers, producer)
        data = await read_body(response, self._max_body)
        return response.code, data


def _impu_path(impu: str, action: str) -> str:
    return _path("impu", impu, action)


def _vector(body: bytes) -> Union[DigestAv, AkaAv]:
    return parse_av(_json_object(body))


def _digest_ha1(body: bytes) -> str:
    value = _json_object(body).get("digest_ha1")
    if not isinstance(value, str):
        raise ParseError("Bad digest answer: digest_ha1")
    return value


def _assignment(body: bytes) -> ServerAssignment:
    return ServerAssignment.from_json(_json_object(body))
