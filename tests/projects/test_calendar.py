"""The working-day calendar: 2026 holidays and 调休, counting, overlays, missing years."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bidding.core.errors import ErrorCode, RuleViolation
from bidding.projects.calendar import (
    HOLIDAYS_DIR,
    WorkingCalendar,
    YearCalendar,
    national_calendar,
    parse_year,
)

CAL = national_calendar()


def test_national_calendar_ships_2026_only_data_it_is_sure_of() -> None:
    assert CAL.has_year(2026)
    assert sorted(p.name for p in HOLIDAYS_DIR.glob("*.toml")) == ["cn-2026.toml"]
    year = CAL.year(2026)
    assert "2026" in year.source
    # 7 runs: 3 + 9 + 3 + 5 + 3 + 3 + 7 days off
    assert len(year.holidays) == 33
    assert len(year.adjusted_workdays) == 6


@pytest.mark.parametrize(
    ("day", "working", "why"),
    [
        (date(2026, 1, 1), False, "元旦"),
        (date(2026, 1, 2), False, "元旦 (Friday off)"),
        (date(2026, 1, 4), True, "元旦调休 Sunday"),
        (date(2026, 1, 5), True, "plain Monday"),
        (date(2026, 2, 13), True, "Friday before Spring Festival"),
        (date(2026, 2, 14), True, "春节调休 Saturday"),
        (date(2026, 2, 15), False, "春节 first day (Sunday)"),
        (date(2026, 2, 17), False, "正月初一 (Tuesday)"),
        (date(2026, 2, 23), False, "春节 last day (Monday)"),
        (date(2026, 2, 24), True, "back to work"),
        (date(2026, 2, 28), True, "春节调休 Saturday"),
        (date(2026, 3, 1), False, "plain Sunday"),
        (date(2026, 4, 6), False, "清明 Monday"),
        (date(2026, 5, 5), False, "劳动节 Tuesday"),
        (date(2026, 5, 9), True, "劳动节调休 Saturday"),
        (date(2026, 6, 19), False, "端午 Friday"),
        (date(2026, 9, 20), True, "国庆调休 Sunday"),
        (date(2026, 9, 25), False, "中秋 Friday"),
        (date(2026, 10, 1), False, "国庆"),
        (date(2026, 10, 7), False, "国庆 last day (Wednesday)"),
        (date(2026, 10, 8), True, "back to work"),
        (date(2026, 10, 10), True, "国庆调休 Saturday"),
        (date(2026, 10, 11), False, "plain Sunday"),
    ],
)
def test_2026_working_days(day: date, working: bool, why: str) -> None:
    assert CAL.is_working_day(day) is working, why


def test_holiday_names() -> None:
    assert CAL.holiday_name(date(2026, 10, 3)) == "国庆节"
    assert CAL.holiday_name(date(2026, 2, 17)) == "春节"
    assert CAL.holiday_name(date(2026, 10, 10)) is None
    assert CAL.holiday_name(date(2026, 3, 1)) is None  # a weekend, not a holiday


def test_add_working_days_across_national_day() -> None:
    assert CAL.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    # Sep 30, Oct 8, Oct 9, Oct 10 (调休 Saturday), Oct 12
    assert CAL.add_working_days(date(2026, 9, 29), 5) == date(2026, 10, 12)
    # Sep 18 (Fri) + 1 = Sep 20, the 调休 Sunday
    assert CAL.add_working_days(date(2026, 9, 18), 1) == date(2026, 9, 20)
    assert CAL.add_working_days(date(2026, 10, 8), -1) == date(2026, 9, 30)
    assert CAL.add_working_days(date(2026, 10, 12), -5) == date(2026, 9, 29)


def test_add_working_days_across_spring_festival() -> None:
    assert CAL.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert CAL.add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 24)
    # Feb 13, Feb 14 (调休 Saturday), Feb 24, 25, 26
    assert CAL.add_working_days(date(2026, 2, 12), 5) == date(2026, 2, 26)
    assert CAL.add_working_days(date(2026, 2, 24), -1) == date(2026, 2, 14)


def test_add_zero_is_identity_even_on_a_day_off() -> None:
    assert CAL.add_working_days(date(2026, 10, 3), 0) == date(2026, 10, 3)


def test_working_days_between() -> None:
    # Sep 20; Sep 21-24; Sep 28-30; Oct 8, 9, 10; Oct 12
    assert CAL.working_days_between(date(2026, 9, 18), date(2026, 10, 12)) == 12
    assert CAL.working_days_between(date(2026, 10, 12), date(2026, 9, 18)) == -12
    assert CAL.working_days_between(date(2026, 10, 1), date(2026, 10, 7)) == 0
    assert CAL.working_days_between(date(2026, 3, 2), date(2026, 3, 2)) == 0
    assert CAL.working_days_inclusive(date(2026, 3, 2), date(2026, 3, 6)) == 5
    assert CAL.working_days_inclusive(date(2026, 3, 6), date(2026, 3, 2)) == 0
    assert CAL.working_days_inclusive(date(2026, 9, 28), date(2026, 10, 8)) == 4


def test_roll_to_working_day() -> None:
    assert CAL.on_or_after(date(2026, 10, 1)) == date(2026, 10, 8)
    assert CAL.on_or_before(date(2026, 10, 7)) == date(2026, 9, 30)
    assert CAL.on_or_after(date(2026, 10, 10)) == date(2026, 10, 10)


def test_missing_year_is_refused_not_guessed() -> None:
    with pytest.raises(RuleViolation) as exc:
        CAL.is_working_day(date(2027, 1, 4))
    assert exc.value.code == ErrorCode.HOLIDAY_CALENDAR_MISSING
    assert exc.value.http_status == 422
    assert exc.value.details == {"year": 2027, "loaded_years": [2026]}
    assert "2027年" in exc.value.message
    with pytest.raises(RuleViolation) as exc:
        CAL.add_working_days(date(2026, 12, 30), 5)
    assert exc.value.code == ErrorCode.HOLIDAY_CALENDAR_MISSING
    with pytest.raises(RuleViolation):
        CAL.add_working_days(date(2026, 1, 5), -5)  # walks into 2025
    with pytest.raises(RuleViolation):
        CAL.working_days_between(date(2026, 12, 20), date(2027, 1, 10))


# -- properties (inside 2026, far enough from its ends) --------------------------------------

DAYS_2026 = st.dates(min_value=date(2026, 3, 1), max_value=date(2026, 11, 15))
STEPS = st.integers(min_value=-30, max_value=30)


@given(DAYS_2026, STEPS)
def test_add_and_between_are_inverse(day: date, n: int) -> None:
    later = CAL.add_working_days(day, n)
    assert CAL.working_days_between(day, later) == n
    if n:
        assert CAL.is_working_day(later)
    if n > 0:
        assert later > day
    if n < 0:
        assert later < day


@given(DAYS_2026, DAYS_2026)
def test_adding_the_count_lands_on_the_working_day(a: date, b: date) -> None:
    n = CAL.working_days_between(a, b)
    if CAL.is_working_day(b) or a == b:
        assert CAL.add_working_days(a, n) == b


@given(st.dates(date(2026, 1, 1), date(2026, 10, 1)), st.integers(0, 45), st.integers(0, 45))
def test_between_is_additive_forwards(a: date, x: int, y: int) -> None:
    b, c = a + timedelta(days=x), a + timedelta(days=x + y)
    total = CAL.working_days_between(a, c)
    assert total == CAL.working_days_between(a, b) + CAL.working_days_between(b, c)
    assert total == sum(CAL.is_working_day(a + timedelta(days=i)) for i in range(1, x + y + 1))


# -- data files and overlays ---------------------------------------------------------------

LOCAL = """
year = 2026
source = "某中心补充节假日"
adjusted_workdays = [2026-10-07]

[[holiday]]
name = "地方节日"
from = 2026-03-10
to = 2026-03-11
"""


def test_center_overlay_merges_over_the_national_year(tmp_path: Path) -> None:
    path = tmp_path / "local-2026.toml"
    path.write_text(LOCAL, encoding="utf-8")
    cal = CAL.overlay_files([path])
    assert not cal.is_working_day(date(2026, 3, 10))
    assert cal.holiday_name(date(2026, 3, 11)) == "地方节日"
    assert cal.is_working_day(date(2026, 10, 7))  # the overlay wins on conflicts
    assert not cal.is_working_day(date(2026, 10, 6))  # national data kept
    assert "某中心补充节假日" in cal.year(2026).source
    assert CAL.is_working_day(date(2026, 3, 10))  # the national calendar is unchanged


def test_center_overlay_can_replace_a_year(tmp_path: Path) -> None:
    path = tmp_path / "local-2026.toml"
    path.write_text("replace = true\n" + LOCAL, encoding="utf-8")
    cal = CAL.overlay_directory(tmp_path)
    assert cal.is_working_day(date(2026, 10, 1))  # national holidays gone
    assert not cal.is_working_day(date(2026, 3, 10))


def test_a_center_can_add_a_year(tmp_path: Path) -> None:
    (tmp_path / "x-2030.toml").write_text("year = 2030\n", encoding="utf-8")
    cal = CAL.overlay_directory(tmp_path)
    assert cal.years == frozenset({2026, 2030})
    assert cal.is_working_day(date(2030, 1, 1))  # no holidays declared: weekdays work


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("year = ", "not valid TOML"),
        ("year = 'x'", "'year'"),
        ("year = true", "'year'"),
        ("year = 2026\nadjusted_workdays = ['2026-01-04']", "adjusted_workdays"),
        ("year = 2026\nadjusted_workdays = [2027-01-04]", "does not belong"),
        ("year = 2026\n[[holiday]]\nfrom = 2026-02-03\nto = 2026-02-01", "from <= to"),
        ("year = 2026\nholiday = 3", "array of tables"),
        ("year = 2026\nholiday = [3]", "must be a table"),
        (
            "year = 2026\nadjusted_workdays = [2026-10-01]\n[[holiday]]\nfrom = 2026-10-01",
            "both a holiday",
        ),
        ("year = 2026\nreplace = 'yes'", "'replace'"),
    ],
)
def test_bad_calendar_files_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_year(text, origin="test.toml")


def test_single_day_holiday_and_duplicate_years() -> None:
    cal, replace = parse_year("year = 2026\n[[holiday]]\nname = 'x'\nfrom = 2026-03-03\n")
    assert cal.holidays == frozenset({date(2026, 3, 3)}) and replace is False
    with pytest.raises(ValueError, match="twice"):
        WorkingCalendar([cal, YearCalendar(2026)])
    with pytest.raises(ValueError, match="same year"):
        cal.overlaid(YearCalendar(2027))
