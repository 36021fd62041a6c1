"""Tender rules (招标采购规则): pure functions the projects and sections services call.

No database, no Flask globals: inputs are the dataclasses and enums below, and every
refusal is a :class:`~bidding.core.errors.RuleViolation` (HTTP 422) with a stable
:class:`~bidding.core.errors.ErrorCode`, a Chinese message (through Flask-Babel's
``gettext``, which returns the Chinese text outside a request) and ``details`` carrying the
figures (required, actual) and the legal basis (``details["legal_basis"]``).

* :mod:`.timeline` — the 20-day, 5-day, 15-day and 10-day rules, objection, publicity,
  contract, deposit refund and evaluation due dates (DOMAIN.md "Time");
* :mod:`.money` — deposit, performance security, price limits, bid validity ("Money");
* :mod:`.evaluation` — evaluation method configuration ("Evaluation methods");
* :mod:`.committee` — committee composition and key custodians ("Committee").
"""

from bidding.projects.rules.base import (
    DEFAULT_SETTINGS,
    Basis,
    ProcurementKind,
    RuleSettings,
    SubjectType,
)
from bidding.projects.rules.committee import (
    required_committee_size,
    validate_committee,
    validate_custodians,
)
from bidding.projects.rules.evaluation import (
    Combination,
    Criterion,
    CriterionCategory,
    EvaluationMethod,
    MethodKind,
    PriceFormula,
    PriceFormulaKind,
    Rounding,
    SmeDeduction,
    TrimRule,
    validate_evaluation_method,
)
from bidding.projects.rules.money import (
    deposit_cap,
    validate_bid_validity,
    validate_deposit,
    validate_deposit_validity,
    validate_performance_security,
    validate_price_limits,
)
from bidding.projects.rules.timeline import (
    PublicityWindow,
    RefundTrigger,
    Timeline,
    bid_validity_ends,
    contract_due,
    deadline_after_amendment,
    deposit_refund_due,
    evaluation_must_finish_by,
    objection_allowed,
    objection_answer_due,
    publicity_window,
    statutory_objection_cutoff,
    validate_amendment,
    validate_objection,
    validate_timeline,
)

__all__ = [
    "DEFAULT_SETTINGS",
    "Basis",
    "Combination",
    "Criterion",
    "CriterionCategory",
    "EvaluationMethod",
    "MethodKind",
    "PriceFormula",
    "PriceFormulaKind",
    "ProcurementKind",
    "PublicityWindow",
    "RefundTrigger",
    "Rounding",
    "RuleSettings",
    "SmeDeduction",
    "SubjectType",
    "Timeline",
    "TrimRule",
    "bid_validity_ends",
    "contract_due",
    "deadline_after_amendment",
    "deposit_cap",
    "deposit_refund_due",
    "evaluation_must_finish_by",
    "objection_allowed",
    "objection_answer_due",
    "publicity_window",
    "required_committee_size",
    "statutory_objection_cutoff",
    "validate_amendment",
    "validate_bid_validity",
    "validate_committee",
    "validate_custodians",
    "validate_deposit",
    "validate_deposit_validity",
    "validate_evaluation_method",
    "validate_objection",
    "validate_performance_security",
    "validate_price_limits",
    "validate_timeline",
]
