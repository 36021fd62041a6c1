"""Committee and key custodian rules (评标委员会组成、开标密钥保管人数).

Committee: at least 5 members, an odd number, experts at least two thirds (ZTBF 37, L12 9);
government procurement needs at least 7 when the budget is 10 million yuan or more ("以上"
includes the amount itself) or the project is technically complex or of wide public
concern (L87 47).

Custodians: the bid-opening key is split among ``n`` custodians of whom any ``k`` can open
(*setting*: 2 ≤ k ≤ n ≤ 9), and ``n ≥ 3`` so that the center staff, the supervisor and
the agency each hold a share.
"""

from __future__ import annotations

from decimal import Decimal

from flask_babel import gettext as _

from bidding.core.errors import ErrorCode
from bidding.projects.rules.base import (
    DEFAULT_SETTINGS,
    Basis,
    ProcurementKind,
    RuleSettings,
    require_decimal,
    require_int,
    violation,
    yuan,
)

MIN_COMMITTEE = 5
MIN_LARGE_PROCUREMENT_COMMITTEE = 7
LARGE_PROCUREMENT_BUDGET = Decimal("10000000")
MIN_CUSTODIANS = 3
MIN_THRESHOLD = 2


def required_committee_size(
    kind: ProcurementKind, budget: Decimal | None, complex_project: bool
) -> int:
    """The smallest committee allowed (5, or 7 for large or complex procurement)."""
    if kind is ProcurementKind.PROCUREMENT:
        large = budget is not None and require_decimal(budget, "budget") >= LARGE_PROCUREMENT_BUDGET
        if large or complex_project:
            return MIN_LARGE_PROCUREMENT_COMMITTEE
    return MIN_COMMITTEE


def validate_committee(
    kind: ProcurementKind,
    budget: Decimal | None,
    complex_project: bool,
    size: int,
    experts: int,
    tenderer_reps: int,
) -> None:
    """Refuse a committee composition the rules forbid (``committee_invalid``)."""
    size = require_int(size, "size")
    experts = require_int(experts, "experts")
    reps = require_int(tenderer_reps, "tenderer_reps")
    basis = f"{Basis.ZTBF_37}；{Basis.L12_9}" if kind is ProcurementKind.TENDERING else Basis.L87_47
    required = required_committee_size(kind, budget, complex_project)
    if experts < 0 or reps < 0 or experts + reps != size:
        raise violation(
            ErrorCode.COMMITTEE_INVALID,
            _(
                "评标委员会人数应等于专家人数与招标人代表人数之和：共%(size)s人，"
                "专家%(experts)s人，招标人代表%(reps)s人。",
                size=size,
                experts=experts,
                reps=reps,
            ),
            reason="members_sum",
            size=size,
            experts=experts,
            tenderer_reps=reps,
        )
    if size < required:
        if required > MIN_COMMITTEE:
            message = _(
                "采购预算金额在%(amount)s元以上或技术复杂、社会影响较大的项目，评标委员会"
                "成员应当为%(required)s人以上单数，当前为%(size)s人。",
                amount=yuan(LARGE_PROCUREMENT_BUDGET),
                required=required,
                size=size,
            )
        else:
            message = _(
                "评标委员会成员人数应为%(required)s人以上单数，当前为%(size)s人。",
                required=required,
                size=size,
            )
        raise violation(
            ErrorCode.COMMITTEE_INVALID,
            message,
            reason="too_small",
            required=required,
            size=size,
            budget=budget,
            complex_project=complex_project,
            legal_basis=basis,
        )
    if size % 2 == 0:
        raise violation(
            ErrorCode.COMMITTEE_INVALID,
            _("评标委员会成员人数应为单数，当前为%(size)s人。", size=size),
            reason="even",
            size=size,
            legal_basis=basis,
        )
    if experts * 3 < size * 2:
        minimum = -(-size * 2 // 3)
        raise violation(
            ErrorCode.COMMITTEE_INVALID,
            _(
                "评标委员会中技术、经济等方面的专家不得少于成员总数的三分之二：共%(size)s人，"
                "专家至少%(minimum)s人，当前%(experts)s人。",
                size=size,
                minimum=minimum,
                experts=experts,
            ),
            reason="experts_share",
            size=size,
            experts=experts,
            required=minimum,
            legal_basis=basis,
        )


def validate_custodians(k: int, n: int, settings: RuleSettings = DEFAULT_SETTINGS) -> None:
    """Refuse a key-custody scheme outside 2 ≤ k ≤ n ≤ max (9), n ≥ 3 (``custodians_invalid``)."""
    k = require_int(k, "k")
    n = require_int(n, "n")
    high = settings.custodians_max
    if n < MIN_CUSTODIANS or n > high:
        raise violation(
            ErrorCode.CUSTODIANS_INVALID,
            _(
                "开标密钥保管人应为%(low)s至%(high)s人（交易中心、监督部门和代理机构各至少一人），"
                "当前为%(n)s人。",
                low=MIN_CUSTODIANS,
                high=high,
                n=n,
            ),
            reason="custodians_count",
            n=n,
            minimum=MIN_CUSTODIANS,
            maximum=high,
            legal_basis=Basis.SETTING,
        )
    if not MIN_THRESHOLD <= k <= n:
        raise violation(
            ErrorCode.CUSTODIANS_INVALID,
            _(
                "开标解密所需的保管人人数应在%(low)s至%(n)s人之间，当前为%(k)s人。",
                low=MIN_THRESHOLD,
                n=n,
                k=k,
            ),
            reason="threshold",
            k=k,
            n=n,
            minimum=MIN_THRESHOLD,
            legal_basis=Basis.SETTING,
        )
