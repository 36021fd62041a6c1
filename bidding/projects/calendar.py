"""The working-day calendar (工作日历): public holidays and adjusted working days per year.

Procurement periods are counted in working days (工作日), which in mainland China are not
simply Monday to Friday: the State Council publishes each year which days are off (放假)
and which weekend days are worked instead (调休上班). The calendar is *data*: one TOML file
per year under ``bidding/projects/holidays/`` (see ``cn-2026.toml`` for the format), and a
center may lay its own files over them (regional holidays, a corrected year).

A year without data is never guessed: any question about a date in it raises
:class:`~bidding.core.errors.RuleViolation` with ``holiday_calendar_missing``.

Counting convention (both directions, like counting calendar days under 《民法典》第二百零一条,
where the starting day is not counted):

* ``working_days_between(a, b)`` counts the working days after ``a`` up to and including
  ``b`` (negative, counting ``b`` but not ``a``, when ``b`` is before ``a``);
* ``add_working_days(d, n)`` is the ``n``-th working day after ``d`` (before it for negative
  ``n``), ``d`` itself not counted; ``add_working_days(d, 0) == d``.

So ``working_days_between(d, add_working_days(d, n)) == n`` for every ``d`` and ``n``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from flask_babel import gettext as _

from bidding.core.errors import ErrorCode, RuleViolation

#: Where the national calendar files live.
HOLIDAYS_DIR = Path(__file__).with_name("holidays")

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class YearCalendar:
    """One year's days off and adjusted working days."""

    year: int
    holidays: frozenset[date] = frozenset()
    adjusted_workdays: frozenset[date] = frozenset()
    source: str = ""
    names: Mapping[date, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for day in self.holidays | self.adjusted_workdays:
            if day.year != self.year:
                raise ValueError(f"{day.isoformat()} does not belong to year {self.year}")
        both = self.holidays & self.adjusted_workdays
        if both:
            first = min(both).isoformat()
            raise ValueError(f"{first} is both a holiday and an adjusted working day")

    def is_working_day(self, day: date) -> bool:
        if day in self.adjusted_workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def overlaid(self, other: YearCalendar) -> YearCalendar:
        """This year with ``other``'s entries laid over it (``other`` wins on conflicts)."""
        if other.year != self.year:
            raise ValueError("can only overlay the same year")
        holidays = (self.holidays - other.adjusted_workdays) | other.holidays
        workdays = (self.adjusted_workdays - other.holidays) | other.adjusted_workdays
        names = {**self.names, **other.names}
        source = "; ".join(s for s in (self.source, other.source) if s)
        return YearCalendar(self.year, frozenset(holidays), frozenset(workdays), source, names)


def parse_year(text: str, *, origin: str = "<string>") -> tuple[YearCalendar, bool]:
    """Parse one TOML year file; returns the year and whether it replaces (``replace``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{origin}: not valid TOML: {exc}") from None
    year = data.get("year")
    if not isinstance(year, int) or isinstance(year, bool) or not 1900 <= year <= 2999:
        raise ValueError(f"{origin}: 'year' must be an integer year")
    workdays = _dates(data.get("adjusted_workdays", []), f"{origin}: adjusted_workdays")
    holidays: set[date] = set()
    names: dict[date, str] = {}
    runs = data.get("holiday", [])
    if not isinstance(runs, list):
        raise ValueError(f"{origin}: 'holiday' must be an array of tables")
    for i, run in enumerate(runs):
        where = f"{origin}: holiday[{i}]"
        if not isinstance(run, dict):
            raise ValueError(f"{where}: must be a table")
        start, end = run.get("from"), run.get("to", run.get("from"))
        if type(start) is not date or type(end) is not date or end < start:
            raise ValueError(f"{where}: 'from' and 'to' must be dates with from <= to")
        name = str(run.get("name", ""))
        day = start
        while day <= end:
            holidays.add(day)
            names[day] = name
            day += _ONE_DAY
    replace = data.get("replace", False)
    if not isinstance(replace, bool):
        raise ValueError(f"{origin}: 'replace' must be true or false")
    try:
        cal = YearCalendar(
            year, frozenset(holidays), frozenset(workdays), str(data.get("source", "")), names
        )
    except ValueError as exc:
        raise ValueError(f"{origin}: {exc}") from None
    return cal, replace


def _dates(value: Any, where: str) -> frozenset[date]:
    if not isinstance(value, list) or any(type(v) is not date for v in value):
        raise ValueError(f"{where}: must be an array of dates")
    return frozenset(value)


class WorkingCalendar:
    """Working days for the years it has data for; other years raise `holiday_calendar_missing`."""

    def __init__(self, years: Iterable[YearCalendar] = ()) -> None:
        self._years: dict[int, YearCalendar] = {}
        for cal in years:
            if cal.year in self._years:
                raise ValueError(f"year {cal.year} given twice")
            self._years[cal.year] = cal

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> WorkingCalendar:
        """Load year files in order; a later file for the same year overlays (or replaces)."""
        return cls().overlay_files(paths)

    @classmethod
    def from_directory(cls, directory: Path) -> WorkingCalendar:
        return cls.from_files(sorted(directory.glob("*.toml")))

    def overlay_files(self, paths: Iterable[Path]) -> WorkingCalendar:
        """A new calendar with each file laid over this one (a center's own data)."""
        years = dict(self._years)
        for path in paths:
            cal, replace = parse_year(path.read_text(encoding="utf-8"), origin=str(path))
            if cal.year in years and not replace:
                cal = years[cal.year].overlaid(cal)
            years[cal.year] = cal
        return WorkingCalendar(years.values())

    def overlay_directory(self, directory: Path) -> WorkingCalendar:
        return self.overlay_files(sorted(directory.glob("*.toml")))

    # -- questions -----------------------------------------------------------------------

    @property
    def years(self) -> frozenset[int]:
        return frozenset(self._years)

    def has_year(self, year: int) -> bool:
        return year in self._years

    def year(self, year: int) -> YearCalendar:
        try:
            return self._years[year]
        except KeyError:
            raise RuleViolation(
                _(
                    "%(year)s年的节假日安排尚未录入平台，无法按工作日计算期限；"
                    "请系统管理员先补充该年度的节假日数据。",
                    year=year,
                ),
                code=ErrorCode.HOLIDAY_CALENDAR_MISSING,
                details={"year": year, "loaded_years": sorted(self._years)},
            ) from None

    def is_working_day(self, day: date) -> bool:
        """True for a working day (工作日): Monday–Friday unless a holiday, or a 调休 day."""
        return self.year(day.year).is_working_day(day)

    def holiday_name(self, day: date) -> str | None:
        """The holiday a day off belongs to (e.g. ``"国庆节"``), if it is one."""
        cal = self.year(day.year)
        return cal.names.get(day) if day in cal.holidays else None

    def add_working_days(self, day: date, n: int) -> date:
        """The ``n``-th working day after ``day`` (before it if ``n < 0``), ``day`` not counted."""
        step = _ONE_DAY if n >= 0 else -_ONE_DAY
        remaining = abs(n)
        while remaining:
            day += step
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days from ``start`` to ``end``: ``start`` not counted, ``end`` counted.

        Negative when ``end`` is before ``start``.
        """
        step = _ONE_DAY if end >= start else -_ONE_DAY
        sign = 1 if end >= start else -1
        count = 0
        day = start
        while day != end:
            day += step
            if self.is_working_day(day):
                count += 1
        return sign * count

    def working_days_inclusive(self, first: date, last: date) -> int:
        """Working days from ``first`` to ``last``, both counted (0 when ``last < first``)."""
        if last < first:
            return 0
        return self.working_days_between(first - _ONE_DAY, last)

    def on_or_after(self, day: date) -> date:
        """``day`` if it is a working day, else the next working day."""
        while not self.is_working_day(day):
            day += _ONE_DAY
        return day

    def on_or_before(self, day: date) -> date:
        """``day`` if it is a working day, else the previous working day."""
        while not self.is_working_day(day):
            day -= _ONE_DAY
        return day

    def __repr__(self) -> str:
        return f"WorkingCalendar(years={sorted(self._years)})"


@cache
def national_calendar() -> WorkingCalendar:
    """The national calendar shipped with the platform (loaded once)."""
    return WorkingCalendar.from_directory(HOLIDAYS_DIR)
