"""``sunbid calendar …``: load and show the working-day calendar (节假日安排) of a center.

``load FILE`` checks a year file strictly (:func:`~bidding.projects.calendar.parse_year`
and :func:`~bidding.projects.calendar.check_loadable`), copies it atomically to
``cn-YYYY.toml`` in the center's directory (``SUNBID_HOLIDAYS_DIR`` or
``<instance>/holidays``) and records a ``holiday_calendar.loaded`` audit event in the same
unit of work (the file is put back if the event cannot be committed). A malformed file is
refused with one line on stderr and exit status 2. Running servers pick the file up on
their next working-day computation (the directory is watched by mtime), no restart needed.

``show`` lists the years in force and where they come from; ``show YEAR`` lists that
year's holidays and adjusted working days.
"""

from __future__ import annotations

import getpass
import hashlib
import sys
from datetime import date
from pathlib import Path
from typing import NoReturn

import click

from bidding.projects.calendar import (
    CalendarSnapshot,
    center_directory,
    center_snapshot,
    check_loadable,
    install_year_file,
    parse_year,
    restore_year_file,
)

_WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def _fail(message: str, status: int = 2) -> NoReturn:
    click.echo(f"sunbid calendar: {message}", err=True)
    sys.exit(status)


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return ""


@click.group("calendar")
def calendar() -> None:
    """Working-day calendar (节假日安排): load a year, show what is loaded."""


@calendar.command("load")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def calendar_load(file: Path) -> None:
    """Validate FILE (one year, format of cn-2026.toml) and load it for this center."""
    from bidding import cli
    from bidding.app import settings_of
    from bidding.core.audit import record_event
    from bidding.core.db import session_scope

    try:
        content = file.read_bytes()
        text = content.decode("utf-8")
    except OSError as exc:
        _fail(f"{file}: cannot be read: {exc.strerror or exc}")
    except UnicodeDecodeError:
        _fail(f"{file}: not UTF-8 text")
    try:
        year, replace = parse_year(text, origin=str(file))
        check_loadable(year, origin=str(file))
    except ValueError as exc:
        _fail(" ".join(str(exc).split()))

    app = cli._app()
    directory = center_directory(settings_of(app))
    target = directory / f"cn-{year.year}.toml"
    if target.is_file() and target.read_bytes() == content:
        click.echo(f"{year.year}: {target} already holds this file; nothing to do")
        return
    try:
        installed, previous = install_year_file(directory, year.year, content)
    except OSError as exc:
        _fail(f"cannot write {target}: {exc.strerror or exc}", 1)
    try:
        with app.app_context(), session_scope():
            record_event(
                None,
                "holiday_calendar.loaded",
                "holiday_calendar",
                str(year.year),
                {
                    "year": year.year,
                    "file": installed.name,
                    "from": str(file),
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "previous_sha256": (
                        hashlib.sha256(previous).hexdigest() if previous is not None else None
                    ),
                    "replace": replace,
                    "source": year.source,
                    "holidays": len(year.holidays),
                    "adjusted_workdays": sorted(year.adjusted_workdays),
                    "operator": _operator(),
                },
            )
    except BaseException:
        restore_year_file(installed, previous)
        raise
    snapshot = center_snapshot(directory)
    loaded = snapshot.calendar.year(year.year)
    click.echo(
        f"{year.year}: loaded {installed} ({len(loaded.holidays)} days off, "
        f"{len(loaded.adjusted_workdays)} adjusted workdays; "
        f"{'replaces' if replace else 'merged over'} any packaged data). "
        "Running servers use it from their next computation."
    )


@calendar.command("show")
@click.argument("year", required=False, type=click.IntRange(1900, 2999))
def calendar_show(year: int | None) -> None:
    """List the loaded years, or YEAR's holidays and adjusted working days."""
    from bidding import cli
    from bidding.app import settings_of

    snapshot = center_snapshot(center_directory(settings_of(cli._app())))
    for name, problem in snapshot.problems:
        click.echo(f"skipped {snapshot.directory / name}: {problem}", err=True)
    if year is None:
        _show_years(snapshot)
        return
    if not snapshot.calendar.has_year(year):
        loaded = ", ".join(str(y) for y in sorted(snapshot.calendar.years)) or "none"
        _fail(
            f"{year} is not loaded (loaded: {loaded}); write cn-{year}.toml in the format "
            f"of bidding/projects/holidays/cn-2026.toml and run: sunbid calendar load "
            f"cn-{year}.toml",
            1,
        )
    _show_year(snapshot, year)


def _origin(snapshot: CalendarSnapshot, year: int) -> str:
    files = [f for f in snapshot.files if f.year == year]
    if not files:
        return "packaged"
    names = ", ".join(str(f.path) for f in files)
    if any(f.replace for f in files):
        return f"center (replaces packaged): {names}"
    return f"center: {names}"


def _show_years(snapshot: CalendarSnapshot) -> None:
    click.echo(f"center directory: {snapshot.directory}")
    if not snapshot.calendar.years:
        click.echo("no year loaded")
        return
    for y in sorted(snapshot.calendar.years):
        cal = snapshot.calendar.year(y)
        click.echo(
            f"{y}  {len(cal.holidays):>3} days off  {len(cal.adjusted_workdays):>2} adjusted "
            f"workdays  [{_origin(snapshot, y)}]"
        )


def _day(d: date) -> str:
    return f"{d.isoformat()} {_WEEKDAYS_ZH[d.weekday()]}"


def _show_year(snapshot: CalendarSnapshot, year: int) -> None:
    cal = snapshot.calendar.year(year)
    click.echo(f"{year}  [{_origin(snapshot, year)}]")
    click.echo(f"source: {cal.source or '-'}")
    click.echo("holidays (放假):")
    for name, first, last in cal.holiday_runs():
        days = (last - first).days + 1
        span = _day(first) if first == last else f"{_day(first)} – {_day(last)}"
        click.echo(f"  {name or '-'}  {span}  ({days} days)")
    click.echo("adjusted workdays (调休上班):")
    for d in sorted(cal.adjusted_workdays):
        click.echo(f"  {_day(d)}")
    if not cal.adjusted_workdays:
        click.echo("  -")
