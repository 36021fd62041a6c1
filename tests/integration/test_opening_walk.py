"""Acceptance: one section from registration to a published, signed opening record, with a
real Celery worker process, PostgreSQL (migrated by ``upgrade_database``) and the S3 server.

Four bidders register. Bidder 0 submits and then replaces its bid (only the latest counts);
bidders 1 and 2 submit once; bidder 3's commit arrives one second after the deadline and is
refused (``bid_deadline_passed``). The opening key is 3-of-3 and one custodian (the agency)
is absent: two shares are released, the quorum window passes, and every bidder opens its
own bid by handing over its data key (unwrapped with its own certificate key, as
``sunbid-crypto unwrap`` does). The worker decrypts each bid, and the record lists exactly
the three valid bids with their prices.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bidding.app import create_app
from bidding.cli import upgrade_database
from bidding.core import db
from bidding.core.clock import Clock
from bidding.core.errors import DomainError
from bidding.core.signing_key import platform_key
from bidding.core.storage import get_storage
from bidding.core.tasks import run_sweep
from bidding.opening import services
from bidding.opening.models import OpeningSession, OpeningState
from bidding.projects import services as project_services
from bidding.projects.models import Section, SectionState
from crypto.envelope import read_header, unwrap_data_key
from crypto.signing import SignedDocument
from tests.bids.helpers import BidWorld, commit, seal_bid, upload
from tests.conftest import TEST_SECRET, make_settings
from tests.opening.factories import share_json
from tests.projects.factories import (
    custodian_specs,
    make_world,
    register,
    section_fields,
    submit_keys,
    timeline,
    upload_text,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def walk_app(
    tmp_path: Path, postgres_url: str, redis_url: str, s3_storage_url: str
) -> Iterator[Flask]:
    upgrade_database(postgres_url)
    settings = make_settings(
        tmp_path / "instance",
        database_url=postgres_url,
        storage_url=s3_storage_url,
        broker_url=redis_url,
        socketio_queue=redis_url,
    )
    app = create_app(settings)
    with app.app_context():
        yield app
    db.dispose_engine()


@pytest.fixture
def worker(
    walk_app: Flask, tmp_path: Path, postgres_url: str, redis_url: str, s3_storage_url: str
) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNBID_")}
    env.update(
        SUNBID_INSTANCE_DIR=str(tmp_path / "instance"),
        SUNBID_SECRET_KEY=TEST_SECRET,
        SUNBID_DATABASE_URL=postgres_url,
        SUNBID_STORAGE_URL=s3_storage_url,
        SUNBID_BROKER_URL=redis_url,
        SUNBID_SOCKETIO_QUEUE=redis_url,
        SUNBID_EMBEDDED_CLOCK="false",
    )
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bidding.celery_app", "worker",
         "--pool=prefork", "--concurrency=2", "--loglevel=INFO",
         "--without-mingle", "--without-gossip", "--without-heartbeat"],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _section_3_of_3(w: Any) -> Section:
    s = project_services
    fields = section_fields()
    section = s.create_section(
        w.agent,
        register(w),
        custodians=custodian_specs(w),
        custodian_threshold=3,
        timeline=timeline(),
        **fields,
    )
    submit_keys(w, section)
    upload_text(w, section)
    s.submit_for_review(w.agent, section)
    s.prepare_publication(w.agent, section)
    return s.publish_section(w.agent, section)


def test_walk_from_registration_to_the_published_record(
    walk_app: Flask, worker: subprocess.Popen[str], frozen_clock: Clock, tmp_path: Path
) -> None:
    with db.session_scope():
        w = make_world(bidders=4)
        section = _section_3_of_3(w)
        for rep in w.bidder_reps:
            project_services.register_bidder(rep, section)
        bw = BidWorld(world=w, section=section)
        section_id, deadline = section.id, section.bid_deadline
    assert deadline is not None

    def submit(i: int, price: str) -> Any:
        with db.session_scope() as s:
            bw.section = s.get(Section, section_id)
            sealed = seal_bid(bw, i, price=price)
            return commit(bw, i, sealed, upload(bw, i, sealed)).bid.id

    frozen_clock.freeze(deadline - timedelta(hours=2))
    submit(0, "4700000.00")
    frozen_clock.move(timedelta(minutes=5))
    submit(1, "4580000.00")
    frozen_clock.move(timedelta(minutes=5))
    submit(2, "4800000.00")
    frozen_clock.move(timedelta(minutes=5))
    submit(0, "4650000.00")  # bidder 0 replaces its bid (修改): only this one counts

    # bidder 3 uploads in time but its commit arrives one second late
    frozen_clock.freeze(deadline - timedelta(seconds=30))
    with db.session_scope() as s:
        bw.section = s.get(Section, section_id)
        late = seal_bid(bw, 3, price="4400000.00")
        late_upload = upload(bw, 3, late)
    frozen_clock.freeze(deadline + timedelta(seconds=1))
    with pytest.raises(DomainError) as refused, db.session_scope() as s:
        bw.section = s.get(Section, section_id)
        commit(bw, 3, late, s.merge(late_upload))
    assert refused.value.code == "bid_deadline_passed"

    # the sweep closes the section (3 bids) and starts the opening
    run_sweep(frozen_clock.now())
    with db.session_scope() as s:
        section = s.get(Section, section_id)
        assert section.state is SectionState.OPENING
        session = services.get_session_of(section)
        assert session is not None and (session.k, session.n) == (3, 3)
        assert len(session.results) == 3

    # two custodians release their shares; the agency is absent
    for actor in (w.staff, w.supervisor):
        with db.session_scope() as s:
            section = s.get(Section, section_id)
            services.release_share(actor, section, share_json(w, section, actor.id))
            services.sign_in(actor, section)

    frozen_clock.move(timedelta(minutes=31))
    run_sweep(frozen_clock.now())
    with db.session_scope() as s:
        session = services.get_session_of(s.get(Section, section_id))
        assert session is not None and session.state is OpeningState.SELF_OPEN_WINDOW

    # each bidder hands over its own data key; the worker decrypts its bid
    storage = get_storage()
    for i in range(3):
        with db.session_scope() as s:
            section = s.get(Section, section_id)
            services.sign_in(w.bidder_reps[i], section)
            result = services._result_for_bidder(w.bidder_reps[i], services.get_session_of(section))
            bid = s.get(services.Bid, result.bid_id)
            header = read_header(io.BytesIO(storage.read_bytes(bid.storage_key)[:65536]))
            data_key = unwrap_data_key(header, bw.cert(i).private_key)
            services.self_open(w.bidder_reps[i], section, data_key)

    deadline_wait = time.monotonic() + 120
    state = None
    while time.monotonic() < deadline_wait:
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        with db.session_scope() as s:
            state = s.query(OpeningSession).filter_by(section_id=section_id).one().state
        if state is OpeningState.COMPLETED:
            break
        time.sleep(0.5)
    log_text = (tmp_path / "worker.log").read_text()
    assert state is OpeningState.COMPLETED, log_text
    assert "opening.decrypt_bid" in log_text

    with db.session_scope() as s:
        section = s.get(Section, section_id)
        assert section.state is SectionState.OPENED
        signed = services.record_document(section)
    signed.verify_with_key(platform_key().public_key)
    again = SignedDocument.from_json(signed.to_json())
    again.verify_with_key(platform_key().public_key)
    bids = signed.document["bids"]
    assert [(b["bidder_name"], b["price"], b["status"], b["opened_via"]) for b in bids] == [
        (w.bidders[1].name, "4580000.00", "opened", "self"),
        (w.bidders[2].name, "4800000.00", "opened", "self"),
        (w.bidders[0].name, "4650000.00", "opened", "self"),
    ]
    assert w.bidders[3].name not in {b["bidder_name"] for b in bids}
    assert signed.document["quorum"] == {
        **signed.document["quorum"],
        "k": 3,
        "n": 3,
        "released_indices": [1, 2],
        "reached": False,
    }
