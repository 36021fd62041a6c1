"""The ``sunbid`` command (运维命令): serve, migrate, seed the demo, manage users, verify the
audit log, run the sweep once, load holiday calendars."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bidding.config import ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        click.echo(f"sunbid: invalid configuration: {exc}", err=True)
        sys.exit(2)


def _app(settings: Settings | None = None) -> Any:
    from bidding.app import create_app

    return create_app(settings or _settings())


def migrations_dir() -> Path:
    """The Alembic folder: ``migrations/`` next to the packages (repo or image root)."""
    here = Path(__file__).resolve().parent.parent
    return here / "migrations"


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    root = migrations_dir().parent
    cfg = Config(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["url"] = url
    return cfg


def upgrade_database(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


@click.group(help="Sunbid public-resource trading platform (公共资源交易平台).")
def main() -> None:
    pass


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--debug", is_flag=True, help="Flask debug mode (never in production).")
def serve(host: str, port: int, debug: bool) -> None:
    """Serve the platform with the embedded server (production: gunicorn, see deploy/)."""
    from bidding.app import settings_of
    from bidding.core.realtime import socketio
    from bidding.core.tasks import EmbeddedClock

    app = _app()
    settings = settings_of(app)
    clock = None
    if settings.embedded_clock and settings.eager_tasks:
        clock = EmbeddedClock(app, settings.sweep_interval).start()
    click.echo(f"Sunbid serving on http://{host}:{port}/ (database: {settings.database_url})")
    try:
        socketio.run(
            app, host=host, port=port, debug=debug, use_reloader=False, allow_unsafe_werkzeug=True
        )
    finally:
        if clock:
            clock.stop()


@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Upgrade the database schema to REVISION."""
    settings = _settings()
    settings.instance_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.database_url, revision)
    click.echo(f"database upgraded to {revision}")


@main.command()
def demo() -> None:
    """Seed the demo (idempotent): the Shigatse center, partners, one user per role, and a
    published tender with a section under review (bidding/demo.py)."""
    from bidding.app import settings_of
    from bidding.core.db import session_scope
    from bidding.demo import describe, seed

    app = _app()
    with app.app_context(), session_scope() as s:
        result = seed(s, settings_of(app))
    click.echo("Demo logins (演示账号):")
    for login in result.logins:
        click.echo(f"  {login.role:<14} {login.username:<20} {login.password}")
    for line in describe(result):
        click.echo(line)


@main.group()
def user() -> None:
    """User accounts."""


@user.command("create")
@click.option("--username", required=True)
@click.option("--display-name", default=None)
@click.option("--role", "roles", multiple=True, required=True, help="Role; repeat for more.")
@click.option("--organisation", default=None, help="Credit code of the organisation.")
@click.option("--center", default=None, help="Region code of the trading center.")
@click.password_option()
def user_create(
    username: str,
    display_name: str | None,
    roles: tuple[str, ...],
    organisation: str | None,
    center: str | None,
    password: str,
) -> None:
    """Create a user with roles (scoped to an organisation or a center)."""
    from bidding.accounts.services import create_user_cli
    from bidding.core.db import session_scope
    from bidding.core.errors import DomainError

    app = _app()
    try:
        with app.app_context(), session_scope():
            created = create_user_cli(
                username=username,
                display_name=display_name or username,
                password=password,
                roles=list(roles),
                organisation_code=organisation,
                center_region=center,
            )
            click.echo(f"created user {created.username} ({created.id})")
    except DomainError as exc:
        click.echo(f"sunbid: {exc.code}: {exc.message}", err=True)
        sys.exit(1)


@main.group()
def audit() -> None:
    """The audit transparency log (见证日志)."""


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the log from the stored events; exit 1 naming the first bad event."""
    from bidding.core.audit import run_verify

    app = _app()
    with app.app_context():
        code = run_verify(click.echo)
    sys.exit(code)


@main.command()
def sweep() -> None:
    """Run the periodic sweep once (what beat or the embedded clock does)."""
    from bidding.core.tasks import run_sweep

    app = _app()
    with app.app_context():
        result = run_sweep()
    click.echo(f"sweep: {result}")


def _register_bid_client() -> None:
    """``sunbid bid …``: the bidder's client (bidding/bids/client.py)."""
    from bidding.bids.client import bid

    main.add_command(bid)


_register_bid_client()


def _register_calendar() -> None:
    """``sunbid calendar …``: load and show holiday calendars (bidding/projects/calendar_cli.py)."""
    from bidding.projects.calendar_cli import calendar

    main.add_command(calendar)


_register_calendar()


if __name__ == "__main__":
    main()
