"""Acceptance on PostgreSQL and an S3 server: the deadline race, and 流标 at the deadline.

The race: 50 commits (25 bidders × 2) are prepared before the deadline, then all 50
threads are started while the test itself holds the section's row lock, so every one of
them passes its pre-checks (clock frozen before the deadline) and waits on that lock.
Then the clock is switched to one that advances by one step *per read*, starting 60 steps
before the deadline, and the lock is released. The commits take it (in share mode, a
bidder's two in turn on its registration row) and each reads the clock once for its
decision (and, if accepted, twice more: the audit event
and the tree head). So the first ones are accepted and, once the clock has crossed the
deadline, every later one is refused — without any sleep deciding who wins. Afterwards:
accepted ⇔ decision time < deadline, all accepted times precede all refused ones, one
current bid per bidder (its latest), and the object store holds exactly the current bids'
ciphertexts (refused and superseded ones deleted).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

import bidding.core.clock as clock_module
from bidding.accounts.models import Organisation
from bidding.bids import services
from bidding.bids.models import Bid, BidState, BidUpload, UploadState
from bidding.core import db
from bidding.core.clock import Clock
from bidding.core.errors import DomainError
from bidding.core.signing_key import platform_key
from bidding.core.storage import get_storage
from bidding.core.tasks import run_sweep
from bidding.projects import services as project_services
from bidding.projects.models import Section, SectionState
from crypto.receipt import Receipt, verify_receipt
from tests.bids.helpers import BidWorld, Sealed, make_bid_world, seal_bid, submit, upload
from tests.conftest import build_app, make_settings
from tests.projects.factories import make_world, published_section

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


class StepClock(Clock):
    """Frozen until :meth:`step_from`; then every read returns one step later."""

    def __init__(self, frozen: datetime) -> None:
        super().__init__()
        self.freeze(frozen)
        self._step: timedelta | None = None
        self._next: datetime | None = None

    def step_from(self, first: datetime, step: timedelta) -> None:
        with self._lock:
            self._next, self._step = first, step

    def now(self) -> datetime:
        with self._lock:
            if self._next is not None and self._step is not None:
                value, self._next = self._next, self._next + self._step
                return value
            assert self._frozen is not None
            return self._frozen


@pytest.fixture
def pg_s3_app(postgres_url: str, s3_storage_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = build_app(
        make_settings(tmp_path / "instance", database_url=postgres_url, storage_url=s3_storage_url)
    )
    db.dispose_engine()
    db.configure(postgres_url, pool_size=60, max_overflow=10)
    with app.app_context():
        yield app
    db.dispose_engine()


@pytest.fixture
def step_clock(monkeypatch: pytest.MonkeyPatch) -> StepClock:
    clock = StepClock(START)
    monkeypatch.setattr(clock_module, "clock", clock)
    return clock


def _waiting_on_locks(conn: Any) -> int:
    count = int(
        conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        ).scalar()
    )
    conn.rollback()  # pg_stat_activity is a snapshot kept until the transaction ends
    return count


def _stacks(threads: list[threading.Thread]) -> str:
    """Where the worker threads are (for a failure message)."""
    import sys
    import traceback

    frames = sys._current_frames()
    out = []
    for t in threads:
        frame = frames.get(t.ident or -1)
        if frame is not None:
            out.append("".join(traceback.format_stack(frame)[-6:]))
    return "\n---\n".join(sorted(set(out), key=out.count))


def test_fifty_commits_straddling_the_deadline(pg_s3_app: Flask, step_clock: StepClock) -> None:
    bidders, per_bidder = 25, 2
    with db.session_scope():
        w = make_world(bidders=bidders)
        section = published_section(w)
        for rep in w.bidder_reps:
            project_services.register_bidder(rep, section)
        bw = BidWorld(world=w, section=section)
        jobs: list[tuple[int, Sealed, uuid.UUID]] = []
        for i in range(bidders):
            for n in range(per_bidder):
                sealed = seal_bid(bw, i, price=f"{4000000 + 1000 * n + i}.00")
                jobs.append((i, sealed, upload(bw, i, sealed).id))
        section_id = section.id
        deadline = section.bid_deadline
        reps = list(w.bidder_reps)
    assert deadline is not None
    step_clock.freeze(deadline - timedelta(hours=1))

    app = pg_s3_app
    results: list[tuple[str, Any] | None] = [None] * len(jobs)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        i, sealed, upload_id = jobs[k]
        try:
            with app.app_context():
                try:
                    with db.session_scope() as s:
                        result = services.commit_bid(
                            reps[i],
                            s.get(Section, section_id),
                            s.get(BidUpload, upload_id),
                            manifest=sealed.manifest,
                            signature=sealed.signature,
                            certificate_chain=sealed.chain,
                            client_key=f"job-{k}",
                        )
                        results[k] = ("accepted", (result.bid.id, result.bid.committed_at))
                except DomainError as err:
                    results[k] = ("refused", err)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            db.session.remove()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(jobs))]
    engine = db.get_engine()
    with engine.connect() as holder:
        holder.execute(
            text("SELECT id FROM sections WHERE id = :id FOR UPDATE"), {"id": section_id}
        )
        for t in threads:
            t.start()
        with engine.connect() as watcher:
            limit = time.monotonic() + 120
            while True:  # polling an observable condition, not sleeping as synchronisation
                waiting = _waiting_on_locks(watcher)
                done = sum(r is not None for r in results)
                if waiting + done >= len(jobs):
                    break
                assert not errors, errors
                assert time.monotonic() < limit, (
                    f"only {waiting} commits wait on the section lock, {done} finished early: "
                    f"{[r for r in results if r is not None][:3]}\n{_stacks(threads)}"
                )
                threading.Event().wait(0.02)
            assert done == 0, f"{done} commits ended before the lock: {results}"
        # every commit has passed its pre-checks and waits for the lock: cross the deadline
        step_clock.step_from(deadline - timedelta(milliseconds=60), timedelta(milliseconds=1))
        holder.rollback()  # release the lock
    for t in threads:
        t.join(180)
    assert not errors, errors
    assert all(r is not None for r in results)

    accepted = [r[1] for r in results if r is not None and r[0] == "accepted"]
    refused = [r[1] for r in results if r is not None and r[0] == "refused"]
    assert accepted and refused, (len(accepted), len(refused))
    assert {e.code for e in refused} == {"bid_deadline_passed"}
    refused_times = [datetime.fromisoformat(e.details["server_time"]) for e in refused]
    assert all(at < deadline for _, at in accepted)
    assert all(at >= deadline for at in refused_times)
    assert max(at for _, at in accepted) < min(refused_times)

    step_clock.freeze(deadline + timedelta(minutes=1))
    storage = get_storage()
    with db.session_scope() as s:
        bids = list(s.scalars(select(Bid)))
        assert {b.id for b in bids} == {bid_id for bid_id, _ in accepted}
        current = [b for b in bids if b.is_current]
        by_bidder: dict[uuid.UUID, list[Bid]] = {}
        for b in bids:
            by_bidder.setdefault(b.bidder_id, []).append(b)
        for rows in by_bidder.values():
            latest = max(rows, key=lambda b: b.committed_at)
            assert [b for b in rows if b.is_current] == [latest]
            assert all(b.state is BidState.SUPERSEDED for b in rows if b is not latest)
        for b in bids:
            verify_receipt(Receipt.from_dict(b.receipt), platform_key().public_key)
        uploads = list(s.scalars(select(BidUpload)))
        committed = {u.id for u in uploads if u.state is UploadState.COMMITTED}
        assert committed == {b.upload_id for b in bids}
        assert {u.state for u in uploads} <= {UploadState.COMMITTED, UploadState.REFUSED}
        assert len(uploads) - len(committed) == len(refused)
        # the database and the object store agree: only current bids' ciphertexts remain
        assert sorted(storage.list_keys("bids/")) == sorted(b.storage_key for b in current)
        count = s.scalar(
            select(func.count(Bid.id)).where(Bid.section_id == section_id, Bid.is_current)
        )
        assert count == len(current) == len(by_bidder)


def test_two_bids_fail_the_section_at_the_deadline(pg_s3_app: Flask, step_clock: StepClock) -> None:
    """流标 through the real close sweep with the installed bid counter."""
    with db.session_scope():
        bw = make_bid_world(register=3)
        submit(bw, 0)
        submit(bw, 1)
        section_id, deadline = bw.section.id, bw.section.bid_deadline
    assert deadline is not None
    step_clock.freeze(deadline)
    results = run_sweep(deadline)
    assert results is not None and results["projects.close_due_sections"] == 1
    with db.session_scope() as s:
        section = s.get(Section, section_id)
        assert section is not None and section.state is SectionState.FAILED
        assert section.failure_reason and "2" in section.failure_reason


def test_decision_locks_bidders_apart_and_section_changes_wait(pg_s3_app: Flask) -> None:
    """A bid decision holds the section row in share mode and its bidder's registration
    exclusively: another bidder's decision goes through beside it, the same bidder's
    waits, and so does any change of the section (it updates the row)."""
    with db.session_scope():
        w = make_world(bidders=2)
        section = published_section(w)
        for rep in w.bidder_reps:
            project_services.register_bidder(rep, section)
        section_id = section.id
        orgs = [o.id for o in w.bidders]

    def decide(i: int, hold: threading.Event | None, done: threading.Event) -> None:
        with pg_s3_app.app_context(), db.session_scope() as s:
            org = s.get(Organisation, orgs[i])
            services._lock_section(s.get(Section, section_id), org)
            done.set()
            if hold is not None:
                hold.wait(30)

    release, first_in = threading.Event(), threading.Event()
    holder = threading.Thread(target=decide, args=(0, release, first_in))
    holder.start()
    try:
        assert first_in.wait(30)
        other, same = threading.Event(), threading.Event()
        threading.Thread(target=decide, args=(1, None, other), daemon=True).start()
        assert other.wait(10), "another bidder's decision waited for the first"
        same_bidder = threading.Thread(target=decide, args=(0, None, same), daemon=True)
        same_bidder.start()
        assert not same.wait(1.5), "the same bidder's decisions must take turns"
        with db.get_engine().connect() as conn:
            conn.execute(text("SET lock_timeout = '1s'"))
            with pytest.raises(Exception, match="lock timeout"):
                conn.execute(
                    text("UPDATE sections SET name = name WHERE id = :id"), {"id": section_id}
                )
            conn.rollback()
    finally:
        release.set()
        holder.join(30)
    assert same.wait(10)  # its turn came once the first decision ended
