"""Holiday calendars a center loads itself: the center directory (instance or
SUNBID_HOLIDAYS_DIR), reload on change, ``sunbid calendar load/show``, audit, refusals.

The 2027 data below is FICTIONAL test data (the State Council had not published 2027 when
this was written); it only ever lives in a temporary directory.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import select

from bidding import cli
from bidding.app import settings_of
from bidding.config import Settings
from bidding.core import db
from bidding.core.audit.models import AuditEvent
from bidding.core.clock import SHANGHAI
from bidding.core.errors import ErrorCode, RuleViolation
from bidding.projects import calendar as calendar_module
from bidding.projects import services
from bidding.projects.calendar import (
    HOLIDAYS_DIR,
    center_directory,
    center_snapshot,
    check_loadable,
    current_calendar,
    national_calendar,
    parse_year,
)
from bidding.projects.rules.base import ProcurementKind
from bidding.projects.rules.timeline import Timeline, validate_timeline
from tests.conftest import make_settings
from tests.projects.factories import World, draft_section, register, submit_keys, upload_text

FICTIONAL_2027 = """\
# FICTIONAL test data, not the State Council's 2027 schedule.
year = 2027
source = "测试用虚构数据（非国务院安排）"
adjusted_workdays = [2027-01-09]  # a Saturday

[[holiday]]
name = "测试假日"
from = 2027-01-04
to = 2027-01-06
"""


def sh(y: int, m: int, d: int, hh: int) -> datetime:
    """An Asia/Shanghai wall-clock hour as aware UTC."""
    return datetime(y, m, d, hh, tzinfo=SHANGHAI).astimezone(UTC)


#: Documents on sale 2026-12-28 .. 2027-01-05, deadline 2027-01-20 (procurement: 5 working
#: days on sale, which needs the 2027 holidays).
JANUARY_2027 = Timeline(
    sh(2026, 12, 28, 9), sh(2026, 12, 28, 9), sh(2027, 1, 5, 17), sh(2027, 1, 20, 9)
)


def _run(app: Flask, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setattr(cli, "_app", lambda settings=None: app)
    return CliRunner().invoke(cli.main, ["calendar", *args])


def _events(action: str) -> list[AuditEvent]:
    db.session.remove()
    return list(db.get_session().scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- where the files are ---------------------------------------------------------------------


def test_center_directory_is_in_the_instance_or_the_setting(tmp_path: Path) -> None:
    plain = make_settings(tmp_path / "a")
    assert center_directory(plain) == (tmp_path / "a").resolve() / "holidays"
    configured = Settings.from_env(
        env={
            "SUNBID_INSTANCE_DIR": str(tmp_path / "b"),
            "SUNBID_SECRET_KEY": "x" * 20,
            "SUNBID_HOLIDAYS_DIR": str(tmp_path / "shared-holidays"),
        }
    )
    assert center_directory(configured) == (tmp_path / "shared-holidays").resolve()


def test_packaged_data_is_still_2026_only() -> None:
    assert sorted(p.name for p in HOLIDAYS_DIR.glob("*.toml")) == ["cn-2026.toml"]
    assert national_calendar().years == frozenset({2026})


# -- reload on change ------------------------------------------------------------------------


def test_current_calendar_follows_the_center_directory(app: Flask) -> None:
    directory = center_directory(settings_of(app))
    assert current_calendar().years == frozenset({2026})
    path = _write(directory / "cn-2027.toml", FICTIONAL_2027)
    cal = current_calendar()
    assert cal.years == frozenset({2026, 2027})
    assert not cal.is_working_day(date(2027, 1, 4))
    assert cal.is_working_day(date(2027, 1, 9))  # the (fictional) 调休 Saturday
    assert current_calendar() is cal  # unchanged files: the cached calendar
    # Changed in place (same name): reread without a restart.
    _write(path, FICTIONAL_2027.replace("to = 2027-01-06", "to = 2027-01-08"))
    os.utime(path, ns=(1, 1))  # even with an old mtime: the size differs
    assert not current_calendar().is_working_day(date(2027, 1, 8))
    path.unlink()
    assert current_calendar().years == frozenset({2026})


def test_outside_an_app_the_packaged_years(app: Flask) -> None:
    _write(center_directory(settings_of(app)) / "cn-2027.toml", FICTIONAL_2027)
    with Flask("bare").app_context():
        assert current_calendar() is national_calendar()


def test_a_broken_center_file_is_skipped_never_guessed(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    directory = center_directory(settings_of(app))
    _write(directory / "cn-2027.toml", FICTIONAL_2027.replace("to = 2027-01-06", "to = 2026-01-06"))
    snapshot = center_snapshot(directory)
    assert [name for name, _ in snapshot.problems] == ["cn-2027.toml"]
    assert "from <= to" in snapshot.problems[0][1]
    assert "holiday calendar file skipped" in caplog.text
    with pytest.raises(RuleViolation) as exc:
        current_calendar().is_working_day(date(2027, 1, 4))
    assert exc.value.code == ErrorCode.HOLIDAY_CALENDAR_MISSING


def test_a_center_overlay_of_a_packaged_year_merges(app: Flask) -> None:
    directory = center_directory(settings_of(app))
    _write(
        directory / "cn-2026.toml",
        'year = 2026\nsource = "地方补充"\n[[holiday]]\nname = "地方节日"\nfrom = 2026-03-10\n',
    )
    cal = current_calendar()
    assert not cal.is_working_day(date(2026, 3, 10))
    assert not cal.is_working_day(date(2026, 10, 1))  # the packaged holidays stay


# -- the refusal and its way out -------------------------------------------------------------


def test_a_january_2027_procurement_timeline_is_refused_then_accepted(app: Flask) -> None:
    with pytest.raises(RuleViolation) as exc:
        validate_timeline(ProcurementKind.PROCUREMENT, JANUARY_2027)
    assert exc.value.code == ErrorCode.HOLIDAY_CALENDAR_MISSING
    assert exc.value.details == {"year": 2027, "loaded_years": [2026]}
    assert "sunbid calendar load cn-2027.toml" in exc.value.message
    _write(center_directory(settings_of(app)) / "cn-2027.toml", FICTIONAL_2027)
    validate_timeline(ProcurementKind.PROCUREMENT, JANUARY_2027)


def test_publishing_a_january_2027_procurement_waits_for_the_year(app: Flask, world: World) -> None:
    fields = {
        "documents_issued_at": JANUARY_2027.documents_issued_at,
        "sale_start": JANUARY_2027.sale_start,
        "sale_end": JANUARY_2027.sale_end,
        "bid_deadline": JANUARY_2027.bid_deadline,
    }
    section = draft_section(world, register(world, kind="procurement"), timeline=fields)
    submit_keys(world, section)
    upload_text(world, section)
    services.submit_for_review(world.agent, section)
    with pytest.raises(RuleViolation) as exc:
        services.prepare_publication(world.agent, section)
    assert exc.value.code == ErrorCode.HOLIDAY_CALENDAR_MISSING
    assert "sunbid calendar load cn-2027.toml" in exc.value.message
    # The center loads the year; the same (running) app now accepts it.
    _write(center_directory(settings_of(app)) / "cn-2027.toml", FICTIONAL_2027)
    prepared = services.prepare_publication(world.agent, section)
    assert prepared.opening_key_fingerprint


def test_the_refusal_reads_in_english(app: Flask) -> None:
    with app.test_request_context("/?lang=en"), pytest.raises(RuleViolation) as exc:
        current_calendar().year(2027)
    assert "sunbid calendar load cn-2027.toml" in exc.value.message
    assert "have not been loaded" in exc.value.message


# -- sunbid calendar load --------------------------------------------------------------------


def test_load_copies_the_file_and_audits(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = _write(tmp_path / "incoming" / "holidays-2027.toml", FICTIONAL_2027)
    result = _run(app, monkeypatch, "load", str(source))
    assert result.exit_code == 0, result.output
    target = center_directory(settings_of(app)) / "cn-2027.toml"
    assert target.read_bytes() == source.read_bytes()
    assert "2027: loaded" in result.output and "3 days off" in result.output
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    (event,) = _events("holiday_calendar.loaded")
    assert event.object_type == "holiday_calendar" and event.object_id == "2027"
    assert event.data["file"] == "cn-2027.toml"
    assert event.data["previous_sha256"] is None
    assert event.data["adjusted_workdays"] == ["2027-01-09"]
    assert current_calendar().has_year(2027)
    # The same file again: nothing to do, nothing audited.
    again = _run(app, monkeypatch, "load", str(source))
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert len(_events("holiday_calendar.loaded")) == 1
    # A corrected file replaces it, and the event names what it replaced.
    fixed = _write(source, FICTIONAL_2027.replace("to = 2027-01-06", "to = 2027-01-07"))
    assert _run(app, monkeypatch, "load", str(fixed)).exit_code == 0
    events = sorted(_events("holiday_calendar.loaded"), key=lambda e: e.created_at)
    assert events[1].data["previous_sha256"] == events[0].data["sha256"]
    assert not current_calendar().is_working_day(date(2027, 1, 7))


def test_load_puts_the_old_file_back_when_the_audit_fails(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = center_directory(settings_of(app))
    old = _write(directory / "cn-2027.toml", FICTIONAL_2027)
    before = old.read_bytes()
    source = _write(
        tmp_path / "new.toml", FICTIONAL_2027.replace("to = 2027-01-06", "to = 2027-01-07")
    )

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("audit store down")

    monkeypatch.setattr("bidding.core.audit.record_event", broken)
    result = _run(app, monkeypatch, "load", str(source))
    assert result.exit_code != 0
    assert old.read_bytes() == before
    old.unlink()
    result = _run(app, monkeypatch, "load", str(source))
    assert result.exit_code != 0 and not old.exists()


REFUSED = [
    ("year = ", "not valid TOML"),
    (FICTIONAL_2027.replace("year = 2027", "year = 2028"), "does not belong to year 2028"),
    (
        FICTIONAL_2027.replace("[2027-01-09]", "[2027-01-04]"),
        "both a holiday and an adjusted working day",
    ),
    (FICTIONAL_2027.replace("[2027-01-09]", "[2027-01-11]"), "2027-01-11 is a Monday"),
    (FICTIONAL_2027.replace('name = "测试假日"\n', ""), "2027-01-04 has no 'name'"),
    (FICTIONAL_2027.replace('source = "测试用虚构数据（非国务院安排）"\n', ""), "'source'"),
    (FICTIONAL_2027.replace("adjusted_workdays", "adjusted_workday"), "unknown keys"),
    (FICTIONAL_2027.replace("to = 2027", "until = 2027"), "unknown keys ['until']"),
    ('year = 2027\nsource = "x"\n', "declares no holiday"),
]


@pytest.mark.parametrize(("text", "problem"), REFUSED)
def test_load_refuses_a_malformed_file_with_one_line_and_exit_2(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, problem: str
) -> None:
    source = _write(tmp_path / "bad.toml", text)
    result = _run(app, monkeypatch, "load", str(source))
    assert result.exit_code == 2, result.output
    assert problem in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"sunbid calendar: {source}")
    assert not center_directory(settings_of(app)).exists()
    assert _events("holiday_calendar.loaded") == []


def test_load_refuses_a_missing_or_binary_file(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = _run(app, monkeypatch, "load", str(tmp_path / "none.toml"))
    assert result.exit_code == 2 and "cannot be read" in result.stderr
    binary = tmp_path / "x.toml"
    binary.write_bytes(b"\xff\xfe\x00year")
    result = _run(app, monkeypatch, "load", str(binary))
    assert result.exit_code == 2 and "not UTF-8" in result.stderr


def test_the_packaged_file_passes_the_strict_checks() -> None:
    path = HOLIDAYS_DIR / "cn-2026.toml"
    cal, replace = parse_year(path.read_text(encoding="utf-8"), origin=path.name)
    check_loadable(cal, origin=path.name)
    assert replace is False


# -- sunbid calendar show --------------------------------------------------------------------


def test_show_lists_years_and_a_year(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = _run(app, monkeypatch, "show")
    assert result.exit_code == 0, result.output
    assert "2026   33 days off   6 adjusted workdays  [packaged]" in result.output
    assert "2027" not in result.output
    _run(app, monkeypatch, "load", str(_write(tmp_path / "f.toml", FICTIONAL_2027)))
    result = _run(app, monkeypatch, "show")
    assert "2027    3 days off   1 adjusted workdays  [center: " in result.output
    result = _run(app, monkeypatch, "show", "2026")
    assert result.exit_code == 0
    assert "国庆节  2026-10-01 周四 – 2026-10-07 周三  (7 days)" in result.output
    assert "  2026-10-10 周六" in result.output
    result = _run(app, monkeypatch, "show", "2027")
    assert "测试假日  2027-01-04 周一 – 2027-01-06 周三  (3 days)" in result.output
    result = _run(app, monkeypatch, "show", "2028")
    assert result.exit_code == 1
    assert "2028 is not loaded (loaded: 2026, 2027)" in result.stderr
    assert "sunbid calendar load cn-2028.toml" in result.stderr


def test_show_names_a_skipped_file(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(center_directory(settings_of(app)) / "cn-2027.toml", "year = ")
    result = _run(app, monkeypatch, "show")
    assert result.exit_code == 0
    assert "skipped" in result.stderr and "cn-2027.toml" in result.stderr


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    calendar_module._center_cache.clear()
