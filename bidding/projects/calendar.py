"""The working-day calendar (工作日历): public holidays and adjusted working days per year.

Procurement periods are counted in working days (工作日), which in mainland China are not
simply Monday to Friday: the State Council publishes each year which days are off (放假)
and which weekend days are worked instead (调休上班). The calendar is *data*: one TOML file
per year under ``bidding/projects/holidays/`` (see ``cn-2026.toml`` for the format), and a
center may lay its own files over them (regional holidays, a corrected year).

A year without data is never guessed: any question about a date in it raises
:class:`~bidding.core.errors.RuleViolation` with ``holiday_calendar_missing``, whose
message tells the center how to load the year.

Where the data comes from
-------------------------
* the packaged years, ``bidding/projects/holidays/cn-YYYY.toml`` (:func:`national_calendar`,
  read once: they change only with a release);
* the center's directory (:func:`center_directory`): ``SUNBID_HOLIDAYS_DIR`` if set, else
  ``<instance>/holidays``. Every ``*.toml`` there is laid over the packaged years in name
  order (merged by default, the center's entries winning on conflicting days; a file with
  ``replace = true`` replaces the year). ``sunbid calendar load FILE`` validates a file
  strictly (:func:`check_loadable`), copies it atomically to ``cn-YYYY.toml`` in that
  directory and records a ``holiday_calendar.loaded`` audit event; ``sunbid calendar show``
  lists what is loaded.

:func:`current_calendar` (what the timeline rules use) rereads the center's directory when
a file in it is added, removed or changed (name, size, mtime, inode, checked on every
call: one directory listing), so a loaded year takes effect in running servers and workers
without a restart. A center file that does not parse is skipped (logged, and listed by
``sunbid calendar show``): its year is then missing or national-only, never guessed.

File format (see the header of ``cn-2026.toml``)::

    year = 2027                       # the calendar year; every date must fall in it
    source = "国务院办公厅关于2027年部分节假日安排的通知（…）"
    adjusted_workdays = [2027-..-..]  # weekend days worked (调休上班)
    replace = false                   # optional: true replaces the year instead of merging

    [[holiday]]                       # one run of days off (放假), both ends included
    name = "元旦"
    from = 2027-..-..
    to = 2027-..-..                   # optional, defaults to ``from``

Counting convention (both directions, like counting calendar days under 《民法典》第二百零一条,
where the starting day is not counted):

* ``working_days_between(a, b)`` counts the working days after ``a`` up to and including
  ``b`` (negative, counting ``b`` but not ``a``, when ``b`` is before ``a``);
* ``add_working_days(d, n)`` is the ``n``-th working day after ``d`` (before it for negative
  ``n``), ``d`` itself not counted; ``add_working_days(d, 0) == d``.

So ``working_days_between(d, add_working_days(d, n)) == n`` for every ``d`` and ``n``.
"""

from __future__ import annotations

import logging
import os
import threading
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context
from flask_babel import gettext as _

from bidding.core.errors import ErrorCode, RuleViolation
from bidding.core.fsutil import fsync_dir

if TYPE_CHECKING:
    from bidding.config import Settings

log = logging.getLogger(__name__)

#: Where the national calendar files live.
HOLIDAYS_DIR = Path(__file__).with_name("holidays")
#: The center's calendars, under the instance folder unless ``SUNBID_HOLIDAYS_DIR`` is set.
CENTER_SUBDIR = "holidays"
#: ``Settings.extra`` key of ``SUNBID_HOLIDAYS_DIR``.
HOLIDAYS_DIR_SETTING = "holidays_dir"

_FILE_KEYS = {"year", "source", "adjusted_workdays", "holiday", "replace"}
_RUN_KEYS = {"name", "from", "to"}

_ONE_DAY = timedelta(days=1)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


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

    def holiday_runs(self) -> list[tuple[str, date, date]]:
        """The days off as (name, first, last) runs of consecutive days with one name."""
        runs: list[tuple[str, date, date]] = []
        for day in sorted(self.holidays):
            name = self.names.get(day, "")
            if runs and runs[-1][0] == name and runs[-1][2] + _ONE_DAY == day:
                runs[-1] = (name, runs[-1][1], day)
            else:
                runs.append((name, day, day))
        return runs

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
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise ValueError(f"{origin}: unknown keys {unknown} (allowed: {sorted(_FILE_KEYS)})")
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
        unknown = sorted(set(run) - _RUN_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown} (allowed: name, from, to)")
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


def check_loadable(cal: YearCalendar, *, origin: str = "<string>") -> None:
    """The stricter checks of ``sunbid calendar load`` over a parsed year file.

    Beyond :func:`parse_year` (a year, dates in it, no day both off and worked): the file
    names its source, declares at least one day, names every holiday, and its adjusted
    working days (调休上班) are Saturdays or Sundays. Raises ``ValueError`` naming the
    first problem.
    """
    if not cal.source.strip():
        raise ValueError(f"{origin}: 'source' must name where the dates come from")
    if not cal.holidays and not cal.adjusted_workdays:
        raise ValueError(f"{origin}: declares no holiday and no adjusted working day")
    unnamed = sorted(d for d in cal.holidays if not cal.names.get(d, "").strip())
    if unnamed:
        raise ValueError(f"{origin}: the holiday on {unnamed[0].isoformat()} has no 'name'")
    weekdays = sorted(d for d in cal.adjusted_workdays if d.weekday() < 5)
    if weekdays:
        first = weekdays[0]
        raise ValueError(
            f"{origin}: adjusted workday {first.isoformat()} is a {_WEEKDAYS[first.weekday()]}, "
            "not a Saturday or Sunday"
        )


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
                    "%(year)s年的节假日安排尚未载入平台，无法按工作日计算期限。"
                    "请系统管理员在国务院办公厅公布%(year)s年节假日安排后，"
                    "按平台自带的 cn-2026.toml 的格式编写 cn-%(year)s.toml，"
                    "并在服务器上运行“sunbid calendar load cn-%(year)s.toml”载入，无需重启。",
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


# -- the center's directory ----------------------------------------------------------------


def center_directory(settings: Settings) -> Path:
    """Where a center keeps its calendar files: ``SUNBID_HOLIDAYS_DIR``, else
    ``<instance>/holidays`` (it need not exist)."""
    configured = settings.extra.get(HOLIDAYS_DIR_SETTING, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    return settings.instance_dir / CENTER_SUBDIR


@dataclass(frozen=True)
class CenterFile:
    """A center calendar file as read: its year and whether it replaces the packaged one."""

    path: Path
    year: int
    replace: bool
    source: str


@dataclass(frozen=True)
class CalendarSnapshot:
    """The packaged years with a center directory laid over them, as read at one moment."""

    calendar: WorkingCalendar
    directory: Path
    files: tuple[CenterFile, ...] = ()
    #: (file name, problem) for center files that were skipped because they do not parse.
    problems: tuple[tuple[str, str], ...] = ()


_Signature = tuple[tuple[str, int, int, int], ...]
_center_lock = threading.Lock()
_center_cache: dict[Path, tuple[_Signature, CalendarSnapshot]] = {}


def _signature(directory: Path) -> _Signature:
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return ()
    sig = []
    for entry in entries:
        if not entry.name.endswith(".toml"):
            continue
        try:
            st = entry.stat()
        except FileNotFoundError:  # removed while listing: the next call sees it gone
            continue
        sig.append((entry.name, st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(sorted(sig))


def _read_center(directory: Path, signature: _Signature) -> CalendarSnapshot:
    years: dict[int, YearCalendar] = dict(national_calendar()._years)
    files: list[CenterFile] = []
    problems: list[tuple[str, str]] = []
    for name, *_rest in signature:
        path = directory / name
        try:
            cal, replace = parse_year(path.read_text(encoding="utf-8"), origin=name)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            log.error("holiday calendar file skipped: %s: %s", path, exc)
            problems.append((name, str(exc)))
            continue
        if cal.year in years and not replace:
            cal = years[cal.year].overlaid(cal)
        years[cal.year] = cal
        files.append(CenterFile(path, cal.year, replace, cal.source))
    return CalendarSnapshot(
        WorkingCalendar(years.values()), directory, tuple(files), tuple(problems)
    )


def center_snapshot(directory: Path) -> CalendarSnapshot:
    """The packaged years with ``directory``'s files over them; reread when they change."""
    directory = directory.resolve()
    signature = _signature(directory)
    with _center_lock:
        cached = _center_cache.get(directory)
        if cached is not None and cached[0] == signature:
            return cached[1]
        snapshot = _read_center(directory, signature)
        _center_cache[directory] = (signature, snapshot)
        return snapshot


def current_calendar() -> WorkingCalendar:
    """The calendar in force: in an app, the packaged years plus the center's directory
    (:func:`center_directory` of the app's settings); outside an app, the packaged years."""
    if not has_app_context():
        return national_calendar()
    settings = current_app.extensions.get("sunbid_settings")
    if settings is None:
        return national_calendar()
    return center_snapshot(center_directory(settings)).calendar


def install_year_file(directory: Path, year: int, content: bytes) -> tuple[Path, bytes | None]:
    """Write ``content`` to ``directory/cn-YEAR.toml`` atomically (temporary file, fsync,
    rename); returns the path and the bytes it replaced (None if it was new).

    The caller validates ``content`` first. :func:`restore_year_file` undoes the write.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"cn-{year}.toml"
    try:
        previous: bytes | None = target.read_bytes()
    except FileNotFoundError:
        previous = None
    temporary = directory / f".cn-{year}.toml.{os.getpid()}.tmp"
    try:
        with temporary.open("wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        temporary.chmod(0o644)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(directory)
    return target, previous


def restore_year_file(target: Path, previous: bytes | None) -> None:
    """Put back what :func:`install_year_file` replaced (remove the file if it was new)."""
    if previous is None:
        target.unlink(missing_ok=True)
        fsync_dir(target.parent)
        return
    install_year_file(target.parent, int(target.stem.removeprefix("cn-")), previous)
