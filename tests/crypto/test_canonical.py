"""Canonical JSON (RFC 8785 / JCS, integer-only numbers) and UTC timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalizationError,
    canonical_json,
    format_utc,
    parse_json,
    parse_utc,
)


def test_rfc8785_sorting_example() -> None:
    # RFC 8785 §3.2.3: members sorted by UTF-16 code units (the emoji's high surrogate
    # 0xD83D sorts before U+FB33, although its code point is larger).
    obj = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(obj)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_rfc8785_string_and_literals_example() -> None:
    # RFC 8785 §3.2.2 input, without its non-integral numbers (refused by design here).
    obj = {
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    expected = '{"literals":[null,true,false],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    assert canonical_json(obj) == expected.encode("utf-8")


def test_escapes() -> None:
    s = "\b\t\n\f\r\x00\x1f\x7f\u2028é中"
    assert canonical_json(s) == '"\\b\\t\\n\\f\\r\\u0000\\u001f\x7f\u2028é中"'.encode()


def test_no_whitespace_and_nesting() -> None:
    doc = {"b": [1, {"z": None, "a": "x"}], "a": {}, "c": []}
    assert canonical_json(doc) == b'{"a":{},"b":[1,{"a":"x","z":null}],"c":[]}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, b"0"), (-0.0, b"0"), (3.0, b"3"), (-17, b"-17"), (MAX_SAFE_INTEGER, b"9007199254740991")],
)
def test_numbers(value: float, expected: bytes) -> None:
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "value",
    [0.5, float("nan"), float("inf"), -float("inf"), MAX_SAFE_INTEGER + 1, -(2**60), 1e300],
)
def test_refused_numbers(value: float) -> None:
    with pytest.raises(CanonicalizationError) as err:
        canonical_json({"price": value})
    assert err.value.code == "not_canonical"
    assert err.value.details["path"] == "$.price"


@pytest.mark.parametrize(
    "value", [Decimal("1.00"), b"bytes", {1: "x"}, {"a": object()}, "\ud800", {"\udc00": 1}]
)
def test_refused_types(value: object) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_json(value)


def test_tuples_are_arrays() -> None:
    assert canonical_json(("a", 1)) == b'["a",1]'


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=5), children, max_size=4
        )
    ),
    max_leaves=20,
)


@given(json_values)
def test_roundtrip_and_idempotent(value: object) -> None:
    encoded = canonical_json(value)
    assert parse_json(encoded) == value
    assert json.loads(encoded) == value
    assert canonical_json(parse_json(encoded)) == encoded


def test_parse_json_strictness() -> None:
    assert parse_json('{"a": 1.0}') == {"a": 1}
    for bad in ['{"a":1,"a":2}', '{"a":NaN}', '{"a":1.5}', "[9007199254740992]", "{", b"\xff"]:
        with pytest.raises(CanonicalizationError):
            parse_json(bad)


def test_utc_timestamps() -> None:
    t = datetime(2025, 3, 1, 16, 0, tzinfo=timezone(timedelta(hours=8)))
    assert format_utc(t) == "2025-03-01T08:00:00Z"
    assert format_utc(t.replace(microsecond=1500)) == "2025-03-01T08:00:00.001500Z"
    assert parse_utc("2025-03-01T08:00:00Z") == datetime(2025, 3, 1, 8, tzinfo=UTC)
    assert parse_utc("2025-03-01T08:00:00.0015Z").microsecond == 1500
    with pytest.raises(CanonicalizationError):
        format_utc(datetime(2025, 3, 1))  # naive
    for bad in ["2025-03-01T08:00:00+08:00", "2025-03-01 08:00:00Z", "2025-13-01T08:00:00Z", ""]:
        with pytest.raises(CanonicalizationError):
            parse_utc(bad)


def _reference_string(value: str) -> str:
    """RFC 8785 §3.2.2.2 (ECMAScript JSON.stringify's QuoteJSONString), one character at
    a time: the reference the fast encoder is held to."""
    short = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}
    out = ['"']
    for ch in value:
        cp = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif cp in short:
            out.append(short[cp])
        elif cp < 0x20:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def test_every_control_and_ascii_character_is_escaped_as_rfc8785_says() -> None:
    for cp in range(0x80):
        assert canonical_json(chr(cp)) == _reference_string(chr(cp)).encode("utf-8"), hex(cp)


@given(st.text(st.characters(exclude_categories=("Cs",))))
def test_strings_match_the_reference_encoder(value: str) -> None:
    assert canonical_json(value) == _reference_string(value).encode("utf-8")


@given(st.lists(st.text(st.characters(exclude_categories=("Cs",)), max_size=3), max_size=8))
def test_member_order_is_utf16_code_unit_order(keys: list[str]) -> None:
    doc = dict.fromkeys(keys, 0)
    expected = sorted(doc, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
    assert list(json.loads(canonical_json(doc))) == expected


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "中\ud83d", {"\udc00": 1}])
def test_lone_surrogates_are_refused(value: object) -> None:
    with pytest.raises(CanonicalizationError, match="lone surrogate"):
        canonical_json(value)
