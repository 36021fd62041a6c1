"""Money rules (金额规则): deposit and performance security caps, price limits, bid validity.

Amounts are ``Decimal`` yuan and compared exactly (no rounding before the comparison): a
deposit of exactly 2 % of the estimate is allowed, one cent more is not. Floats are refused
with ``TypeError`` — they are a programming error, not a user's.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from flask_babel import gettext as _

from bidding.core.errors import ErrorCode
from bidding.projects.rules.base import (
    DEFAULT_SETTINGS,
    Basis,
    ProcurementKind,
    RuleSettings,
    SubjectType,
    percent,
    require_decimal,
    require_int,
    violation,
    yuan,
)

#: Bid deposit ≤ 2 % of the estimated price / budget (SSTL 26, ZFCGS 33).
DEPOSIT_RATE_CAP = Decimal("0.02")
#: Construction works: bid deposit also ≤ 800,000 yuan (L30 37).
WORKS_DEPOSIT_CAP = Decimal("800000")
CENT = Decimal("0.01")

#: Performance security ≤ 10 % of the contract price (SSTL 58, ZFCGS 48).
PERFORMANCE_SECURITY_RATE_CAP = Decimal("0.10")


def _cents_down(value: Decimal) -> Decimal:
    """The largest amount in whole cents not above ``value`` (what a cap allows)."""
    return value.quantize(CENT, rounding=ROUND_DOWN)


def _amount(value: Decimal) -> Decimal:
    """An amount for ``details``: two decimals unless it has more (``1E+6`` → ``1000000.00``)."""
    cents = value.quantize(CENT)
    return cents if cents == value else value


def _positive(value: Decimal, name: str, label: str) -> None:
    if value <= 0:
        raise violation(
            ErrorCode.AMOUNT_INVALID,
            _("%(label)s应大于零，当前为%(amount)s元。", label=label, amount=yuan(value)),
            field=name,
            actual=_amount(value),
        )


def _not_negative(value: Decimal, name: str, label: str) -> None:
    if value < 0:
        raise violation(
            ErrorCode.AMOUNT_INVALID,
            _("%(label)s不得为负数，当前为%(amount)s元。", label=label, amount=yuan(value)),
            field=name,
            actual=_amount(value),
        )


def deposit_cap(
    kind: ProcurementKind, subject: SubjectType, estimated_price_or_budget: Decimal
) -> Decimal:
    """The largest bid deposit allowed (not rounded: compare, don't display, the raw value)."""
    base = require_decimal(estimated_price_or_budget, "estimated_price_or_budget")
    cap = base * DEPOSIT_RATE_CAP
    if subject is SubjectType.WORKS:
        cap = min(cap, WORKS_DEPOSIT_CAP)
    return cap


def validate_deposit(
    kind: ProcurementKind,
    subject: SubjectType,
    deposit: Decimal,
    estimated_price_or_budget: Decimal,
) -> None:
    """Refuse a bid deposit above 2 % of the estimated price (tendering, SSTL 26) or of the
    budget (procurement, ZFCGS 33), or above 800,000 yuan for works (L30 37).

    A zero deposit (none required) is allowed. Raises ``deposit_over_cap`` or
    ``amount_invalid`` (negative deposit, non-positive estimate).
    """
    deposit = require_decimal(deposit, "deposit")
    base = require_decimal(estimated_price_or_budget, "estimated_price_or_budget")
    base_label = _("招标项目估算价") if kind is ProcurementKind.TENDERING else _("采购项目预算金额")
    _not_negative(deposit, "deposit", _("投标保证金"))
    _positive(base, "estimated_price_or_budget", base_label)
    rate_cap = base * DEPOSIT_RATE_CAP
    rate_basis = Basis.SSTL_26 if kind is ProcurementKind.TENDERING else Basis.ZFCGS_33
    if deposit > rate_cap:
        raise violation(
            ErrorCode.DEPOSIT_OVER_CAP,
            _(
                "投标保证金不得超过%(base_label)s的2%%：%(base_label)s%(base)s元，"
                "保证金上限%(cap)s元，当前为%(deposit)s元（%(ratio)s）。",
                base_label=base_label,
                base=yuan(base),
                cap=yuan(_cents_down(rate_cap)),
                deposit=yuan(deposit),
                ratio=percent((deposit / base).quantize(Decimal("0.0001"))),
            ),
            cap=_cents_down(rate_cap),
            cap_rate=DEPOSIT_RATE_CAP,
            actual=_amount(deposit),
            base=_amount(base),
            legal_basis=rate_basis,
        )
    if subject is SubjectType.WORKS and deposit > WORKS_DEPOSIT_CAP:
        raise violation(
            ErrorCode.DEPOSIT_OVER_CAP,
            _(
                "工程建设项目的投标保证金最高不得超过%(cap)s元，当前为%(deposit)s元。",
                cap=yuan(WORKS_DEPOSIT_CAP),
                deposit=yuan(deposit),
            ),
            cap=_cents_down(WORKS_DEPOSIT_CAP),
            actual=_amount(deposit),
            base=_amount(base),
            legal_basis=Basis.L30_37,
        )


def validate_performance_security(amount: Decimal, contract_price: Decimal) -> None:
    """Refuse a performance security (履约保证金) above 10 % of the contract price
    (SSTL 58, ZFCGS 48): ``performance_security_over_cap`` / ``amount_invalid``."""
    amount = require_decimal(amount, "amount")
    price = require_decimal(contract_price, "contract_price")
    _not_negative(amount, "amount", _("履约保证金"))
    _positive(price, "contract_price", _("合同金额"))
    cap = price * PERFORMANCE_SECURITY_RATE_CAP
    if amount > cap:
        raise violation(
            ErrorCode.PERFORMANCE_SECURITY_OVER_CAP,
            _(
                "履约保证金不得超过合同金额的10%%：合同金额%(price)s元，上限%(cap)s元，"
                "当前为%(amount)s元。",
                price=yuan(price),
                cap=yuan(_cents_down(cap)),
                amount=yuan(amount),
            ),
            cap=_cents_down(cap),
            cap_rate=PERFORMANCE_SECURITY_RATE_CAP,
            actual=_amount(amount),
            base=_amount(price),
            legal_basis=f"{Basis.SSTL_58}；{Basis.ZFCGS_48}",
        )


def validate_price_limits(
    maximum_price: Decimal | None,
    minimum_price: Decimal | None,
    estimated: Decimal | None = None,
    *,
    kind: ProcurementKind | None = None,
) -> None:
    """A maximum price (最高投标限价) may be set, a minimum price (最低投标限价) never (SSTL 27).

    Raises ``minimum_price_forbidden`` for any minimum (even zero) and
    ``maximum_price_invalid`` for a maximum that is not positive or, in procurement, above
    the budget (``estimated``) (L87 12).
    """
    if minimum_price is not None:
        raise violation(
            ErrorCode.MINIMUM_PRICE_FORBIDDEN,
            _("招标人不得规定最低投标限价。"),
            actual=_amount(require_decimal(minimum_price, "minimum_price")),
            legal_basis=Basis.SSTL_27,
        )
    if maximum_price is None:
        return
    maximum = require_decimal(maximum_price, "maximum_price")
    if maximum <= 0:
        raise violation(
            ErrorCode.MAXIMUM_PRICE_INVALID,
            _("最高投标限价应大于零，当前为%(amount)s元。", amount=yuan(maximum)),
            actual=_amount(maximum),
            legal_basis=Basis.SSTL_27,
        )
    if kind is ProcurementKind.PROCUREMENT and estimated is not None:
        budget = require_decimal(estimated, "estimated")
        if maximum > budget:
            raise violation(
                ErrorCode.MAXIMUM_PRICE_INVALID,
                _(
                    "最高限价不得超过采购预算：预算%(budget)s元，最高限价%(amount)s元。",
                    budget=yuan(budget),
                    amount=yuan(maximum),
                ),
                actual=_amount(maximum),
                cap=_amount(budget),
                legal_basis=Basis.L87_12,
            )


def validate_bid_validity(days: int, settings: RuleSettings = DEFAULT_SETTINGS) -> None:
    """Bid validity (投标有效期) in days, within the center's range (*setting*, default
    30–365): ``bid_validity_invalid``."""
    days = require_int(days, "days")
    low, high = settings.bid_validity_min_days, settings.bid_validity_max_days
    if not low <= days <= high:
        raise violation(
            ErrorCode.BID_VALIDITY_INVALID,
            _(
                "投标有效期应在%(low)s日至%(high)s日之间，当前为%(days)s日。",
                low=low,
                high=high,
                days=days,
            ),
            minimum_days=low,
            maximum_days=high,
            actual_days=days,
            legal_basis=f"{Basis.SSTL_25}；{Basis.SETTING}",
        )


def validate_deposit_validity(bid_validity_days: int, deposit_validity_days: int) -> None:
    """The deposit's validity equals the bid validity (SSTL 26): ``bid_validity_invalid``."""
    bid = require_int(bid_validity_days, "bid_validity_days")
    deposit = require_int(deposit_validity_days, "deposit_validity_days")
    if bid != deposit:
        raise violation(
            ErrorCode.BID_VALIDITY_INVALID,
            _(
                "投标保证金有效期应当与投标有效期一致：投标有效期%(bid)s日，"
                "保证金有效期%(deposit)s日。",
                bid=bid,
                deposit=deposit,
            ),
            bid_validity_days=bid,
            deposit_validity_days=deposit,
            legal_basis=Basis.SSTL_26,
        )
