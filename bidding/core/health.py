"""``/healthz``: is this node able to serve? Reports database, storage and broker."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, jsonify
from sqlalchemy import text

from bidding.core import db


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
        result: dict[str, Any] = {"ok": True}
        if detail:
            result["detail"] = detail
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def check_database() -> str:
    with db.get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    return db.get_engine().dialect.name


def check_storage() -> str:
    from bidding.core.storage import get_storage

    storage = get_storage()
    storage.check()
    return type(storage).__name__


def check_broker(broker_url: str) -> str:
    if not broker_url:
        return "eager (embedded)"
    import redis

    client = redis.Redis.from_url(broker_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return "redis"


def init_app(app: Flask) -> None:
    from bidding.app import settings_of

    settings = settings_of(app)

    @app.get("/healthz")
    @app.doc(summary="Health check (健康检查)", tags=["health"])  # type: ignore[attr-defined,untyped-decorator]
    def healthz() -> Any:
        checks = {
            "database": _timed(check_database),
            "storage": _timed(check_storage),
            "broker": _timed(lambda: check_broker(settings.broker_url)),
        }
        ok = all(c["ok"] for c in checks.values())
        response = jsonify({"status": "ok" if ok else "degraded", "checks": checks})
        response.status_code = 200 if ok else 503
        response.headers["Cache-Control"] = "no-store"
        return response
