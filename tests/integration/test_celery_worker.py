"""A real Celery worker process on Redis and PostgreSQL runs the platform's sweep."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from bidding.app import create_app
from bidding.cli import upgrade_database
from bidding.core import db, tasks
from bidding.core.audit import AuditEvent, record_event
from tests.conftest import TEST_SECRET, make_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _env(instance: Path, postgres_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNBID_")}
    env.update(
        SUNBID_INSTANCE_DIR=str(instance),
        SUNBID_SECRET_KEY=TEST_SECRET,
        SUNBID_DATABASE_URL=postgres_url,
        SUNBID_BROKER_URL=redis_url,
        SUNBID_EMBEDDED_CLOCK="false",
    )
    return env


@pytest.fixture
def worker_app(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[Flask]:
    upgrade_database(postgres_url)
    settings = make_settings(tmp_path / "instance", database_url=postgres_url, broker_url=redis_url)
    app = create_app(settings)
    with app.app_context():
        yield app
    db.dispose_engine()


@pytest.fixture
def worker(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[subprocess.Popen[str]]:
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bidding.celery_app",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ],
        env=_env(tmp_path / "instance", postgres_url, redis_url),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_worker_runs_the_sweep_that_sequences_left_over_events(
    worker_app: Flask, worker: subprocess.Popen[str], postgres_url: str, tmp_path: Path
) -> None:
    with db.session_scope():
        record_event(None, "test.first", "test", None, {"n": 1})
    # Hold the log's state row, as a busy sequencer elsewhere would: the after-commit
    # sequencer of the next request then skips, and only the sweep can pick it up.
    locker = sa.create_engine(postgres_url)
    with locker.connect() as conn:
        conn.execute(sa.text("SELECT id FROM audit_log_state WHERE id = 1 FOR UPDATE"))
        with db.session_scope():
            second = record_event(None, "test.second", "test", None, {"n": 2})
        conn.rollback()
    locker.dispose()
    with db.session_scope() as s:
        assert s.get(AuditEvent, second.id).leaf_index is None  # left over

    # Queued after commit, to Redis; consumed by the worker process.
    with db.session_scope():
        tasks.enqueue(tasks.sweep_task)

    # A loaded machine can take a while to start the worker: wait for it, then for the task.
    log_path = tmp_path / "worker.log"
    ready_by = time.monotonic() + 180
    while "ready." not in log_path.read_text() and time.monotonic() < ready_by:
        assert worker.poll() is None, log_path.read_text()
        time.sleep(0.5)
    deadline = time.monotonic() + 120
    index = None
    while time.monotonic() < deadline:
        assert worker.poll() is None, log_path.read_text()
        with db.session_scope() as s:
            index = s.get(AuditEvent, second.id).leaf_index
        if index is not None:
            break
        time.sleep(0.5)
    assert index == 1, log_path.read_text()
    # The task commits the leaf before it returns; the worker logs its success after,
    # so the line may lag the database by a moment on a loaded machine.
    logged_by = time.monotonic() + 30
    while "succeeded" not in log_path.read_text() and time.monotonic() < logged_by:
        time.sleep(0.2)
    log_text = log_path.read_text()
    assert "sunbid.sweep" in log_text and "succeeded" in log_text, log_text
