"""统一社会信用代码 (GB 32100-2015) and region code checks."""

from __future__ import annotations

import pytest

from bidding.accounts.creditcode import (
    credit_check_char,
    credit_code_problem,
    is_valid_credit_code,
    is_valid_region_code,
    make_credit_code,
    normalise_credit_code,
    organisation_check_char,
    region_code_problem,
)

# Published codes: the worked example of GB 32100-2015 and codes printed on well-known
# companies' business licences; each passes both the GB 11714 and the GB 32100 check, which
# a mistyped code fails with probability 1 - 1/31 * 1/11.
PUBLISHED = [
    "91350100M000100Y43",  # GB 32100-2015 example
    "9144030071526726XG",  # 深圳市腾讯计算机系统有限公司 (org code check digit X)
    "914403001922038216",  # 华为技术有限公司
    "91330100799655058B",  # 阿里巴巴（中国）有限公司
    "91110000802100433B",  # 北京百度网讯科技有限公司
]


@pytest.mark.parametrize("code", PUBLISHED)
def test_published_codes_are_valid(code: str) -> None:
    assert credit_code_problem(code) is None
    assert is_valid_credit_code(code)


@pytest.mark.parametrize("code", PUBLISHED)
def test_every_single_character_change_is_caught(code: str) -> None:
    # Changing the check character to any other valid character must fail.
    for ch in "0123456789ABCDEFGHJKLMNPQRTUWXY":
        if ch != code[-1]:
            assert credit_code_problem(code[:-1] + ch) == "check"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("91350100M000100Y4", "length"),
        ("91350100M000100Y433", "length"),
        ("91350100M000100Y4O", "charset"),  # letter O is not in the alphabet
        ("91350100m000100Y43", "charset"),  # lower case (normalise first)
        ("91350100M000100I43", "charset"),
        ("B1350100M000100Y43", "authority"),
        ("91350100M000100Y53", "organisation_check"),
        ("91350100M000100Y44", "check"),
        ("91350100M000010Y43", "organisation_check"),  # two body characters swapped
    ],
)
def test_invalid_codes(code: str, reason: str) -> None:
    assert credit_code_problem(code) == reason
    assert not is_valid_credit_code(code)


def test_check_characters() -> None:
    assert credit_check_char("91350100M000100Y4") == "3"
    assert organisation_check_char("M000100Y") == "4"
    assert organisation_check_char("71526726") == "X"
    with pytest.raises(ValueError):
        credit_check_char("short")
    with pytest.raises(ValueError):
        organisation_check_char("abc")


def test_make_credit_code_round_trip() -> None:
    code = make_credit_code("540200", "MA6T0E01")
    assert code.startswith("91540200MA6T0E01")
    assert is_valid_credit_code(code)
    with pytest.raises(ValueError):
        make_credit_code("5402", "MA6T0E01")


def test_normalise() -> None:
    assert normalise_credit_code(" 91350100m000100y43 ") == "91350100M000100Y43"


@pytest.mark.parametrize(
    "code", ["540200", "310000", "370000", "230000", "220000", "110105", "820000"]
)
def test_valid_region_codes(code: str) -> None:
    assert is_valid_region_code(code)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("54020", "format"),
        ("5402000", "format"),
        ("54020a", "format"),
        ("100000", "province"),
        ("990000", "province"),
        ("000000", "province"),
        ("830000", "province"),
        ("", "format"),
    ],
)
def test_invalid_region_codes(code: str, reason: str) -> None:
    assert region_code_problem(code) == reason
