"""Object keys: validation and generation."""

from __future__ import annotations

import re

import pytest

from bidding.core.clock import Clock
from bidding.core.errors import ErrorCode
from bidding.core.storage import InvalidObjectKey, new_key, validate_key


@pytest.mark.parametrize(
    "key",
    ["a", "bids/2026/11/0f3c", "docs/招标文件.pdf".encode().hex(), "a-b_c.d=e+f/G1", "x" * 512],
)
def test_valid_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/a",
        "a/",
        "a//b",
        "..",
        "a/../b",
        "a/..b",
        ".meta/x",
        "a/.tmp",
        "-a",
        "a b",
        "a\nb",
        "a\\b",
        "a?b",
        "招标文件",
        "x" * 513,
    ],
)
def test_invalid_keys(key: str) -> None:
    with pytest.raises(InvalidObjectKey) as err:
        validate_key(key)
    assert err.value.code == ErrorCode.INVALID_OBJECT_KEY
    assert err.value.http_status == 400


def test_new_key(frozen_clock: Clock) -> None:
    key = new_key("bids/sealed")
    assert re.fullmatch(r"bids/sealed/2026/11/[0-9a-f]{32}", key)
    assert new_key("bids/sealed") != key
    assert re.fullmatch(r"2026/11/[0-9a-f]{32}", new_key(""))
    with pytest.raises(InvalidObjectKey):
        new_key("../etc")
