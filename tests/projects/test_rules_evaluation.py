"""Evaluation method configuration: criteria, weights, price share, formulas, SME deductions."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from bidding.core.errors import ErrorCode, RuleViolation
from bidding.projects.rules import (
    Basis,
    Combination,
    Criterion,
    CriterionCategory,
    EvaluationMethod,
    MethodKind,
    PriceFormula,
    PriceFormulaKind,
    ProcurementKind,
    Rounding,
    RuleSettings,
    SmeDeduction,
    SubjectType,
    TrimRule,
    validate_evaluation_method,
)

TENDERING, PROCUREMENT = ProcurementKind.TENDERING, ProcurementKind.PROCUREMENT
WORKS, GOODS, SERVICES = SubjectType.WORKS, SubjectType.GOODS, SubjectType.SERVICES
PRICE, TECH, COMM, QUAL = (
    CriterionCategory.PRICE,
    CriterionCategory.TECHNICAL,
    CriterionCategory.COMMERCIAL,
    CriterionCategory.QUALIFICATION,
)
LOW_PRICE_FIRST = PriceFormula()
BENCHMARK = PriceFormula(
    PriceFormulaKind.BENCHMARK_DEVIATION,
    k=D("0.05"),
    n_below=D("1"),
    n_above=D("2"),
    trimming=(TrimRule(6, drop_highest=1), TrimRule(7, drop_highest=1, drop_lowest=1)),
)


def weighted(price: str = "0.30", tech: str = "0.50", comm: str = "0.20") -> EvaluationMethod:
    """The DOMAIN.md worked example: goods, weights 0.30 / 0.50 / 0.20."""
    return EvaluationMethod(
        kind=MethodKind.COMPREHENSIVE,
        criteria=(
            Criterion("price", "价格", PRICE, D(100), weight=D(price), objective=True),
            Criterion("tech", "技术方案", TECH, D(100), weight=D(tech)),
            Criterion("comm", "商务条款", COMM, D(100), weight=D(comm)),
        ),
        price_formula=LOW_PRICE_FIRST,
    )


def points(price: str = "30", tech: str = "50", comm: str = "20") -> EvaluationMethod:
    return EvaluationMethod(
        kind=MethodKind.COMPREHENSIVE,
        criteria=(
            Criterion("price", "价格", PRICE, D(price), objective=True),
            Criterion("tech", "技术方案", TECH, D(tech)),
            Criterion("comm", "售后服务", COMM, D(comm), objective=True),
        ),
        price_formula=LOW_PRICE_FIRST,
    )


def with_criteria(method: EvaluationMethod, *criteria: Criterion) -> EvaluationMethod:
    return replace(method, criteria=criteria)


def refused(
    code: ErrorCode,
    kind: ProcurementKind,
    subject: SubjectType,
    method: EvaluationMethod,
    settings: RuleSettings | None = None,
) -> RuleViolation:
    with pytest.raises(RuleViolation) as exc:
        if settings is None:
            validate_evaluation_method(kind, subject, method)
        else:
            validate_evaluation_method(kind, subject, method, settings)
    assert exc.value.code == code, exc.value.to_dict()
    assert exc.value.http_status == 422
    return exc.value


# -- accepted configurations ----------------------------------------------------------------


@pytest.mark.parametrize("make", [weighted, points])
@pytest.mark.parametrize("kind", list(ProcurementKind))
def test_worked_example_configurations_pass(make: object, kind: ProcurementKind) -> None:
    assert callable(make)
    validate_evaluation_method(kind, GOODS, make())


def test_lowest_evaluated_price_has_no_criteria() -> None:
    method = EvaluationMethod(MethodKind.LOWEST_EVALUATED_PRICE)
    validate_evaluation_method(PROCUREMENT, GOODS, method)
    validate_evaluation_method(TENDERING, WORKS, replace(method, sme=SmeDeduction(D("0.04"))))


def test_tendering_works_benchmark_deviation_passes() -> None:
    validate_evaluation_method(TENDERING, WORKS, replace(points(), price_formula=BENCHMARK))


def test_price_share_and_helpers() -> None:
    assert weighted().price_share() == D("0.30")
    assert points("45", "40", "15").price_share() == D("0.45")
    assert weighted().uses_weights and not points().uses_weights
    assert EvaluationMethod(MethodKind.COMPREHENSIVE).price_share() is None
    assert BENCHMARK.trim_for(5) is None
    assert BENCHMARK.trim_for(6) == TrimRule(6, 1, 0)
    assert BENCHMARK.trim_for(9) == TrimRule(7, 1, 1)


def test_score_rounding() -> None:
    method = weighted()
    assert method.round_score(D(95) / D(120) * 100) == D("79.17")  # DOMAIN.md example C
    assert method.round_score(D("2.675")) == D("2.68")
    assert replace(method, rounding=Rounding.HALF_EVEN).round_score(D("2.665")) == D("2.66")
    assert replace(method, rounding=Rounding.DOWN).round_score(D("2.679")) == D("2.67")
    assert replace(method, score_decimals=0).round_score(D("84.5")) == D("85")


# -- price share (L87 55) -------------------------------------------------------------------


def test_goods_price_weight_29_99_percent_is_refused() -> None:
    err = refused(ErrorCode.PRICE_WEIGHT_TOO_LOW, PROCUREMENT, GOODS, weighted("0.2999", "0.5001"))
    assert err.details["required"] == "0.30"
    assert err.details["actual"] == "0.2999"
    assert err.details["legal_basis"] == Basis.L87_55
    assert "货物项目" in err.message and "29.99%" in err.message and "30%" in err.message


def test_goods_price_points_below_30_are_refused() -> None:
    refused(ErrorCode.PRICE_WEIGHT_TOO_LOW, PROCUREMENT, GOODS, points("29.99", "50.01"))


def test_services_price_share_at_least_10_percent() -> None:
    validate_evaluation_method(PROCUREMENT, SERVICES, weighted("0.10", "0.70"))
    err = refused(
        ErrorCode.PRICE_WEIGHT_TOO_LOW, PROCUREMENT, SERVICES, weighted("0.0999", "0.7001")
    )
    assert "服务项目" in err.message


def test_price_share_floor_is_procurement_only() -> None:
    validate_evaluation_method(TENDERING, GOODS, weighted("0.10", "0.70"))
    validate_evaluation_method(PROCUREMENT, WORKS, weighted("0.05", "0.75"))


# -- criteria -------------------------------------------------------------------------------


def test_procurement_may_not_score_qualifications() -> None:
    method = with_criteria(
        points(),
        Criterion("price", "价格", PRICE, D(30), objective=True),
        Criterion("tech", "技术方案", TECH, D(60)),
        Criterion("qual", "企业资质等级", QUAL, D(10), objective=True),
    )
    err = refused(ErrorCode.CRITERIA_INVALID, PROCUREMENT, GOODS, method)
    assert err.details["reason"] == "qualification_scored"
    assert err.details["legal_basis"] == Basis.L87_55
    assert "企业资质等级" in err.message
    validate_evaluation_method(TENDERING, WORKS, method)


@pytest.mark.parametrize(
    ("method", "reason"),
    [
        (weighted("0.30", "0.50", "0.25"), "weights_sum"),
        (weighted("0.30", "0.50", "0.19"), "weights_sum"),
        (points("30", "50", "25"), "points_sum"),
        (points("30", "50", "19.99"), "points_sum"),
    ],
)
def test_weights_sum_to_one_and_points_to_100(method: EvaluationMethod, reason: str) -> None:
    err = refused(ErrorCode.CRITERIA_INVALID, TENDERING, GOODS, method)
    assert err.details["reason"] == reason


C_PRICE = Criterion("price", "价格", PRICE, D(30), objective=True)


@pytest.mark.parametrize(
    ("criteria", "reason"),
    [
        ((), "no_criteria"),
        ((C_PRICE, Criterion(" ", "技术", TECH, D(70))), "missing_name"),
        ((C_PRICE, Criterion("t", "", TECH, D(70))), "missing_name"),
        ((C_PRICE, Criterion("price", "技术", TECH, D(70))), "duplicate_id"),
        ((C_PRICE, Criterion("t", "技术", TECH, D(70), min_score=D(-1))), "range"),
        ((C_PRICE, Criterion("t", "技术", TECH, D(70), min_score=D(70))), "range"),
        ((C_PRICE, Criterion("t", "技术", TECH, D(0))), "range"),
        (
            (C_PRICE, Criterion("t", "技术", TECH, D(70), weight=D("0.7"))),
            "mixed_weights_and_points",
        ),
        (
            (
                Criterion("p", "价格", PRICE, D(100), weight=D(0), objective=True),
                Criterion("t", "技术", TECH, D(100), weight=D(1)),
            ),
            "weight_range",
        ),
        (
            (
                Criterion("p", "价格", PRICE, D(100), weight=D("0.3"), objective=True),
                Criterion("t", "技术", TECH, D(100), weight=D("1.1")),
            ),
            "weight_range",
        ),
        (
            (
                Criterion("p", "价格", PRICE, D(100), weight=D("0.3"), objective=True),
                Criterion("t", "技术", TECH, D(10), weight=D("0.7")),
            ),
            "weighted_scale",
        ),
        ((Criterion("t", "技术", TECH, D(100)),), "price_criterion_count"),
        (
            (
                C_PRICE,
                Criterion("p2", "价格二", PRICE, D(20), objective=True),
                Criterion("t", "技术", TECH, D(50)),
            ),
            "price_criterion_count",
        ),
        (
            (
                Criterion("p", "价格", PRICE, D(30), min_score=D(10), objective=True),
                Criterion("t", "技术", TECH, D(70)),
            ),
            "price_range",
        ),
    ],
)
def test_bad_criteria_are_refused(criteria: tuple[Criterion, ...], reason: str) -> None:
    err = refused(ErrorCode.CRITERIA_INVALID, TENDERING, GOODS, with_criteria(points(), *criteria))
    assert err.details["reason"] == reason


def test_price_criterion_need_not_be_flagged_objective() -> None:
    method = with_criteria(
        points(),
        Criterion("p", "价格", PRICE, D(30)),
        Criterion("t", "技术", TECH, D(70)),
    )
    validate_evaluation_method(PROCUREMENT, GOODS, method)


def test_criteria_scores_must_be_decimals() -> None:
    method = with_criteria(points(), Criterion("p", "价格", PRICE, 30.0, objective=True))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Decimal"):
        validate_evaluation_method(TENDERING, GOODS, method)


# -- lowest evaluated price ---------------------------------------------------------------


def test_lowest_evaluated_price_refuses_criteria_and_formula() -> None:
    lowest = EvaluationMethod(MethodKind.LOWEST_EVALUATED_PRICE)
    err = refused(
        ErrorCode.CRITERIA_INVALID, TENDERING, GOODS, replace(lowest, criteria=(C_PRICE,))
    )
    assert err.details["reason"] == "criteria_with_lowest_price"
    err = refused(
        ErrorCode.EVALUATION_METHOD_INVALID,
        TENDERING,
        GOODS,
        replace(lowest, price_formula=LOW_PRICE_FIRST),
    )
    assert err.details["reason"] == "formula_with_lowest_price"


# -- price formulas -------------------------------------------------------------------------


def test_comprehensive_needs_a_price_formula() -> None:
    err = refused(
        ErrorCode.EVALUATION_METHOD_INVALID, TENDERING, GOODS, replace(points(), price_formula=None)
    )
    assert err.details["reason"] == "formula_missing"


def test_low_price_first_forbids_trimming() -> None:
    formula = PriceFormula(trimming=(TrimRule(7, 1, 1),))
    err = refused(
        ErrorCode.EVALUATION_METHOD_INVALID,
        PROCUREMENT,
        GOODS,
        replace(points(), price_formula=formula),
    )
    assert err.details["reason"] == "trimming_forbidden"
    assert err.details["legal_basis"] == Basis.L87_55
    assert "不得去掉最高报价或最低报价" in err.message


@pytest.mark.parametrize(
    "formula", [PriceFormula(k=D("0.05")), PriceFormula(n_below=D(1)), PriceFormula(n_above=D(1))]
)
def test_low_price_first_takes_no_benchmark_parameters(formula: PriceFormula) -> None:
    err = refused(
        ErrorCode.EVALUATION_METHOD_INVALID,
        TENDERING,
        GOODS,
        replace(points(), price_formula=formula),
    )
    assert err.details["reason"] == "parameters_with_low_price_first"


def test_procurement_must_use_low_price_first() -> None:
    err = refused(
        ErrorCode.EVALUATION_METHOD_INVALID,
        PROCUREMENT,
        SERVICES,
        replace(points(), price_formula=BENCHMARK),
    )
    assert err.details["reason"] == "procurement_requires_low_price_first"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"k": D("-0.01")}, "k_range"),
        ({"k": D("0.21")}, "k_range"),
        ({"n_below": D("-1")}, "n_range"),
        ({"n_below": D("10.5")}, "n_range"),
        ({"n_above": D("0")}, "n_range"),
        ({"n_above": D("11")}, "n_range"),
        ({"trimming": (TrimRule(4, 1, 1),)}, "trimming_rule"),
        ({"trimming": (TrimRule(6, -1, 0),)}, "trimming_rule"),
        ({"trimming": (TrimRule(7, 1, 1), TrimRule(7, 1, 0))}, "trimming_rule"),
    ],
)
def test_benchmark_parameters_out_of_range(changes: dict[str, object], reason: str) -> None:
    formula = replace(BENCHMARK, **changes)  # type: ignore[arg-type]
    method = replace(points(), price_formula=formula)
    err = refused(ErrorCode.EVALUATION_METHOD_INVALID, TENDERING, WORKS, method)
    assert err.details["reason"] == reason


def test_benchmark_edges_and_settings() -> None:
    trim_to_three = replace(BENCHMARK, trimming=(TrimRule(5, 1, 1),))  # 3 prices remain
    validate_evaluation_method(TENDERING, WORKS, replace(points(), price_formula=trim_to_three))
    edge = replace(BENCHMARK, k=D("0.20"), n_below=D(0), n_above=D(10))
    validate_evaluation_method(TENDERING, WORKS, replace(points(), price_formula=edge))
    wide = replace(BENCHMARK, k=D("0.30"))
    refused(
        ErrorCode.EVALUATION_METHOD_INVALID, TENDERING, WORKS, replace(points(), price_formula=wide)
    )
    validate_evaluation_method(
        TENDERING,
        WORKS,
        replace(points(), price_formula=wide),
        RuleSettings(benchmark_k_max=D("0.3")),
    )


# -- SME price deduction (SME 9) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "rate", "ok"),
    [
        (GOODS, "0.06", True),
        (GOODS, "0.10", True),
        (GOODS, "0.0599", False),
        (GOODS, "0.1001", False),
        (SERVICES, "0.08", True),
        (SERVICES, "0.05", False),
        (WORKS, "0.03", True),
        (WORKS, "0.05", True),
        (WORKS, "0.06", False),
        (WORKS, "0.029", False),
    ],
)
def test_sme_deduction_band(subject: SubjectType, rate: str, ok: bool) -> None:
    method = replace(points(), sme=SmeDeduction(D(rate)))
    if ok:
        validate_evaluation_method(PROCUREMENT, subject, method)
        return
    err = refused(ErrorCode.EVALUATION_METHOD_INVALID, PROCUREMENT, subject, method)
    assert err.details["reason"] == "sme_rate"
    assert err.details["legal_basis"] == Basis.SME_9


@pytest.mark.parametrize(
    ("subject", "rate", "ok"),
    [
        (GOODS, "0.02", True),
        (GOODS, "0.03", True),
        (GOODS, "0.04", False),
        (WORKS, "0.01", True),
        (WORKS, "0.03", False),
    ],
)
def test_sme_consortium_band(subject: SubjectType, rate: str, ok: bool) -> None:
    main = "0.06" if subject is GOODS else "0.03"
    method = replace(points(), sme=SmeDeduction(D(main), consortium_rate=D(rate)))
    if ok:
        validate_evaluation_method(PROCUREMENT, subject, method)
        return
    err = refused(ErrorCode.EVALUATION_METHOD_INVALID, PROCUREMENT, subject, method)
    assert err.details["reason"] == "sme_consortium_rate"


# -- rounding and combination -----------------------------------------------------------------


@pytest.mark.parametrize("decimals", [-1, 5])
def test_score_decimals_out_of_range(decimals: int) -> None:
    err = refused(
        ErrorCode.EVALUATION_METHOD_INVALID,
        TENDERING,
        GOODS,
        replace(points(), score_decimals=decimals),
    )
    assert err.details["reason"] == "score_decimals"


def test_trimmed_combination_is_a_valid_choice() -> None:
    validate_evaluation_method(
        PROCUREMENT, GOODS, replace(points(), combination=Combination.TRIMMED)
    )
