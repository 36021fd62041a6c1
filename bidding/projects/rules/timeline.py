"""Time rules (时限规则) of a section: DOMAIN.md "Time".

How days are counted
--------------------
All periods are counted on **Asia/Shanghai calendar dates**, whatever the time of day:

* "at least N days after X" (20 days to the deadline, 15 days after an amendment, 10 days
  before the deadline for objections): the later date minus the earlier date is at least
  N. The day of X is not counted, the last day is (《民法典》第二百零一条). Documents issued
  on 2026-03-02 (any hour) allow a deadline on 2026-03-22 (any hour), not on 03-21.
* "within N days of X" (answer an objection, sign the contract, refund a deposit): due by
  the end (23:59:59 Shanghai) of the date N days after X's date.
* availability periods "from the day … to the day …" (documents on sale 5 days / 5
  working days, SSTL 16, L87 18): both the first and the last date count, as notices
  write them ("获取时间：2026年3月2日至3月6日" is 5 working days).
* working days come from a :class:`~bidding.projects.calendar.WorkingCalendar`
  (see there for how they are counted), by default the one in force
  (:func:`~bidding.projects.calendar.current_calendar`: packaged years plus the center's
  loaded files); a year without holiday data raises ``holiday_calendar_missing``.

Every input time must be timezone-aware; results are aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from flask_babel import gettext as _

from bidding.core.errors import ErrorCode
from bidding.projects.calendar import WorkingCalendar, current_calendar
from bidding.projects.rules.base import (
    Basis,
    ProcurementKind,
    end_of_day,
    local_date,
    require_aware,
    require_int,
    shift_local_days,
    violation,
)

#: Tender documents first issued → bid deadline (ZTBF 24, ZFCG 35).
MIN_DAYS_TO_DEADLINE = 20
#: Documents on sale (SSTL 16: days; L87 18: working days), both ends counted.
MIN_SALE_DAYS = 5
#: An amendment or clarification affecting bids leaves at least this many days (ZTBF 23).
MIN_DAYS_AFTER_AMENDMENT = 15
#: Objections to the tender documents at least this many days before the deadline (SSTL 22).
OBJECTION_DAYS_BEFORE_DEADLINE = 10
#: The tenderer answers an objection within this many days (SSTL 22, SSTL 54).
OBJECTION_ANSWER_DAYS = 3
#: Evaluation ends at least this many working days before bid validity ends (L12 40).
EVALUATION_MARGIN_WORKING_DAYS = 30
#: Contract within this many days of the award notice (ZTBF 46, L87 71).
CONTRACT_DAYS = 30


def _calendar(calendar: WorkingCalendar | None) -> WorkingCalendar:
    return calendar if calendar is not None else current_calendar()


@dataclass(frozen=True)
class Timeline:
    """The dates a section publishes (all aware datetimes; the deadline is the opening time)."""

    documents_issued_at: datetime  # 招标文件开始发出
    sale_start: datetime  # 文件获取开始
    sale_end: datetime  # 文件获取截止
    bid_deadline: datetime  # 投标截止 = 开标时间
    objection_cutoff: datetime | None = None  # 异议截止; None = the statutory one
    clarification_cutoff: datetime | None = None  # 投标人提问截止


def validate_timeline(
    kind: ProcurementKind, timeline: Timeline, calendar: WorkingCalendar | None = None
) -> None:
    """Refuse a timeline that breaks ZTBF 24 / ZFCG 35, SSTL 16 / L87 18 or SSTL 22.

    Checked in this order, the first failure raised: ``deadline_too_early`` (also for a
    deadline not after the issue), ``timeline_invalid`` (sale period or cut-offs outside
    issue → deadline, sale ending before it starts), ``sale_period_too_short`` (or
    ``holiday_calendar_missing`` for procurement when the sale period's year has no holiday
    data) and ``objection_too_late``.
    """
    t = timeline
    for name in ("documents_issued_at", "sale_start", "sale_end", "bid_deadline"):
        require_aware(getattr(t, name), name)
    for name in ("objection_cutoff", "clarification_cutoff"):
        if getattr(t, name) is not None:
            require_aware(getattr(t, name), name)

    issued, deadline = local_date(t.documents_issued_at), local_date(t.bid_deadline)
    days = (deadline - issued).days
    if days < MIN_DAYS_TO_DEADLINE:
        earliest = issued + timedelta(days=MIN_DAYS_TO_DEADLINE)
        raise violation(
            ErrorCode.DEADLINE_TOO_EARLY,
            _(
                "自招标文件开始发出之日起至投标截止之日止不得少于%(required)s日：招标文件于"
                "%(issued)s开始发出，投标截止时间最早可定于%(earliest)s，当前仅间隔%(actual)s日。",
                required=MIN_DAYS_TO_DEADLINE,
                issued=issued.isoformat(),
                earliest=earliest.isoformat(),
                actual=days,
            ),
            required_days=MIN_DAYS_TO_DEADLINE,
            actual_days=days,
            issued_on=issued,
            deadline_on=deadline,
            earliest_deadline_on=earliest,
            legal_basis=Basis.ZTBF_24 if kind is ProcurementKind.TENDERING else Basis.ZFCG_35,
        )

    _check_order(t)
    _check_sale_period(kind, t, calendar)

    if t.objection_cutoff is not None and kind is ProcurementKind.TENDERING:
        cutoff_day = local_date(t.objection_cutoff)
        gap = (deadline - cutoff_day).days
        if gap < OBJECTION_DAYS_BEFORE_DEADLINE:
            latest = deadline - timedelta(days=OBJECTION_DAYS_BEFORE_DEADLINE)
            raise violation(
                ErrorCode.OBJECTION_TOO_LATE,
                _(
                    "对招标文件的异议应当在投标截止时间%(required)s日前提出，异议截止时间最晚为"
                    "%(latest)s，当前设置距投标截止仅%(actual)s日。",
                    required=OBJECTION_DAYS_BEFORE_DEADLINE,
                    latest=latest.isoformat(),
                    actual=gap,
                ),
                required_days=OBJECTION_DAYS_BEFORE_DEADLINE,
                actual_days=gap,
                latest_cutoff_on=latest,
                legal_basis=Basis.SSTL_22,
            )


def _check_order(t: Timeline) -> None:
    problems: list[tuple[str, str]] = []
    if t.sale_start < t.documents_issued_at:
        problems.append(("sale_start_before_issue", _("文件获取开始时间早于招标文件发出时间")))
    if t.sale_end <= t.sale_start:
        problems.append(("sale_end_not_after_start", _("文件获取截止时间应晚于开始时间")))
    if t.sale_end > t.bid_deadline:
        problems.append(("sale_end_after_deadline", _("文件获取截止时间不得晚于投标截止时间")))
    for name, label in (
        ("objection_cutoff", _("异议截止时间")),
        ("clarification_cutoff", _("澄清提问截止时间")),
    ):
        value: datetime | None = getattr(t, name)
        if value is not None and not t.documents_issued_at <= value <= t.bid_deadline:
            problems.append(
                (
                    f"{name}_outside_period",
                    _("%(label)s应在招标文件发出之后、投标截止之前", label=label),
                )
            )
    if problems:
        reason, text = problems[0]
        raise violation(
            ErrorCode.TIMELINE_INVALID,
            _("时间安排不合理：%(problem)s。", problem=text),
            reason=reason,
            reasons=[r for r, _text in problems],
        )


def _check_sale_period(
    kind: ProcurementKind, t: Timeline, calendar: WorkingCalendar | None
) -> None:
    first, last = local_date(t.sale_start), local_date(t.sale_end)
    if kind is ProcurementKind.TENDERING:
        days = (last - first).days + 1
        if days < MIN_SALE_DAYS:
            raise violation(
                ErrorCode.SALE_PERIOD_TOO_SHORT,
                _(
                    "招标文件的发售期不得少于%(required)s日（自%(first)s起算），当前仅%(actual)s日。",
                    required=MIN_SALE_DAYS,
                    first=first.isoformat(),
                    actual=days,
                ),
                required_days=MIN_SALE_DAYS,
                actual_days=days,
                unit="days",
                first_on=first,
                last_on=last,
                earliest_end_on=first + timedelta(days=MIN_SALE_DAYS - 1),
                legal_basis=Basis.SSTL_16,
            )
        return
    cal = _calendar(calendar)
    working = cal.working_days_inclusive(first, last)
    if working < MIN_SALE_DAYS:
        earliest = cal.add_working_days(first - timedelta(days=1), MIN_SALE_DAYS)
        raise violation(
            ErrorCode.SALE_PERIOD_TOO_SHORT,
            _(
                "招标文件的提供期限自开始发出之日起不得少于%(required)s个工作日，"
                "获取截止日最早为%(earliest)s，当前仅%(actual)s个工作日。",
                required=MIN_SALE_DAYS,
                earliest=earliest.isoformat(),
                actual=working,
            ),
            required_days=MIN_SALE_DAYS,
            actual_days=working,
            unit="working_days",
            first_on=first,
            last_on=last,
            earliest_end_on=earliest,
            legal_basis=Basis.L87_18,
        )


# -- objections to the tender documents (SSTL 22) -----------------------------------------


def statutory_objection_cutoff(bid_deadline: datetime) -> datetime:
    """The last moment an objection to the documents is in time: end of the day 10 days
    before the deadline's date (SSTL 22)."""
    require_aware(bid_deadline, "bid_deadline")
    return end_of_day(local_date(bid_deadline) - timedelta(days=OBJECTION_DAYS_BEFORE_DEADLINE))


def objection_allowed(at: datetime, deadline: datetime) -> bool:
    """True when an objection raised at ``at`` is at least 10 days before the deadline."""
    require_aware(at, "at")
    return at <= statutory_objection_cutoff(deadline)


def validate_objection(at: datetime, deadline: datetime) -> None:
    """Refuse an objection to the tender documents raised too late (``objection_too_late``)."""
    if objection_allowed(at, deadline):
        return
    cutoff = statutory_objection_cutoff(deadline)
    raise violation(
        ErrorCode.OBJECTION_TOO_LATE,
        _(
            "对招标文件的异议应当在投标截止时间%(required)s日前提出（即%(latest)s前），"
            "已超过异议期限。",
            required=OBJECTION_DAYS_BEFORE_DEADLINE,
            latest=local_date(cutoff).isoformat(),
        ),
        required_days=OBJECTION_DAYS_BEFORE_DEADLINE,
        actual_days=(local_date(deadline) - local_date(at)).days,
        cutoff_at=cutoff,
        legal_basis=Basis.SSTL_22,
    )


def objection_answer_due(raised_at: datetime) -> datetime:
    """The tenderer answers within 3 days of receiving the objection (SSTL 22, 54)."""
    require_aware(raised_at, "raised_at")
    return end_of_day(local_date(raised_at) + timedelta(days=OBJECTION_ANSWER_DAYS))


# -- amendments and clarifications (ZTBF 23, SSTL 21, L87 27) --------------------------------


def deadline_after_amendment(
    deadline: datetime, amendment_at: datetime, *, calendar: WorkingCalendar | None = None
) -> datetime:
    """The bid deadline after a clarification or amendment that may affect bids.

    If fewer than 15 days remain (counted on dates), the deadline moves so that exactly 15
    remain, keeping its time of day; otherwise it is unchanged. With ``calendar``, a moved
    deadline that falls on a day off is moved on to the next working day.
    """
    require_aware(deadline, "deadline")
    require_aware(amendment_at, "amendment_at")
    remaining = (local_date(deadline) - local_date(amendment_at)).days
    if remaining >= MIN_DAYS_AFTER_AMENDMENT:
        return deadline
    moved = shift_local_days(deadline, MIN_DAYS_AFTER_AMENDMENT - remaining)
    if calendar is not None:
        day = local_date(moved)
        moved = shift_local_days(moved, (calendar.on_or_after(day) - day).days)
    return moved


def validate_amendment(
    kind: ProcurementKind, *, changes_subject: bool, changes_qualifications: bool
) -> None:
    """Government procurement: an amendment may not change the subject or the
    qualification conditions (L87 27) — ``amendment_changes_subject``."""
    if kind is not ProcurementKind.PROCUREMENT or not (changes_subject or changes_qualifications):
        return
    what = [
        label
        for flag, label in (
            (changes_subject, _("采购标的")),
            (changes_qualifications, _("资格条件")),
        )
        if flag
    ]
    raise violation(
        ErrorCode.AMENDMENT_CHANGES_SUBJECT,
        _(
            "对已发出的招标文件进行澄清或者修改，不得改变%(what)s；如需改变，应当重新组织采购。",
            what=_("和").join(what),
        ),
        changes_subject=changes_subject,
        changes_qualifications=changes_qualifications,
        legal_basis=Basis.L87_27,
    )


# -- after evaluation ---------------------------------------------------------------------


@dataclass(frozen=True)
class PublicityWindow:
    """When the candidate publicity (tendering) or result notice (procurement) must run."""

    start_by: datetime  # publish at or before this
    ends_not_before: datetime  # keep it up at least until this (for the given start)
    legal_basis: str


def publicity_window(
    kind: ProcurementKind,
    report_at: datetime,
    *,
    started_at: datetime | None = None,
    calendar: WorkingCalendar | None = None,
) -> PublicityWindow:
    """Tendering: publicise the candidates within 3 days of receiving the evaluation report,
    for at least 3 days (SSTL 54). Procurement: publish the result within 2 working days of
    its determination, shown for 1 working day (L87 69).

    ``started_at`` (default ``report_at``) is when the publicity actually starts.
    """
    require_aware(report_at, "report_at")
    start = require_aware(started_at, "started_at") if started_at is not None else report_at
    report_day, start_day = local_date(report_at), local_date(start)
    if kind is ProcurementKind.TENDERING:
        return PublicityWindow(
            start_by=end_of_day(report_day + timedelta(days=3)),
            ends_not_before=end_of_day(start_day + timedelta(days=3)),
            legal_basis=Basis.SSTL_54,
        )
    cal = _calendar(calendar)
    return PublicityWindow(
        start_by=end_of_day(cal.add_working_days(report_day, 2)),
        ends_not_before=end_of_day(cal.add_working_days(start_day, 1)),
        legal_basis=Basis.L87_69,
    )


def contract_due(award_notice_at: datetime) -> datetime:
    """The contract is signed within 30 days of the award notice (ZTBF 46, L87 71)."""
    require_aware(award_notice_at, "award_notice_at")
    return end_of_day(local_date(award_notice_at) + timedelta(days=CONTRACT_DAYS))


class RefundTrigger(StrEnum):
    """What starts the clock on returning a bid deposit (投标保证金退还)."""

    CONTRACT_SIGNED = "contract_signed"  # SSTL 57 (all bidders) / L87 38 (the winner)
    WITHDRAWN = "withdrawn"  # withdrawal before the deadline: SSTL 35 / L87 38
    NOT_AWARDED = "not_awarded"  # procurement losers at the award notice: L87 38


def deposit_refund_due(
    kind: ProcurementKind,
    trigger: RefundTrigger,
    at: datetime,
    calendar: WorkingCalendar | None = None,
) -> datetime:
    """When a bid deposit must be back with the bidder.

    Tendering: 5 days after the contract is signed, for every bidder (SSTL 57), or 5 days
    after a written withdrawal before the deadline (SSTL 35). Procurement: 5 working days
    after the award notice for the losers, after signing for the winner, after a withdrawal
    notice for a withdrawal (L87 38).
    """
    require_aware(at, "at")
    day = local_date(at)
    if kind is ProcurementKind.TENDERING:
        if trigger is RefundTrigger.NOT_AWARDED:
            raise ValueError(
                "tendering refunds every bidder after the contract is signed (SSTL 57): "
                "use RefundTrigger.CONTRACT_SIGNED"
            )
        return end_of_day(day + timedelta(days=5))
    return end_of_day(_calendar(calendar).add_working_days(day, 5))


# -- bid validity and evaluation (SSTL 25, L12 40) ----------------------------------------


def bid_validity_ends(bid_deadline: datetime, bid_validity_days: int) -> datetime:
    """Bid validity runs from the deadline's date (SSTL 25): it ends at the end of the date
    ``bid_validity_days`` after it. The deposit is valid exactly as long (SSTL 26)."""
    require_aware(bid_deadline, "bid_deadline")
    days = require_int(bid_validity_days, "bid_validity_days")
    if days <= 0:
        raise ValueError("bid_validity_days must be positive")
    return end_of_day(local_date(bid_deadline) + timedelta(days=days))


def evaluation_must_finish_by(
    bid_deadline: datetime, bid_validity_days: int, calendar: WorkingCalendar | None = None
) -> datetime:
    """Evaluation and award must be complete 30 working days before bid validity ends
    (L12 40), else the tenderer asks bidders to extend their validity.

    The result is the end of the latest working day that still leaves at least 30 working
    days after it up to and including the validity's last day.
    """
    cal = _calendar(calendar)
    last_day = local_date(bid_validity_ends(bid_deadline, bid_validity_days))
    finish = cal.add_working_days(cal.on_or_before(last_day), -EVALUATION_MARGIN_WORKING_DAYS)
    return end_of_day(finish)
