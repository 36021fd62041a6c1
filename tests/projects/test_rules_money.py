"""Money rules: deposit and performance security caps, price limits, bid validity."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from bidding.core.errors import ErrorCode, RuleViolation
from bidding.projects.rules import (
    Basis,
    ProcurementKind,
    RuleSettings,
    SubjectType,
    deposit_cap,
    validate_bid_validity,
    validate_deposit,
    validate_deposit_validity,
    validate_performance_security,
    validate_price_limits,
)

TENDERING, PROCUREMENT = ProcurementKind.TENDERING, ProcurementKind.PROCUREMENT
WORKS, GOODS, SERVICES = SubjectType.WORKS, SubjectType.GOODS, SubjectType.SERVICES


def refused(code: ErrorCode, fn: object, *args: object, **kwargs: object) -> RuleViolation:
    assert callable(fn)
    with pytest.raises(RuleViolation) as exc:
        fn(*args, **kwargs)
    assert exc.value.code == code, exc.value.to_dict()
    assert exc.value.http_status == 422
    return exc.value


# -- bid deposit (SSTL 26, ZFCGS 33, L30 37) -----------------------------------------------


@pytest.mark.parametrize("kind", list(ProcurementKind))
@pytest.mark.parametrize("subject", list(SubjectType))
def test_deposit_of_exactly_2_percent_is_allowed(
    kind: ProcurementKind, subject: SubjectType
) -> None:
    validate_deposit(kind, subject, D("20000.00"), D("1000000.00"))
    validate_deposit(kind, subject, D("0"), D("1000000.00"))  # no deposit required


@pytest.mark.parametrize(
    ("kind", "basis", "label"),
    [
        (TENDERING, Basis.SSTL_26, "招标项目估算价"),
        (PROCUREMENT, Basis.ZFCGS_33, "采购项目预算金额"),
    ],
)
def test_deposit_of_2_01_percent_is_refused(kind: ProcurementKind, basis: str, label: str) -> None:
    err = refused(
        ErrorCode.DEPOSIT_OVER_CAP, validate_deposit, kind, GOODS, D("20100.00"), D("1000000.00")
    )
    assert err.details["cap"] == "20000.00"
    assert err.details["actual"] == "20100.00"
    assert err.details["cap_rate"] == "0.02"
    assert err.details["legal_basis"] == basis
    assert label in err.message and "2.01%" in err.message and "20,000.00元" in err.message


def test_deposit_one_cent_over_is_refused() -> None:
    err = refused(
        ErrorCode.DEPOSIT_OVER_CAP, validate_deposit, TENDERING, GOODS, D("20000.01"), D("1e6")
    )
    assert err.details["base"] == "1000000.00"  # never "1E+6"
    err = refused(
        ErrorCode.DEPOSIT_OVER_CAP,
        validate_deposit,
        TENDERING,
        GOODS,
        D("2E+4") + D("0.001"),
        D(10**6),
    )
    assert err.details["actual"] == "20000.001"


def test_uneven_cap_allows_the_cents_below_it() -> None:
    estimate = D("1234567.89")  # 2 % = 24,691.3578
    validate_deposit(TENDERING, GOODS, D("24691.35"), estimate)
    err = refused(
        ErrorCode.DEPOSIT_OVER_CAP, validate_deposit, TENDERING, GOODS, D("24691.36"), estimate
    )
    assert err.details["cap"] == "24691.35"
    assert deposit_cap(TENDERING, GOODS, estimate) == D("24691.3578")


def test_works_deposit_capped_at_800000_yuan() -> None:
    big = D("50000000.00")  # 2 % would be 1,000,000
    validate_deposit(TENDERING, WORKS, D("800000.00"), big)
    err = refused(
        ErrorCode.DEPOSIT_OVER_CAP, validate_deposit, TENDERING, WORKS, D("800000.01"), big
    )
    assert err.details["cap"] == "800000.00"
    assert err.details["legal_basis"] == Basis.L30_37
    assert "800,000.00元" in err.message
    validate_deposit(TENDERING, GOODS, D("1000000.00"), big)  # goods: only the 2 % cap
    validate_deposit(PROCUREMENT, SERVICES, D("1000000.00"), big)
    assert deposit_cap(TENDERING, WORKS, big) == D("800000")
    assert deposit_cap(TENDERING, WORKS, D("40000000")) == D("800000.00")


def test_works_deposit_2_percent_still_applies_below_the_cap() -> None:
    refused(
        ErrorCode.DEPOSIT_OVER_CAP, validate_deposit, TENDERING, WORKS, D("500000"), D("20000000")
    )


def test_negative_deposit_or_non_positive_base_is_invalid() -> None:
    err = refused(ErrorCode.AMOUNT_INVALID, validate_deposit, TENDERING, GOODS, D("-1"), D("100"))
    assert err.details["field"] == "deposit"
    err = refused(ErrorCode.AMOUNT_INVALID, validate_deposit, TENDERING, GOODS, D("0"), D("0"))
    assert err.details["field"] == "estimated_price_or_budget"


@pytest.mark.parametrize(
    ("deposit", "base"),
    [(20000.0, D("1000000")), (D("20000"), 1000000.0), (20000, D("1000000")), (True, D("1"))],
)
def test_floats_and_other_non_decimals_are_refused(deposit: object, base: object) -> None:
    with pytest.raises(TypeError, match="Decimal"):
        validate_deposit(TENDERING, GOODS, deposit, base)  # type: ignore[arg-type]


def test_non_finite_decimals_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        validate_deposit(TENDERING, GOODS, D("NaN"), D("1000"))


@given(
    st.decimals(min_value=D("0.01"), max_value=D("1e11"), places=2),
    st.decimals(min_value=D("0"), max_value=D("1e9"), places=2),
)
def test_deposit_rule_matches_its_definition(base: D, deposit: D) -> None:
    allowed = deposit * 50 <= base and deposit <= D("800000")
    try:
        validate_deposit(TENDERING, WORKS, deposit, base)
    except RuleViolation as err:
        assert not allowed and err.code == ErrorCode.DEPOSIT_OVER_CAP
    else:
        assert allowed


# -- performance security (SSTL 58, ZFCGS 48) ---------------------------------------------


def test_performance_security_up_to_10_percent() -> None:
    validate_performance_security(D("100000.00"), D("1000000.00"))
    validate_performance_security(D("0"), D("1000000.00"))
    err = refused(
        ErrorCode.PERFORMANCE_SECURITY_OVER_CAP,
        validate_performance_security,
        D("100000.01"),
        D("1000000.00"),
    )
    assert err.details["cap"] == "100000.00"
    assert Basis.SSTL_58 in err.details["legal_basis"]
    assert Basis.ZFCGS_48 in err.details["legal_basis"]
    assert "10%" in err.message


def test_performance_security_bad_amounts() -> None:
    refused(ErrorCode.AMOUNT_INVALID, validate_performance_security, D("-0.01"), D("100"))
    refused(ErrorCode.AMOUNT_INVALID, validate_performance_security, D("1"), D("0"))
    with pytest.raises(TypeError):
        validate_performance_security(0.1, D("1"))  # type: ignore[arg-type]


# -- price limits (SSTL 27, L87 12) ---------------------------------------------------------


def test_maximum_price_allowed_minimum_never() -> None:
    validate_price_limits(D("950000.00"), None, D("1000000.00"))
    validate_price_limits(None, None, None)
    for minimum in (D("1"), D("0")):
        err = refused(
            ErrorCode.MINIMUM_PRICE_FORBIDDEN, validate_price_limits, None, minimum, D("100")
        )
        assert err.details["legal_basis"] == Basis.SSTL_27
        assert "最低投标限价" in err.message


@pytest.mark.parametrize("maximum", [D("0"), D("-5")])
def test_maximum_price_must_be_positive(maximum: D) -> None:
    refused(ErrorCode.MAXIMUM_PRICE_INVALID, validate_price_limits, maximum, None, D("100"))


def test_procurement_maximum_price_within_the_budget() -> None:
    validate_price_limits(D("1000000"), None, D("1000000"), kind=PROCUREMENT)
    err = refused(
        ErrorCode.MAXIMUM_PRICE_INVALID,
        validate_price_limits,
        D("1000000.01"),
        None,
        D("1000000"),
        kind=PROCUREMENT,
    )
    assert err.details["legal_basis"] == Basis.L87_12
    # tendering: the estimate (标底) does not bound the maximum price
    validate_price_limits(D("1000000.01"), None, D("1000000"), kind=TENDERING)


def test_price_limits_refuse_floats() -> None:
    with pytest.raises(TypeError):
        validate_price_limits(100.0, None)  # type: ignore[arg-type]


# -- bid validity (setting) -----------------------------------------------------------------


@pytest.mark.parametrize("days", [30, 90, 365])
def test_bid_validity_in_range(days: int) -> None:
    validate_bid_validity(days)


@pytest.mark.parametrize("days", [-1, 0, 29, 366])
def test_bid_validity_out_of_range(days: int) -> None:
    err = refused(ErrorCode.BID_VALIDITY_INVALID, validate_bid_validity, days)
    assert err.details == {
        "minimum_days": 30,
        "maximum_days": 365,
        "actual_days": days,
        "legal_basis": f"{Basis.SSTL_25}；{Basis.SETTING}",
    }


def test_bid_validity_range_is_a_center_setting() -> None:
    settings = RuleSettings(bid_validity_min_days=60, bid_validity_max_days=120)
    validate_bid_validity(60, settings)
    refused(ErrorCode.BID_VALIDITY_INVALID, validate_bid_validity, 30, settings)
    with pytest.raises(TypeError):
        validate_bid_validity(True)
    with pytest.raises(TypeError):
        validate_bid_validity(90.0)  # type: ignore[arg-type]


def test_deposit_validity_equals_bid_validity() -> None:
    validate_deposit_validity(90, 90)
    err = refused(ErrorCode.BID_VALIDITY_INVALID, validate_deposit_validity, 90, 60)
    assert err.details["legal_basis"] == Basis.SSTL_26
    refused(ErrorCode.BID_VALIDITY_INVALID, validate_deposit_validity, 90, 120)


def test_messages_inside_a_request_are_plain_strings(app: Flask) -> None:
    """Rules run both in requests (gettext translates) and outside (the Chinese msgid)."""
    for language in ("zh-CN", "en"):
        with (
            app.test_request_context(headers={"Accept-Language": language}),
            pytest.raises(RuleViolation) as exc,
        ):
            validate_deposit(TENDERING, GOODS, D("20100.00"), D("1000000.00"))
        assert isinstance(exc.value.message, str) and "20,100.00" in exc.value.message
        assert exc.value.to_dict()["code"] == "deposit_over_cap"
