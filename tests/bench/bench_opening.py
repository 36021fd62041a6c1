"""Opening throughput benchmark (not a pytest test): N bids × M MB decrypted by the
opening, against raw GET + AES-256-GCM decrypt of the same bytes in the same run.

Run (defaults: 200 bids × 20 MB, 2 workers, Celery mode)::

    .venv/bin/python tests/bench/bench_opening.py
    BENCH_BIDS=20 BENCH_MB=2 BENCH_MODE=embedded .venv/bin/python tests/bench/bench_opening.py

Environment:

* ``BENCH_BIDS``, ``BENCH_MB`` — how many bids and how large (plaintext MiB);
* ``BENCH_WORKERS`` (2) — Celery worker processes (``--concurrency``) / threads;
* ``BENCH_MODE`` — ``celery`` (PostgreSQL from ``SUNBID_TEST_PG_URL``, Redis from
  ``SUNBID_TEST_REDIS_URL``, a real ``celery worker`` process pool) or ``embedded``
  (SQLite, the decrypt service run by a thread pool in this process);
* ``BENCH_STORAGE`` — ``s3`` (default: a moto S3 server started here) or ``local``.

Timed: from the commit that completes the quorum (k shares; the decrypt tasks are queued)
until the session is completed and the signed record published. Baseline: the least work
the format needs on the same objects, by the same number of workers — each object
streamed once through the same storage client (``get_storage().open``, the same 1 MiB
buffered reader), AES-256-GCM ``decrypt_into`` segment by segment and **one SHA-256 pass
over the ciphertext bytes** (inline, as the baseline of ``bench_crypto.py``: "AES-GCM +
one SHA-256 pass"; the opening must check the signed ciphertext hash, so no opening can
skip it). Not in the baseline: unwrapping the data key, the price sheet, the database,
the audit log, the task queue. Target: opening ≤ 1.3 × baseline. ``BENCH_BASELINE_SHA=0``
shows the old, hash-free baseline. moto is a pure-Python S3 mock and the machine may be
shared: compare ratios within a run, not absolute MB/s; the load average is printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

BIDS = int(os.environ.get("BENCH_BIDS", "200"))
MB = int(os.environ.get("BENCH_MB", "20"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
MODE = os.environ.get("BENCH_MODE", "celery")
STORAGE = os.environ.get("BENCH_STORAGE", "s3")
PG_ADMIN = os.environ.get("SUNBID_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("SUNBID_TEST_REDIS_URL", "redis://127.0.0.1:6379") + "/14"


SHA_IN_BASELINE = os.environ.get("BENCH_BASELINE_SHA", "1") != "0"


def _raw_decrypt(storage: Any, key: str, data_key: bytes) -> int:
    """GET + AES-256-GCM decrypt_into per segment + one SHA-256 pass over the ciphertext:
    the least the opening must do."""
    import hashlib

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from crypto.envelope import _LABEL_PAYLOAD_KEY, _hkdf, _nonce, read_header

    h = hashlib.sha256()
    update = h.update if SHA_IN_BASELINE else (lambda _data: None)
    with storage.open(key) as src:
        header = read_header(src)
        update(header.raw)
        aead = AESGCM(_hkdf(data_key, _LABEL_PAYLOAD_KEY))
        seg = header.segment_size
        body = bytearray(seg + 16)
        out = bytearray(seg)
        index = total = 0
        while True:
            word = src.read(4)
            if len(word) < 4:
                break
            update(word)
            w = int.from_bytes(word, "big")
            final, n = bool(w >> 31), w & 0x7FFFFFFF
            view = memoryview(body)[: n + 16]
            src.readinto(view)
            update(view)
            aead.decrypt_into(
                _nonce(header.nonce_prefix, index, final),
                view,
                header.sha256 + word,
                memoryview(out)[:n],
            )
            total += n
            index += 1
            if final:
                break
    h.digest()
    return total


def main() -> None:
    from bidding.app import create_app
    from bidding.core import db
    from bidding.core.clock import clock
    from tests.conftest import TEST_SECRET, make_settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-opening-"))
    procs: list[subprocess.Popen[Any]] = []
    overrides: dict[str, Any] = {}
    db_name = None
    if STORAGE == "s3":
        from tests.fixtures.s3 import S3_ACCESS_KEY, S3_SECRET_KEY, _start

        moto, endpoint = _start((tmp / "moto.log").open("wb"))
        procs.append(moto)
        overrides["storage_url"] = (
            f"s3://{S3_ACCESS_KEY}:{S3_SECRET_KEY}@{endpoint}/bench-{uuid.uuid4().hex[:12]}"
        )
    admin = None
    if MODE == "celery":
        import redis
        import sqlalchemy as sa

        from bidding.cli import upgrade_database

        db_name = f"sunbid_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
        overrides["database_url"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + db_name
        upgrade_database(overrides["database_url"])
        redis.Redis.from_url(REDIS).flushdb()
        overrides["broker_url"] = REDIS
    settings = make_settings(tmp / "instance", **overrides)
    app = create_app(settings)
    try:
        with app.app_context():
            if MODE != "celery":
                db.Base.metadata.create_all(db.get_engine())
            run(app, settings, tmp, procs, TEST_SECRET)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        db.dispose_engine()
        if admin is not None and db_name is not None:
            import sqlalchemy as sa

            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        clock.unfreeze()


def run(app: Any, settings: Any, tmp: Path, procs: list[Any], secret: str) -> None:
    from datetime import UTC, datetime

    from bidding.core import db
    from bidding.core.clock import clock
    from bidding.core.storage import get_storage
    from bidding.opening import services
    from bidding.opening.models import OpeningSession, OpeningState
    from bidding.projects import services as project_services
    from bidding.projects.models import Section
    from tests.opening import factories
    from tests.projects.factories import make_world, published_section

    clock.freeze(datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    previous = project_services.set_bid_counter(factories.count_current_bids)
    filler = os.urandom(MB * 1024 * 1024)
    t0 = time.perf_counter()
    with db.session_scope():
        w = make_world(bidders=BIDS)
        section = published_section(w)
        sealed = []
        for i in range(BIDS):
            org = w.bidders[i]
            from bidding.bids.package import package_bytes

            plain = package_bytes(
                factories.price_sheet(section, org, f"{4000000 + i}.00"), {"技术标.pdf": filler}
            )
            sealed.append(factories.store_bid(w, section, i, plain, segment_size=1024 * 1024))
        factories.close(section, clock)
        session = services.start_opening(None, section)
        assert session is not None
        section_id, session_id = section.id, session.id
        keys = [(s.bid.storage_key, s.data_key) for s in sealed]
        total = sum(s.bid.ciphertext_size for s in sealed)
        del sealed
    print(f"setup: {BIDS} bids × {MB} MiB stored in {time.perf_counter() - t0:.1f} s", flush=True)

    queued: list[str] = []
    if MODE == "celery":
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUNBID_")}
        env.update(
            SUNBID_INSTANCE_DIR=str(settings.instance_dir),
            SUNBID_SECRET_KEY=secret,
            SUNBID_DATABASE_URL=settings.database_url,
            SUNBID_STORAGE_URL=settings.storage_url,
            SUNBID_BROKER_URL=settings.broker_url,
            SUNBID_EMBEDDED_CLOCK="false",
        )
        for name in ("SUNBID_WORKER_MALLOC_RETAIN_MB", "SUNBID_OPENING_HASH_THREAD"):
            if name in os.environ:  # worker tuning under test
                env[name] = os.environ[name]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bidding.celery_app", "worker",
             "--pool=prefork", f"--concurrency={WORKERS}", "--loglevel=WARNING",
             "--without-mingle", "--without-gossip", "--without-heartbeat"],
            env=env, stdout=(tmp / "worker.log").open("w"), stderr=subprocess.STDOUT,
        ))  # fmt: skip
        time.sleep(3)  # let the pool start before timing
    else:
        services._enqueue_decrypt = lambda rid: queued.append(str(rid))  # type: ignore[assignment]
        services._enqueue_decrypt_many = lambda rids: queued.extend(map(str, rids))  # type: ignore[assignment]

    storage = get_storage()

    def run_baseline() -> tuple[float, int]:
        start = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            plain = sum(pool.map(lambda kd: _raw_decrypt(storage, *kd), keys))
        return time.perf_counter() - start, plain

    # the baseline runs before and after the opening; the faster run counts (stricter)
    baseline_before, _ = run_baseline()

    w_staff, w_sup = w.staff, w.supervisor
    with db.session_scope() as s:
        section = s.get(Section, section_id)
        services.release_share(w_staff, section, factories.share_json(w, section, w_staff.id))
    with db.session_scope() as s:
        section = s.get(Section, section_id)
        services.release_share(w_sup, section, factories.share_json(w, section, w_sup.id))
        start = time.perf_counter()
    if MODE != "celery":
        from sqlalchemy.exc import OperationalError

        def one(rid: str) -> None:
            # SQLite: a read transaction cannot be upgraded while another thread writes
            # ("database is locked"); the embedded runtime runs tasks one at a time, the
            # bench retries (PostgreSQL in celery mode has no such limit).
            for _attempt in range(20):
                try:
                    with app.app_context(), db.session_scope():
                        services.decrypt_result(uuid.UUID(rid))
                    return
                except OperationalError:
                    time.sleep(0.01)

        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(one, queued))
    # Wait for the completion with a light poll: one single-row read every 20 ms through
    # the driver's own cursor on a held connection, autocommit on PostgreSQL (one round
    # trip, ~0.1 ms of this process's CPU). Heavier polls (an ORM session every 50 ms, or
    # a SQLAlchemy Core statement every 20 ms: ~0.35 s of CPU over an opening) took CPU
    # the workers need on 2 shared cores.
    raw = db.get_engine().raw_connection()
    try:
        postgres = db.get_engine().dialect.name == "postgresql"
        if postgres:
            raw.driver_connection.autocommit = True  # type: ignore[union-attr]
        cursor = raw.cursor()
        query = "SELECT state FROM opening_sessions WHERE id = " + ("%s" if postgres else "?")
        param = session_id if postgres else session_id.hex
        while True:
            cursor.execute(query, (param,))
            if cursor.fetchone()[0] == OpeningState.COMPLETED.value:
                break
            if not postgres:
                raw.rollback()  # a fresh snapshot next time
            time.sleep(0.02)
        cursor.close()
    finally:
        raw.close()
    opening = time.perf_counter() - start
    with db.session_scope() as s:
        counts = services._progress(s.get(OpeningSession, session_id))
    project_services.set_bid_counter(previous)

    baseline_after, plain_total = run_baseline()
    baseline = min(baseline_before, baseline_after)
    mb = total / 1e6
    print(
        f"mode={MODE} storage={STORAGE} workers={WORKERS} bids={BIDS} size={MB} MiB "
        f"total={mb:.0f} MB results={counts}"
    )
    print(f"opening : {opening:8.2f} s  {mb / opening:8.1f} MB/s")
    print(
        f"baseline: {baseline:8.2f} s  {mb / baseline:8.1f} MB/s  (GET + AES-GCM"
        f"{' + SHA-256' if SHA_IN_BASELINE else ''}, "
        f"{plain_total / 1e6:.0f} MB plaintext)"
    )
    print(f"          (baseline before the opening {baseline_before:.2f} s, "
          f"after {baseline_after:.2f} s; the faster counts)")  # fmt: skip
    print(f"ratio opening/baseline = {opening / baseline:.2f} (target ≤ 1.3); "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
