from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime

import pytest
from flask import Flask

from bidding.core import db, tasks
from bidding.core.clock import Clock

calls: list[tuple[str, object]] = []


@tasks.celery.task(name="tests.record_call")
def record_call(value: str) -> str:
    # runs inside the base task: app context and its own session scope
    assert db.session.registry.has()
    calls.append(("task", value))
    return value


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    calls.clear()
    yield
    calls.clear()


def test_enqueue_runs_only_after_commit(app: Flask) -> None:
    with db.session_scope():
        tasks.enqueue(record_call, "x")
        assert calls == []  # not before the commit
    assert calls == [("task", "x")]


def test_enqueue_dropped_on_rollback(app: Flask) -> None:
    with pytest.raises(RuntimeError), db.session_scope():
        tasks.enqueue(record_call, "y")
        raise RuntimeError("the transaction failed")
    assert calls == []


def test_enqueue_in_request_runs_after_response_commit(app: Flask) -> None:
    @app.post("/_test/enqueue")
    def _enqueue() -> dict[str, bool]:
        tasks.enqueue(record_call, "from-request")
        return {"ok": True}

    @app.post("/_test/enqueue-fail")
    def _enqueue_fail() -> tuple[dict[str, bool], int]:
        tasks.enqueue(record_call, "never")
        return {"ok": False}, 409

    app.config["WTF_CSRF_ENABLED"] = False  # bare test routes, no form
    client = app.test_client()
    assert client.post("/_test/enqueue").status_code == 200
    assert calls == [("task", "from-request")]
    assert client.post("/_test/enqueue-fail").status_code == 409
    assert calls == [("task", "from-request")]


def test_sweep_runs_handlers_each_in_own_transaction(app: Flask, frozen_clock: Clock) -> None:
    seen: list[datetime] = []

    def good(now: datetime) -> int:
        seen.append(now)
        return 2

    def bad(now: datetime) -> int:
        raise RuntimeError("handler bug")

    saved = dict(tasks._SWEEPS)
    try:
        tasks.register_sweep("t_bad")(bad)
        tasks.register_sweep("t_good")(good)
        result = tasks.run_sweep()
    finally:
        tasks._SWEEPS.clear()
        tasks._SWEEPS.update(saved)
    assert result is not None
    assert result["t_bad"] == -1  # logged, others still ran
    assert result["t_good"] == 2
    assert seen == [frozen_clock.now()]


def test_sweep_is_locked_against_a_concurrent_sweep(app: Flask) -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow(now: datetime) -> int:
        entered.set()
        release.wait(10)
        return 1

    saved = dict(tasks._SWEEPS)
    results: list[object] = []
    try:
        tasks._SWEEPS.clear()
        tasks.register_sweep("t_slow")(slow)

        def first() -> None:
            with app.app_context():
                results.append(tasks.run_sweep())

        t = threading.Thread(target=first)
        t.start()
        assert entered.wait(10)
        assert tasks.run_sweep() is None  # the second sweep backs off
        release.set()
        t.join(10)
    finally:
        tasks._SWEEPS.clear()
        tasks._SWEEPS.update(saved)
    assert results == [{"t_slow": 1}]


def test_embedded_clock_thread_sweeps(app: Flask) -> None:
    ticked = threading.Event()

    def tick(now: datetime) -> int:
        ticked.set()
        return 0

    saved = dict(tasks._SWEEPS)
    try:
        tasks.register_sweep("t_tick")(tick)
        clock_thread = tasks.EmbeddedClock(app, interval=0.05).start()
        assert ticked.wait(10)
        clock_thread.stop()
    finally:
        tasks._SWEEPS.clear()
        tasks._SWEEPS.update(saved)
