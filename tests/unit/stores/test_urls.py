"""Store URLs (clearwater.stores.urls)."""

from __future__ import annotations

import os

import pytest

from clearwater.stores.urls import StoreUrl, parse_store_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("memory:", StoreUrl("memory")),
        ("MEMORY:", StoreUrl("memory")),
        ("sqlite:/var/lib/hs.db", StoreUrl("sqlite", path="/var/lib/hs.db")),
        ("redis://127.0.0.1", StoreUrl("redis", host="127.0.0.1", port=6379)),
        (
            "redis://redis.example.com:7000/3",
            StoreUrl("redis", host="redis.example.com", port=7000, db=3),
        ),
        ("redis://[::1]:6380/0", StoreUrl("redis", host="::1", port=6380)),
        ("memcached://10.0.0.1", StoreUrl("memcached", host="10.0.0.1", port=11211)),
        ("memcached://10.0.0.1:11311", StoreUrl("memcached", host="10.0.0.1", port=11311)),
    ],
)
def test_valid(text: str, expected: StoreUrl) -> None:
    assert parse_store_url(text) == expected


def test_relative_sqlite_path_is_made_absolute() -> None:
    assert parse_store_url("sqlite:hs.db").path == os.path.join(os.getcwd(), "hs.db")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "expected memory:"),
        ("postgres://x", "expected memory:"),
        ("/var/lib/hs.db", "expected memory:"),
        ("memory:x", "nothing after"),
        ("sqlite:", "needs a file path"),
        ("redis:127.0.0.1", "expected redis://HOST:PORT/DB"),
        ("redis://", "bad host"),
        ("redis://bad_host!", "bad host"),
        ("redis://h:99999", "bad port"),
        ("redis://h:6379/16", "database number"),
        ("redis://h:6379/x", "database number"),
        ("redis://user:pw@h:6379", "expected redis://"),
        ("memcached://h:11211/x", "no path"),
    ],
)
def test_invalid(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_store_url(text)


def test_kinds_limit_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="memcached cannot hold this data"):
        parse_store_url("memcached://h", kinds=("memory", "sqlite", "redis"))
    assert parse_store_url("redis://h", kinds=("redis",)).kind == "redis"


@pytest.mark.parametrize(
    "text",
    ["memory:", "sqlite:/a/b.db", "redis://h:1/2", "redis://[::1]:6379/0", "memcached://h:5"],
)
def test_str_round_trips(text: str) -> None:
    assert str(parse_store_url(text)) == text
