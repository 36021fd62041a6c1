"""Committee composition (ZTBF 37, L12 9, L87 47) and key custodians (setting)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bidding.core.errors import ErrorCode, RuleViolation
from bidding.projects.rules import (
    Basis,
    ProcurementKind,
    RuleSettings,
    required_committee_size,
    validate_committee,
    validate_custodians,
)

TENDERING, PROCUREMENT = ProcurementKind.TENDERING, ProcurementKind.PROCUREMENT
TEN_MILLION = D("10000000.00")


def committee_refused(reason: str, *args: object) -> RuleViolation:
    with pytest.raises(RuleViolation) as exc:
        validate_committee(*args)  # type: ignore[arg-type]
    assert exc.value.code == ErrorCode.COMMITTEE_INVALID, exc.value.to_dict()
    assert exc.value.http_status == 422
    assert exc.value.details["reason"] == reason
    return exc.value


@pytest.mark.parametrize(
    ("size", "experts", "reps"), [(5, 5, 0), (5, 4, 1), (7, 5, 2), (7, 7, 0), (9, 6, 3)]
)
def test_valid_tendering_committees(size: int, experts: int, reps: int) -> None:
    validate_committee(TENDERING, None, False, size, experts, reps)


def test_committee_of_6_is_refused_as_even() -> None:
    err = committee_refused("even", TENDERING, None, False, 6, 5, 1)
    assert err.details["legal_basis"] == f"{Basis.ZTBF_37}；{Basis.L12_9}"
    assert "单数" in err.message


@pytest.mark.parametrize("size", [1, 3, 4])
def test_committee_under_5_is_refused(size: int) -> None:
    err = committee_refused("too_small", TENDERING, None, False, size, size, 0)
    assert err.details["required"] == 5


@pytest.mark.parametrize(("size", "experts", "minimum"), [(5, 3, 4), (7, 4, 5), (9, 5, 6)])
def test_experts_at_least_two_thirds(size: int, experts: int, minimum: int) -> None:
    err = committee_refused("experts_share", TENDERING, None, False, size, experts, size - experts)
    assert err.details["required"] == minimum
    assert "三分之二" in err.message


@pytest.mark.parametrize(("experts", "reps"), [(4, 0), (5, 1), (-1, 6), (6, -1)])
def test_members_must_add_up(experts: int, reps: int) -> None:
    committee_refused("members_sum", TENDERING, None, False, 5, experts, reps)


def test_procurement_of_10_million_needs_7() -> None:
    err = committee_refused("too_small", PROCUREMENT, TEN_MILLION, False, 5, 4, 1)
    assert err.details["required"] == 7
    assert err.details["budget"] == "10000000.00"
    assert err.details["legal_basis"] == Basis.L87_47
    assert "7人以上单数" in err.message and "10,000,000.00元" in err.message
    validate_committee(PROCUREMENT, TEN_MILLION, False, 7, 5, 2)
    validate_committee(PROCUREMENT, D("9999999.99"), False, 5, 4, 1)
    committee_refused("even", PROCUREMENT, TEN_MILLION, False, 8, 6, 2)


def test_complex_procurement_needs_7() -> None:
    committee_refused("too_small", PROCUREMENT, D("500000"), True, 5, 5, 0)
    validate_committee(PROCUREMENT, D("500000"), True, 7, 7, 0)
    validate_committee(PROCUREMENT, None, False, 5, 4, 1)


def test_tendering_has_no_budget_threshold() -> None:
    validate_committee(TENDERING, D("200000000"), True, 5, 4, 1)


def test_required_committee_size() -> None:
    assert required_committee_size(TENDERING, TEN_MILLION, True) == 5
    assert required_committee_size(PROCUREMENT, TEN_MILLION, False) == 7
    assert required_committee_size(PROCUREMENT, D("1"), False) == 5
    with pytest.raises(TypeError):
        required_committee_size(PROCUREMENT, 1e7, False)  # type: ignore[arg-type]


def test_committee_counts_must_be_ints() -> None:
    with pytest.raises(TypeError):
        validate_committee(TENDERING, None, False, 5.0, 5, 0)  # type: ignore[arg-type]


# -- custodians ----------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(2, 3), (3, 3), (3, 5), (2, 9), (9, 9)])
def test_valid_custodian_schemes(k: int, n: int) -> None:
    validate_custodians(k, n)


@pytest.mark.parametrize(
    ("k", "n", "reason"),
    [
        (2, 2, "custodians_count"),
        (1, 1, "custodians_count"),
        (2, 10, "custodians_count"),
        (1, 3, "threshold"),
        (0, 5, "threshold"),
        (4, 3, "threshold"),
    ],
)
def test_invalid_custodian_schemes(k: int, n: int, reason: str) -> None:
    with pytest.raises(RuleViolation) as exc:
        validate_custodians(k, n)
    assert exc.value.code == ErrorCode.CUSTODIANS_INVALID
    assert exc.value.http_status == 422
    assert exc.value.details["reason"] == reason
    assert exc.value.details["legal_basis"] == Basis.SETTING


def test_custodian_maximum_is_a_setting() -> None:
    validate_custodians(3, 12, RuleSettings(custodians_max=12))
    with pytest.raises(RuleViolation):
        validate_custodians(3, 8, RuleSettings(custodians_max=7))
    with pytest.raises(TypeError):
        validate_custodians(True, 3)
