"""What every rule shares: the kinds of procedure and subject, per-center settings, the legal
sources cited in refusals, and the helpers that turn times into Asia/Shanghai dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from flask_babel import lazy_gettext as _l

from bidding.core.clock import SHANGHAI
from bidding.core.errors import ErrorCode, RuleViolation


class ProcurementKind(StrEnum):
    """Which law governs a section (招标投标 vs 政府采购)."""

    #: Tendering under 《招标投标法》 and its implementing regulation (ZTBF, SSTL).
    TENDERING = "tendering"
    #: Government procurement under 《政府采购法》 and 财政部87号令 (ZFCG, ZFCGS, L87).
    PROCUREMENT = "procurement"


class SubjectType(StrEnum):
    """What is bought (采购标的类型)."""

    WORKS = "works"  # 工程
    GOODS = "goods"  # 货物
    SERVICES = "services"  # 服务


SUBJECT_LABELS = {
    SubjectType.WORKS: _l("工程"),
    SubjectType.GOODS: _l("货物"),
    SubjectType.SERVICES: _l("服务"),
}


class Basis:
    """Legal sources cited in refusals' ``details["legal_basis"]``."""

    ZTBF_23 = "《招标投标法》第二十三条"
    ZTBF_24 = "《招标投标法》第二十四条"
    ZTBF_37 = "《招标投标法》第三十七条"
    ZTBF_46 = "《招标投标法》第四十六条"
    SSTL_16 = "《招标投标法实施条例》第十六条"
    SSTL_21 = "《招标投标法实施条例》第二十一条"
    SSTL_22 = "《招标投标法实施条例》第二十二条"
    SSTL_25 = "《招标投标法实施条例》第二十五条"
    SSTL_26 = "《招标投标法实施条例》第二十六条"
    SSTL_27 = "《招标投标法实施条例》第二十七条"
    SSTL_35 = "《招标投标法实施条例》第三十五条"
    SSTL_54 = "《招标投标法实施条例》第五十四条"
    SSTL_57 = "《招标投标法实施条例》第五十七条"
    SSTL_58 = "《招标投标法实施条例》第五十八条"
    ZFCG_35 = "《政府采购法》第三十五条"
    ZFCGS_33 = "《政府采购法实施条例》第三十三条"
    ZFCGS_48 = "《政府采购法实施条例》第四十八条"
    L87_12 = "《政府采购货物和服务招标投标管理办法》（财政部令第87号）第十二条"
    L87_18 = "《政府采购货物和服务招标投标管理办法》（财政部令第87号）第十八条"
    L87_27 = "《政府采购货物和服务招标投标管理办法》（财政部令第87号）第二十七条"
    L87_38 = "《政府采购货物和服务招标投标管理办法》（财政部令第87号）第三十八条"
    L87_47 = "《政府采购货物和服务招标投标管理办法》（财政部令第87号）第四十七条"
    L87_55 = "《政府采购货物和服务招标投标管理办法》（财政部令第87号）第五十五条"
    L87_69 = "《政府采购货物和服务招标投标管理办法》（财政部令第87号）第六十九条"
    L87_71 = "《政府采购货物和服务招标投标管理办法》（财政部令第87号）第七十一条"
    L12_9 = "《评标委员会和评标方法暂行规定》第九条"
    L12_40 = "《评标委员会和评标方法暂行规定》第四十条"
    L30_37 = "《工程建设项目施工招标投标办法》第三十七条"
    SME_9 = "《政府采购促进中小企业发展管理办法》（财库〔2020〕46号）第九条"
    SETTING = "本中心交易规则设置"


@dataclass(frozen=True)
class RuleSettings:
    """The *setting* rules (no national number): per-center configuration, defaults shown."""

    bid_validity_min_days: int = 30
    bid_validity_max_days: int = 365
    custodians_max: int = 9
    #: Largest downward factor K of the benchmark-deviation price formula.
    benchmark_k_max: Decimal = Decimal("0.20")
    #: Largest deduction factor n (points per 1 % deviation) of that formula.
    benchmark_n_max: Decimal = Decimal("10")
    score_decimals_max: int = 4


DEFAULT_SETTINGS = RuleSettings()


def violation(code: ErrorCode, message: str, /, **details: Any) -> RuleViolation:
    """A :class:`RuleViolation` with ``details`` made JSON-friendly."""
    return RuleViolation(message, code=code, details={k: _plain(v) for k, v in details.items()})


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")  # never exponent notation
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- time helpers ----------------------------------------------------------------------------


def require_aware(value: datetime, name: str) -> datetime:
    """Refuse naive datetimes (a programming error, not a user's)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC)")
    return value


def local_date(value: datetime) -> date:
    """The Asia/Shanghai calendar date of an aware time (the date days are counted in)."""
    return value.astimezone(SHANGHAI).date()


def end_of_day(day: date) -> datetime:
    """The last second of ``day`` in Asia/Shanghai (23:59:59), as aware UTC.

    Due times computed here are inclusive: an act *at or before* the value is in time.
    """
    return datetime.combine(day, time(23, 59, 59), tzinfo=SHANGHAI).astimezone(UTC)


def shift_local_days(value: datetime, days: int) -> datetime:
    """``value`` moved by whole calendar days in Asia/Shanghai, keeping the time of day."""
    local = value.astimezone(SHANGHAI)
    return (local + timedelta(days=days)).astimezone(UTC)


# -- money helpers ---------------------------------------------------------------------------


def require_decimal(value: Any, name: str) -> Decimal:
    """Money and ratios are ``Decimal``: floats (and anything else) are refused."""
    if isinstance(value, bool) or not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{name} must be finite")
    return value


def require_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


def yuan(amount: Decimal) -> str:
    """``1234567.8`` → ``"1,234,567.80"`` for messages."""
    return f"{amount:,.2f}"


def percent(ratio: Decimal) -> str:
    """``0.3`` → ``"30%"``, ``0.2999`` → ``"29.99%"`` for messages."""
    text = f"{ratio * 100:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "%"
