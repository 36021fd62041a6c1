"""Time rules: 20 / 5 / 15 / 10 days, objections, publicity, contract, refunds, evaluation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from bidding.core.clock import SHANGHAI
from bidding.core.errors import ErrorCode, RuleViolation
from bidding.projects.calendar import national_calendar
from bidding.projects.rules import (
    Basis,
    ProcurementKind,
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

TENDERING, PROCUREMENT = ProcurementKind.TENDERING, ProcurementKind.PROCUREMENT
CAL = national_calendar()


def sh(y: int, m: int, d: int, hh: int = 9, mm: int = 0, ss: int = 0) -> datetime:
    """An Asia/Shanghai wall-clock time as aware UTC."""
    return datetime(y, m, d, hh, mm, ss, tzinfo=SHANGHAI).astimezone(UTC)


def timeline(**changes: Any) -> Timeline:
    base = Timeline(
        documents_issued_at=sh(2026, 3, 2, 9),
        sale_start=sh(2026, 3, 2, 9),
        sale_end=sh(2026, 3, 6, 17),
        bid_deadline=sh(2026, 3, 22, 9, 30),
        objection_cutoff=sh(2026, 3, 12, 17),
        clarification_cutoff=sh(2026, 3, 5, 17),
    )
    return replace(base, **changes)


def refused(code: ErrorCode, fn: object, *args: object, **kwargs: object) -> RuleViolation:
    assert callable(fn)
    with pytest.raises(RuleViolation) as exc:
        fn(*args, **kwargs)
    assert exc.value.code == code, exc.value.to_dict()
    assert exc.value.http_status == 422
    return exc.value


# -- 20 days from issue to deadline (ZTBF 24, ZFCG 35) ---------------------------------------


@pytest.mark.parametrize("kind", list(ProcurementKind))
def test_exactly_20_days_is_allowed(kind: ProcurementKind) -> None:
    validate_timeline(kind, timeline(), CAL)


@pytest.mark.parametrize(
    ("kind", "basis"), [(TENDERING, Basis.ZTBF_24), (PROCUREMENT, Basis.ZFCG_35)]
)
def test_19_days_is_refused(kind: ProcurementKind, basis: str) -> None:
    t = timeline(bid_deadline=sh(2026, 3, 21, 23, 59), objection_cutoff=None)
    err = refused(ErrorCode.DEADLINE_TOO_EARLY, validate_timeline, kind, t, CAL)
    assert err.details["required_days"] == 20
    assert err.details["actual_days"] == 19
    assert err.details["earliest_deadline_on"] == "2026-03-22"
    assert err.details["legal_basis"] == basis
    assert "不得少于20日" in err.message and "2026-03-22" in err.message


def test_days_are_counted_on_shanghai_dates_not_utc_dates() -> None:
    issued = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)  # 2026-03-01 23:00 in Shanghai
    deadline = datetime(2026, 3, 20, 16, 30, tzinfo=UTC)  # 2026-03-21 00:30 in Shanghai
    t = Timeline(issued, issued, sh(2026, 3, 6, 17), deadline)
    validate_timeline(TENDERING, t, CAL)  # 20 Shanghai days although 19 UTC dates apart
    late_issue = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)  # 2026-03-02 00:00 in Shanghai
    t = Timeline(late_issue, late_issue, sh(2026, 3, 6, 17), deadline)
    refused(ErrorCode.DEADLINE_TOO_EARLY, validate_timeline, TENDERING, t, CAL)


# -- documents on sale: 5 days / 5 working days (SSTL 16, L87 18) -----------------------------


def test_tendering_sale_period_counts_both_ends() -> None:
    validate_timeline(TENDERING, timeline(sale_end=sh(2026, 3, 6, 9)), CAL)  # Mar 2-6: 5 days
    err = refused(
        ErrorCode.SALE_PERIOD_TOO_SHORT,
        validate_timeline,
        TENDERING,
        timeline(sale_end=sh(2026, 3, 5, 23, 59)),
        CAL,
    )
    assert err.details["actual_days"] == 4
    assert err.details["unit"] == "days"
    assert err.details["earliest_end_on"] == "2026-03-06"
    assert err.details["legal_basis"] == Basis.SSTL_16


def test_tendering_sale_period_counts_calendar_days_over_holidays() -> None:
    t = Timeline(sh(2026, 9, 30), sh(2026, 9, 30), sh(2026, 10, 4, 17), sh(2026, 10, 20))
    validate_timeline(TENDERING, t, CAL)  # Sep 30 - Oct 4: 5 days, holidays included


def test_procurement_sale_period_needs_5_working_days() -> None:
    validate_timeline(PROCUREMENT, timeline(), CAL)  # Mon 2 - Fri 6 March
    # Tue 3 - Sun 8 March: 4 working days
    t = timeline(sale_start=sh(2026, 3, 3), sale_end=sh(2026, 3, 8, 17))
    err = refused(ErrorCode.SALE_PERIOD_TOO_SHORT, validate_timeline, PROCUREMENT, t, CAL)
    assert err.details["actual_days"] == 4
    assert err.details["unit"] == "working_days"
    assert err.details["earliest_end_on"] == "2026-03-09"
    assert err.details["legal_basis"] == Basis.L87_18
    assert "5个工作日" in err.message


def test_procurement_sale_period_across_national_day() -> None:
    issued = sh(2026, 9, 28, 9)
    deadline = sh(2026, 10, 19, 9, 30)
    # Sep 28, 29, 30, Oct 8: four working days
    short = Timeline(issued, issued, sh(2026, 10, 8, 17), deadline)
    err = refused(ErrorCode.SALE_PERIOD_TOO_SHORT, validate_timeline, PROCUREMENT, short, CAL)
    assert err.details["actual_days"] == 4
    assert err.details["earliest_end_on"] == "2026-10-09"
    validate_timeline(PROCUREMENT, replace(short, sale_end=sh(2026, 10, 9, 17)), CAL)
    # starting on Sep 30: Sep 30, Oct 8, 9, 10 (调休 Saturday), 12
    late = Timeline(sh(2026, 9, 30), sh(2026, 9, 30), sh(2026, 10, 10, 17), sh(2026, 10, 21))
    refused(ErrorCode.SALE_PERIOD_TOO_SHORT, validate_timeline, PROCUREMENT, late, CAL)
    validate_timeline(PROCUREMENT, replace(late, sale_end=sh(2026, 10, 12, 17)), CAL)


def test_procurement_sale_period_in_spring_festival() -> None:
    # Feb 12, 13, 14 (调休 Saturday), 24, 25
    t = Timeline(sh(2026, 2, 12), sh(2026, 2, 12), sh(2026, 2, 25, 17), sh(2026, 3, 5))
    validate_timeline(PROCUREMENT, t, CAL)
    refused(
        ErrorCode.SALE_PERIOD_TOO_SHORT,
        validate_timeline,
        PROCUREMENT,
        replace(t, sale_end=sh(2026, 2, 24, 17)),
        CAL,
    )


def test_procurement_sale_period_needs_the_years_holidays() -> None:
    t = Timeline(sh(2026, 12, 28), sh(2026, 12, 28), sh(2027, 1, 5), sh(2027, 1, 20))
    err = refused(ErrorCode.HOLIDAY_CALENDAR_MISSING, validate_timeline, PROCUREMENT, t, CAL)
    assert err.details["year"] == 2027
    validate_timeline(TENDERING, t, CAL)  # calendar days need no holiday data


def test_default_calendar_is_the_national_one() -> None:
    validate_timeline(PROCUREMENT, timeline())


# -- objection cut-off (SSTL 22) ------------------------------------------------------------


def test_objection_cutoff_10_days_before_is_allowed_9_refused() -> None:
    validate_timeline(TENDERING, timeline(objection_cutoff=sh(2026, 3, 12, 23, 59)), CAL)
    err = refused(
        ErrorCode.OBJECTION_TOO_LATE,
        validate_timeline,
        TENDERING,
        timeline(objection_cutoff=sh(2026, 3, 13, 0, 0)),
        CAL,
    )
    assert err.details["actual_days"] == 9
    assert err.details["latest_cutoff_on"] == "2026-03-12"
    assert err.details["legal_basis"] == Basis.SSTL_22


def test_objection_cutoff_rule_is_for_tendering_only() -> None:
    validate_timeline(PROCUREMENT, timeline(objection_cutoff=sh(2026, 3, 20)), CAL)


def test_no_objection_cutoff_means_the_statutory_one() -> None:
    validate_timeline(TENDERING, timeline(objection_cutoff=None, clarification_cutoff=None), CAL)


# -- dates out of order --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sale_start": sh(2026, 3, 1)}, "sale_start_before_issue"),
        ({"sale_end": sh(2026, 3, 2, 9)}, "sale_end_not_after_start"),
        ({"sale_end": sh(2026, 3, 22, 10)}, "sale_end_after_deadline"),
        ({"objection_cutoff": sh(2026, 3, 23)}, "objection_cutoff_outside_period"),
        ({"objection_cutoff": sh(2026, 3, 1)}, "objection_cutoff_outside_period"),
        ({"clarification_cutoff": sh(2026, 3, 23)}, "clarification_cutoff_outside_period"),
    ],
)
def test_dates_out_of_order_are_refused(changes: dict[str, datetime], reason: str) -> None:
    err = refused(ErrorCode.TIMELINE_INVALID, validate_timeline, TENDERING, timeline(**changes))
    assert err.details["reason"] == reason


def test_deadline_before_issue_is_too_early() -> None:
    t = Timeline(sh(2026, 3, 10), sh(2026, 3, 10), sh(2026, 3, 9), sh(2026, 3, 9, 12))
    err = refused(ErrorCode.DEADLINE_TOO_EARLY, validate_timeline, TENDERING, t)
    assert err.details["actual_days"] == -1


def test_a_short_deadline_is_reported_before_other_disorder() -> None:
    # documents re-issued later (e.g. publication delayed): the sale now ends before it
    # starts, but the statutory 20 days is what the user has to fix first
    t = timeline(documents_issued_at=sh(2026, 3, 12), sale_start=sh(2026, 3, 12))
    refused(ErrorCode.DEADLINE_TOO_EARLY, validate_timeline, TENDERING, t)
    t = replace(t, bid_deadline=sh(2026, 4, 1, 9, 30))
    err = refused(ErrorCode.TIMELINE_INVALID, validate_timeline, TENDERING, t)
    assert err.details["reason"] == "sale_end_not_after_start"


def test_naive_times_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_timeline(TENDERING, timeline(sale_end=datetime(2026, 3, 6, 17)))
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_timeline(TENDERING, timeline(objection_cutoff=datetime(2026, 3, 6)))
    with pytest.raises(TypeError):
        validate_timeline(TENDERING, timeline(sale_end=date(2026, 3, 6)))


# -- objections (SSTL 22) -------------------------------------------------------------------


def test_objection_allowed_up_to_the_end_of_the_tenth_day_before() -> None:
    deadline = sh(2026, 3, 22, 9, 30)
    assert statutory_objection_cutoff(deadline) == sh(2026, 3, 12, 23, 59, 59)
    assert objection_allowed(sh(2026, 3, 2), deadline)
    assert objection_allowed(sh(2026, 3, 12, 23, 59, 59), deadline)
    assert not objection_allowed(sh(2026, 3, 13, 0, 0), deadline)
    validate_objection(sh(2026, 3, 12, 18), deadline)
    err = refused(ErrorCode.OBJECTION_TOO_LATE, validate_objection, sh(2026, 3, 13, 8), deadline)
    assert err.details["actual_days"] == 9
    assert err.details["legal_basis"] == Basis.SSTL_22


def test_objection_answer_due_in_3_days() -> None:
    assert objection_answer_due(sh(2026, 3, 12, 10)) == sh(2026, 3, 15, 23, 59, 59)


# -- amendments (ZTBF 23, SSTL 21, L87 27) --------------------------------------------------


def test_amendment_10_days_before_moves_the_deadline_so_15_remain() -> None:
    deadline = sh(2026, 3, 22, 9, 30)
    moved = deadline_after_amendment(deadline, sh(2026, 3, 12, 16))
    assert moved == sh(2026, 3, 27, 9, 30)  # 15 days after Mar 12, same time of day


def test_amendment_15_or_16_days_before_leaves_the_deadline() -> None:
    deadline = sh(2026, 3, 22, 9, 30)
    assert deadline_after_amendment(deadline, sh(2026, 3, 6, 10)) == deadline  # 16 days
    assert deadline_after_amendment(deadline, sh(2026, 3, 7, 23, 59)) == deadline  # 15 days


def test_amendment_on_the_deadline_day_moves_15_days() -> None:
    deadline = sh(2026, 3, 22, 9, 30)
    assert deadline_after_amendment(deadline, sh(2026, 3, 22, 8)) == sh(2026, 4, 6, 9, 30)


def test_moved_deadline_can_skip_days_off() -> None:
    deadline = sh(2026, 9, 28, 9, 30)
    amended = sh(2026, 9, 20, 10)  # 8 days before: 15 days later is Oct 5 (National Day)
    assert deadline_after_amendment(deadline, amended) == sh(2026, 10, 5, 9, 30)
    assert deadline_after_amendment(deadline, amended, calendar=CAL) == sh(2026, 10, 8, 9, 30)


def test_procurement_amendment_may_not_change_subject_or_qualifications() -> None:
    validate_amendment(PROCUREMENT, changes_subject=False, changes_qualifications=False)
    validate_amendment(TENDERING, changes_subject=True, changes_qualifications=True)
    err = refused(
        ErrorCode.AMENDMENT_CHANGES_SUBJECT,
        validate_amendment,
        PROCUREMENT,
        changes_subject=True,
        changes_qualifications=False,
    )
    assert "采购标的" in err.message and err.details["legal_basis"] == Basis.L87_27
    err = refused(
        ErrorCode.AMENDMENT_CHANGES_SUBJECT,
        validate_amendment,
        PROCUREMENT,
        changes_subject=True,
        changes_qualifications=True,
    )
    assert "采购标的和资格条件" in err.message
    refused(
        ErrorCode.AMENDMENT_CHANGES_SUBJECT,
        validate_amendment,
        PROCUREMENT,
        changes_subject=False,
        changes_qualifications=True,
    )


# -- after evaluation -----------------------------------------------------------------------


def test_tendering_candidate_publicity() -> None:
    w = publicity_window(TENDERING, sh(2026, 3, 25, 15))
    assert w.start_by == sh(2026, 3, 28, 23, 59, 59)
    assert w.ends_not_before == sh(2026, 3, 28, 23, 59, 59)
    assert w.legal_basis == Basis.SSTL_54
    w = publicity_window(TENDERING, sh(2026, 3, 25, 15), started_at=sh(2026, 3, 26, 10))
    assert w.ends_not_before == sh(2026, 3, 29, 23, 59, 59)


def test_procurement_result_notice_in_working_days() -> None:
    w = publicity_window(PROCUREMENT, sh(2026, 9, 29, 15), calendar=CAL)
    assert w.start_by == sh(2026, 10, 8, 23, 59, 59)  # Sep 30, Oct 8
    assert w.ends_not_before == sh(2026, 9, 30, 23, 59, 59)
    w = publicity_window(PROCUREMENT, sh(2026, 9, 29, 15), started_at=sh(2026, 9, 30, 9))
    assert w.ends_not_before == sh(2026, 10, 8, 23, 59, 59)
    assert w.legal_basis == Basis.L87_69


def test_contract_due_in_30_days() -> None:
    assert contract_due(sh(2026, 3, 25, 15)) == sh(2026, 4, 24, 23, 59, 59)


@pytest.mark.parametrize("trigger", [RefundTrigger.CONTRACT_SIGNED, RefundTrigger.WITHDRAWN])
def test_tendering_deposit_refund_in_5_days(trigger: RefundTrigger) -> None:
    assert deposit_refund_due(TENDERING, trigger, sh(2026, 9, 29, 15)) == sh(
        2026, 10, 4, 23, 59, 59
    )


def test_tendering_refunds_losers_after_signing_not_at_the_notice() -> None:
    with pytest.raises(ValueError, match="CONTRACT_SIGNED"):
        deposit_refund_due(TENDERING, RefundTrigger.NOT_AWARDED, sh(2026, 9, 29))


@pytest.mark.parametrize("trigger", list(RefundTrigger))
def test_procurement_deposit_refund_in_5_working_days(trigger: RefundTrigger) -> None:
    # Sep 30, Oct 8, 9, 10 (调休 Saturday), 12
    due = deposit_refund_due(PROCUREMENT, trigger, sh(2026, 9, 29, 15), CAL)
    assert due == sh(2026, 10, 12, 23, 59, 59)


def test_bid_validity_ends() -> None:
    assert bid_validity_ends(sh(2026, 3, 22, 9, 30), 90) == sh(2026, 6, 20, 23, 59, 59)
    with pytest.raises(ValueError):
        bid_validity_ends(sh(2026, 3, 22), 0)
    with pytest.raises(TypeError):
        bid_validity_ends(sh(2026, 3, 22), 9.5)  # type: ignore[arg-type]


def test_evaluation_must_finish_30_working_days_before_validity_ends() -> None:
    # validity ends Fri 2026-10-09; 30 working days back over National Day, 中秋 and the
    # 调休 Sunday Sep 20 is Fri Aug 21
    finish = evaluation_must_finish_by(sh(2026, 8, 10, 9, 30), 60, CAL)
    assert finish == sh(2026, 8, 21, 23, 59, 59)
    assert CAL.working_days_between(date(2026, 8, 21), date(2026, 10, 9)) == 30


def test_evaluation_deadline_when_validity_ends_on_a_day_off() -> None:
    # validity ends Sun 2026-10-11; the last working day is Sat Oct 10 (调休)
    finish = evaluation_must_finish_by(sh(2026, 8, 12, 9, 30), 60, CAL)
    assert finish == sh(2026, 8, 24, 23, 59, 59)
    assert CAL.working_days_between(date(2026, 8, 24), date(2026, 10, 11)) == 30
    assert CAL.working_days_between(date(2026, 8, 25), date(2026, 10, 11)) == 29


def test_evaluation_deadline_needs_the_years_holidays() -> None:
    err = refused(
        ErrorCode.HOLIDAY_CALENDAR_MISSING,
        evaluation_must_finish_by,
        sh(2026, 12, 1),
        90,
        CAL,
    )
    assert err.details["year"] == 2027
