"""Evaluation method configuration (评标办法设置): DOMAIN.md "Evaluation methods".

The section stores an :class:`EvaluationMethod`; :func:`validate_evaluation_method` refuses
one that the law or good sense forbids before the tender documents are published. The
evaluator computes with the same objects.

Two ways to state the criteria of a comprehensive evaluation (综合评估法):

* **weights** (权重): every criterion has ``weight`` (the weights sum to exactly 1) and is
  scored on 0–100 (``max_score == 100``); total = Σ score × weight;
* **points** (分值): no criterion has a weight; each ``max_score`` is its share of the
  total, and the maxima sum to exactly 100; total = Σ score.

The price share (weight, or price points / 100) is what L87 55 bounds for procurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import StrEnum

from flask_babel import gettext as _

from bidding.core.errors import ErrorCode
from bidding.projects.rules.base import (
    DEFAULT_SETTINGS,
    SUBJECT_LABELS,
    Basis,
    ProcurementKind,
    RuleSettings,
    SubjectType,
    percent,
    require_decimal,
    require_int,
    violation,
)

ONE = Decimal(1)
HUNDRED = Decimal(100)

#: Procurement: smallest price share by subject (L87 55). Works are not under L87.
MIN_PRICE_SHARE = {SubjectType.GOODS: Decimal("0.30"), SubjectType.SERVICES: Decimal("0.10")}

#: Small and micro enterprise price deductions (SME 9): (low, high) inclusive.
SME_BANDS = {
    SubjectType.GOODS: (Decimal("0.06"), Decimal("0.10")),
    SubjectType.SERVICES: (Decimal("0.06"), Decimal("0.10")),
    SubjectType.WORKS: (Decimal("0.03"), Decimal("0.05")),
}
#: Deductions for a consortium (or subcontracting) with ≥ 30 % small/micro share (SME 9).
SME_CONSORTIUM_BANDS = {
    SubjectType.GOODS: (Decimal("0.02"), Decimal("0.03")),
    SubjectType.SERVICES: (Decimal("0.02"), Decimal("0.03")),
    SubjectType.WORKS: (Decimal("0.01"), Decimal("0.02")),
}

#: Fewest prices a trimmed benchmark may average.
MIN_PRICES_AFTER_TRIM = 3


class MethodKind(StrEnum):
    LOWEST_EVALUATED_PRICE = "lowest_evaluated_price"  # 经评审的最低投标价法
    COMPREHENSIVE = "comprehensive"  # 综合评估法


class CriterionCategory(StrEnum):
    PRICE = "price"  # 价格
    TECHNICAL = "technical"  # 技术
    COMMERCIAL = "commercial"  # 商务
    QUALIFICATION = "qualification"  # 资格


class PriceFormulaKind(StrEnum):
    LOW_PRICE_FIRST = "low_price_first"  # 低价优先法 (L87 55)
    BENCHMARK_DEVIATION = "benchmark_deviation"  # 基准价偏差法


class Rounding(StrEnum):
    HALF_UP = "half_up"  # 四舍五入 (default)
    HALF_EVEN = "half_even"
    DOWN = "down"  # 截尾

    @property
    def decimal_mode(self) -> str:
        return {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN, "down": ROUND_DOWN}[
            self.value
        ]


class Combination(StrEnum):
    """How the members' scores of one criterion are combined."""

    MEAN = "mean"  # arithmetic mean of the valid scores
    TRIMMED = "trimmed"  # drop one highest and one lowest per item with 7+ members


@dataclass(frozen=True)
class Criterion:
    """One evaluation criterion (评分因素)."""

    id: str
    name: str
    category: CriterionCategory
    max_score: Decimal
    min_score: Decimal = Decimal(0)
    weight: Decimal | None = None
    #: 客观分: all members must give the same score (L87 64). The price criterion is computed
    #: by the price formula whatever this flag says.
    objective: bool = False


@dataclass(frozen=True)
class TrimRule:
    """From ``min_bids`` compliant prices on (until the next rule), drop this many."""

    min_bids: int
    drop_highest: int = 0
    drop_lowest: int = 0


@dataclass(frozen=True)
class PriceFormula:
    """How price scores are computed; the parameters are stored with the section.

    Benchmark deviation: B = mean(trimmed compliant prices) × (1 − k);
    score = max(0, 100 − 100 · n · |P − B| / B), n = ``n_below`` if P ≤ B else ``n_above``.
    """

    kind: PriceFormulaKind = PriceFormulaKind.LOW_PRICE_FIRST
    k: Decimal = Decimal(0)
    n_below: Decimal = Decimal(0)
    n_above: Decimal = Decimal(0)
    trimming: tuple[TrimRule, ...] = ()

    def trim_for(self, bid_count: int) -> TrimRule | None:
        """The trimming rule that applies to ``bid_count`` prices (None: no trimming)."""
        rules = [r for r in self.trimming if r.min_bids <= bid_count]
        return max(rules, key=lambda r: r.min_bids) if rules else None


@dataclass(frozen=True)
class SmeDeduction:
    """Price deduction for small and micro enterprises (小微企业价格扣除, SME 9)."""

    rate: Decimal
    consortium_rate: Decimal | None = None


@dataclass(frozen=True)
class EvaluationMethod:
    kind: MethodKind
    criteria: Sequence[Criterion] = ()
    price_formula: PriceFormula | None = None
    sme: SmeDeduction | None = None
    score_decimals: int = 2
    rounding: Rounding = Rounding.HALF_UP
    combination: Combination = Combination.MEAN
    notes: str = field(default="", compare=False)

    @property
    def uses_weights(self) -> bool:
        return any(c.weight is not None for c in self.criteria)

    def price_criterion(self) -> Criterion | None:
        prices = [c for c in self.criteria if c.category is CriterionCategory.PRICE]
        return prices[0] if len(prices) == 1 else None

    def price_share(self) -> Decimal | None:
        """The price criterion's share of the total (0–1), if there is one price criterion."""
        price = self.price_criterion()
        if price is None:
            return None
        if price.weight is not None:
            return price.weight
        return price.max_score / HUNDRED

    def round_score(self, value: Decimal) -> Decimal:
        """Round a score as the section states (default 2 decimals, half-up)."""
        exponent = Decimal(1).scaleb(-self.score_decimals)
        return value.quantize(exponent, rounding=self.rounding.decimal_mode)


def _method_invalid(message: str, reason: str, **details: object) -> Exception:
    return violation(ErrorCode.EVALUATION_METHOD_INVALID, message, reason=reason, **details)


def _criteria_invalid(message: str, reason: str, **details: object) -> Exception:
    return violation(ErrorCode.CRITERIA_INVALID, message, reason=reason, **details)


def validate_evaluation_method(
    kind: ProcurementKind,
    subject: SubjectType,
    method: EvaluationMethod,
    settings: RuleSettings = DEFAULT_SETTINGS,
) -> None:
    """Refuse an evaluation method the rules forbid.

    Raises ``evaluation_method_invalid`` (formula, parameters, rounding, SME deduction),
    ``criteria_invalid`` (criteria list, ranges, weights, scored qualifications) and
    ``price_weight_too_low`` (procurement price share under 30 % goods / 10 % services).
    """
    decimals = require_int(method.score_decimals, "score_decimals")
    if not 0 <= decimals <= settings.score_decimals_max:
        raise _method_invalid(
            _(
                "评分保留小数位数应在0至%(high)s位之间，当前为%(actual)s位。",
                high=settings.score_decimals_max,
                actual=decimals,
            ),
            "score_decimals",
            actual=decimals,
            maximum=settings.score_decimals_max,
        )
    if method.kind is MethodKind.LOWEST_EVALUATED_PRICE:
        if method.criteria:
            raise _criteria_invalid(
                _(
                    "经评审的最低投标价法按评标价排序，不设评分因素；请删除评分因素或改用综合评估法。"
                ),
                "criteria_with_lowest_price",
            )
        if method.price_formula is not None:
            raise _method_invalid(
                _("经评审的最低投标价法不使用价格分计算公式。"), "formula_with_lowest_price"
            )
    else:
        _validate_criteria(kind, subject, method)
        _validate_formula(kind, method, settings)
    if method.sme is not None:
        _validate_sme(subject, method.sme)


def _validate_criteria(
    kind: ProcurementKind, subject: SubjectType, method: EvaluationMethod
) -> None:
    criteria = list(method.criteria)
    if not criteria:
        raise _criteria_invalid(_("综合评估法应当设置评分因素。"), "no_criteria")
    seen: set[str] = set()
    for c in criteria:
        if not c.id.strip() or not c.name.strip():
            raise _criteria_invalid(_("每个评分因素都应有编号和名称。"), "missing_name", id=c.id)
        if c.id in seen:
            raise _criteria_invalid(
                _("评分因素编号“%(id)s”重复。", id=c.id), "duplicate_id", id=c.id
            )
        seen.add(c.id)
        low = require_decimal(c.min_score, f"{c.id}.min_score")
        high = require_decimal(c.max_score, f"{c.id}.max_score")
        if low < 0 or high <= low:
            raise _criteria_invalid(
                _(
                    "评分因素“%(name)s”的分值范围不合理（%(low)s～%(high)s）：最低分不得为负，"
                    "最高分应大于最低分。",
                    name=c.name,
                    low=low,
                    high=high,
                ),
                "range",
                id=c.id,
                min_score=low,
                max_score=high,
            )
        if c.weight is not None:
            weight = require_decimal(c.weight, f"{c.id}.weight")
            if not 0 < weight <= 1:
                raise _criteria_invalid(
                    _("评分因素“%(name)s”的权重应大于0且不超过1。", name=c.name),
                    "weight_range",
                    id=c.id,
                    weight=weight,
                )

    weighted = [c for c in criteria if c.weight is not None]
    if weighted and len(weighted) != len(criteria):
        raise _criteria_invalid(
            _("评分因素应统一采用权重或统一采用分值，不能混用。"), "mixed_weights_and_points"
        )
    if weighted:
        not_hundred = [c for c in criteria if c.max_score != HUNDRED]
        if not_hundred:
            c = not_hundred[0]
            raise _criteria_invalid(
                _(
                    "按权重计分时，每个评分因素均按百分制打分；“%(name)s”的最高分为%(high)s。",
                    name=c.name,
                    high=c.max_score,
                ),
                "weighted_scale",
                id=c.id,
                max_score=c.max_score,
            )
        total = sum((c.weight for c in weighted if c.weight is not None), Decimal(0))
        if total != ONE:
            raise _criteria_invalid(
                _("各评分因素的权重之和应为1，当前为%(total)s。", total=total),
                "weights_sum",
                total=total,
                required=ONE,
            )
    else:
        total = sum((c.max_score for c in criteria), Decimal(0))
        if total != HUNDRED:
            raise _criteria_invalid(
                _("各评分因素的分值之和应为100分，当前为%(total)s分。", total=total),
                "points_sum",
                total=total,
                required=HUNDRED,
            )

    prices = [c for c in criteria if c.category is CriterionCategory.PRICE]
    if len(prices) != 1:
        raise _criteria_invalid(
            _("综合评估法应当设置且只设置一个价格评分因素，当前为%(count)s个。", count=len(prices)),
            "price_criterion_count",
            count=len(prices),
        )
    price = prices[0]
    if price.min_score != 0:
        raise _criteria_invalid(
            _("价格分按公式计算，最低分应为0，当前为%(low)s。", low=price.min_score),
            "price_range",
            id=price.id,
            min_score=price.min_score,
        )

    if kind is ProcurementKind.PROCUREMENT:
        qualifications = [c for c in criteria if c.category is CriterionCategory.QUALIFICATION]
        if qualifications:
            raise _criteria_invalid(
                _(
                    "资格条件不得作为评审因素：请删除评分因素“%(name)s”。",
                    name=qualifications[0].name,
                ),
                "qualification_scored",
                id=qualifications[0].id,
                legal_basis=Basis.L87_55,
            )
        minimum = MIN_PRICE_SHARE.get(subject)
        share = method.price_share()
        if minimum is not None and share is not None and share < minimum:
            raise violation(
                ErrorCode.PRICE_WEIGHT_TOO_LOW,
                _(
                    "%(subject)s项目的价格分值占总分值的比重不得低于%(required)s，当前为%(actual)s。",
                    subject=SUBJECT_LABELS[subject],
                    required=percent(minimum),
                    actual=percent(share),
                ),
                required=minimum,
                actual=share,
                subject=subject,
                legal_basis=Basis.L87_55,
            )


def _validate_formula(
    kind: ProcurementKind, method: EvaluationMethod, settings: RuleSettings
) -> None:
    formula = method.price_formula
    if formula is None:
        raise _method_invalid(_("综合评估法应当选择价格分计算方法。"), "formula_missing")
    k = require_decimal(formula.k, "k")
    n_below = require_decimal(formula.n_below, "n_below")
    n_above = require_decimal(formula.n_above, "n_above")
    if formula.kind is PriceFormulaKind.LOW_PRICE_FIRST:
        if formula.trimming:
            raise _method_invalid(
                _("低价优先法不得去掉最高报价或最低报价。"),
                "trimming_forbidden",
                legal_basis=Basis.L87_55,
            )
        if k != 0 or n_below != 0 or n_above != 0:
            raise _method_invalid(
                _("低价优先法不使用下浮系数和偏差扣分系数，请清空这些参数。"),
                "parameters_with_low_price_first",
            )
        return
    if kind is ProcurementKind.PROCUREMENT:
        raise _method_invalid(
            _("政府采购项目的价格分统一采用低价优先法计算，不得采用基准价偏差法。"),
            "procurement_requires_low_price_first",
            legal_basis=Basis.L87_55,
        )
    if not 0 <= k <= settings.benchmark_k_max:
        raise _method_invalid(
            _(
                "基准价下浮系数K应在0至%(high)s之间，当前为%(k)s。",
                high=settings.benchmark_k_max,
                k=k,
            ),
            "k_range",
            k=k,
            maximum=settings.benchmark_k_max,
        )
    n_max = settings.benchmark_n_max
    if not (0 <= n_below <= n_max and 0 < n_above <= n_max):
        raise _method_invalid(
            _(
                "偏差扣分系数应在0至%(high)s之间（高于基准价的扣分系数应大于0），"
                "当前低于基准价为%(below)s，高于基准价为%(above)s。",
                high=n_max,
                below=n_below,
                above=n_above,
            ),
            "n_range",
            n_below=n_below,
            n_above=n_above,
            maximum=n_max,
        )
    seen: set[int] = set()
    for rule in formula.trimming:
        bids = require_int(rule.min_bids, "min_bids")
        high = require_int(rule.drop_highest, "drop_highest")
        low = require_int(rule.drop_lowest, "drop_lowest")
        if bids in seen or high < 0 or low < 0 or bids - high - low < MIN_PRICES_AFTER_TRIM:
            raise _method_invalid(
                _(
                    "报价去高去低规则不合理：%(bids)s家及以上时去掉%(high)s个最高价、%(low)s个"
                    "最低价，剩余报价不得少于%(min)s家，且每个家数只能设一条规则。",
                    bids=bids,
                    high=high,
                    low=low,
                    min=MIN_PRICES_AFTER_TRIM,
                ),
                "trimming_rule",
                min_bids=bids,
                drop_highest=high,
                drop_lowest=low,
            )
        seen.add(bids)


def _validate_sme(subject: SubjectType, sme: SmeDeduction) -> None:
    checks = [("rate", sme.rate, SME_BANDS[subject], _("小微企业"))]
    if sme.consortium_rate is not None:
        checks.append(
            (
                "consortium_rate",
                sme.consortium_rate,
                SME_CONSORTIUM_BANDS[subject],
                _("小微企业占比达到30%以上的联合体或分包"),
            )
        )
    for name, value, (low, high), who in checks:
        rate = require_decimal(value, name)
        if not low <= rate <= high:
            raise _method_invalid(
                _(
                    "%(subject)s项目对%(who)s的价格扣除比例应为%(low)s～%(high)s，"
                    "当前为%(actual)s。",
                    subject=SUBJECT_LABELS[subject],
                    who=who,
                    low=percent(low),
                    high=percent(high),
                    actual=percent(rate),
                ),
                "sme_" + name,
                required_min=low,
                required_max=high,
                actual=rate,
                subject=subject,
                legal_basis=Basis.SME_9,
            )
