"""Identifier checks (代码校验): the unified social credit code (统一社会信用代码, GB 32100-2015)
and administrative division codes (行政区划代码, GB/T 2260).

Pure functions, no Flask and no database.

A credit code has 18 characters::

    9  1  540200  MA6T0001 X  C
    |  |  |       |        |  +-- check character over positions 1-17 (GB 32100, mod 31)
    |  |  |       +--------+----- organisation code (组织机构代码, GB 11714: 8 + check)
    |  |  +---------------------- region code of the registering authority
    |  +------------------------- organisation type within the authority
    +---------------------------- registration authority (登记管理部门)
"""

from __future__ import annotations

import re

#: The 31 characters a credit code may use (no I, O, S, V, Z).
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {ch: i for i, ch in enumerate(CREDIT_CODE_ALPHABET)}
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

#: Registration authorities (登记管理部门代码) in GB 32100-2015 and its amendments.
REGISTRATION_AUTHORITIES = frozenset("123456789ANY")

_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_CREDIT_RE = re.compile(r"^[0-9A-HJ-NP-RTUW-Y]{18}$")
_REGION_RE = re.compile(r"^[0-9]{6}$")

#: Province-level prefixes of administrative division codes (GB/T 2260).
PROVINCE_PREFIXES = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
        "71", "81", "82",
    }
)  # fmt: skip


def credit_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a credit code."""
    if len(first17) != 17 or any(ch not in _VALUE for ch in first17):
        raise ValueError("expected 17 characters from the credit code alphabet")
    total = sum(_VALUE[ch] * w for ch, w in zip(first17, _WEIGHTS, strict=True))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def organisation_check_char(body8: str) -> str:
    """The GB 11714 check character of an 8-character organisation code body."""
    if len(body8) != 8 or not re.fullmatch(r"[0-9A-Z]{8}", body8):
        raise ValueError("expected 8 digits or capital letters")
    total = sum(int(ch, 36) * w for ch, w in zip(body8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def normalise_credit_code(code: str) -> str:
    """Strip spaces and upper-case: what a person types becomes what we compare."""
    return "".join(code.split()).upper()


def credit_code_problem(code: str) -> str | None:
    """Why ``code`` is not a valid credit code, or ``None`` when it is.

    The reasons are stable keys: ``length``, ``charset``, ``authority``,
    ``organisation_check`` and ``check``.
    """
    if len(code) != 18:
        return "length"
    if not _CREDIT_RE.match(code):
        return "charset"
    if code[0] not in REGISTRATION_AUTHORITIES:
        return "authority"
    org = code[8:17]
    if (
        re.fullmatch(r"[0-9A-Z]{8}[0-9X]", org) is None
        or organisation_check_char(org[:8]) != org[8]
    ):
        return "organisation_check"
    if credit_check_char(code[:17]) != code[17]:
        return "check"
    return None


def is_valid_credit_code(code: str) -> bool:
    """True when ``code`` (already normalised) passes every GB 32100 / GB 11714 check."""
    return credit_code_problem(code) is None


def make_credit_code(region: str, body8: str, *, authority: str = "9", kind: str = "1") -> str:
    """Build a valid credit code from a region code and an 8-character organisation body.

    Used for demo data and tests (e.g. ``make_credit_code("540200", "MA6T0001")``).
    """
    if not _REGION_RE.match(region):
        raise ValueError("region must be 6 digits")
    org = body8 + organisation_check_char(body8)
    first17 = f"{authority}{kind}{region}{org}"
    return first17 + credit_check_char(first17)


def region_code_problem(code: str) -> str | None:
    """Why ``code`` is not a plausible 6-digit division code, or ``None``."""
    if not _REGION_RE.match(code):
        return "format"
    if code[:2] not in PROVINCE_PREFIXES:
        return "province"
    return None


def is_valid_region_code(code: str) -> bool:
    """True for 6 digits whose province prefix exists (e.g. Shigatse 540200)."""
    return region_code_problem(code) is None
