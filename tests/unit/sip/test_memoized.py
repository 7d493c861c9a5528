"""The bounded memo of parsed header values (clearwater.sip._grammar.memoized)."""

from __future__ import annotations

import pytest

from clearwater.errors import ParseError
from clearwater.sip import NameAddr, parse_uri
from clearwater.sip._grammar import _MEMO_ENTRIES, _MEMO_KEY_LENGTH, memoized


def test_same_text_is_parsed_once_and_gives_the_same_object() -> None:
    calls: list[str] = []

    @memoized
    def parse(text: str) -> tuple[str]:
        calls.append(text)
        return (text,)

    first = parse("<sip:alice@example.com>;tag=1")
    assert parse("<sip:alice@example.com>;tag=1") is first
    assert calls == ["<sip:alice@example.com>;tag=1"]


def test_failures_are_not_remembered() -> None:
    calls: list[str] = []

    @memoized
    def parse(text: str) -> str:
        calls.append(text)
        raise ParseError("Bad thing")

    for _ in range(2):
        with pytest.raises(ParseError):
            parse("bad")
    assert calls == ["bad", "bad"]


def test_long_texts_are_not_kept() -> None:
    calls: list[str] = []

    @memoized
    def parse(text: str) -> int:
        calls.append(text)
        return len(text)

    long = "x" * (_MEMO_KEY_LENGTH + 1)
    parse(long)
    parse(long)
    assert len(calls) == 2


def test_the_memo_is_bounded() -> None:
    calls: list[str] = []

    @memoized
    def parse(text: str) -> str:
        calls.append(text)
        return text

    for n in range(_MEMO_ENTRIES + 1):  # the last one empties the full memo first
        parse(str(n))
    parse("0")
    assert calls.count("0") == 2  # forgotten
    parse(str(_MEMO_ENTRIES))
    assert calls.count(str(_MEMO_ENTRIES)) == 1  # kept


def test_header_values_and_uris_are_memoized() -> None:
    text = "Alice <sip:alice@example.com>;tag=abc"
    assert NameAddr.parse(text) is NameAddr.parse(text)
    assert parse_uri("sip:bob@example.com") is parse_uri("sip:bob@example.com")
