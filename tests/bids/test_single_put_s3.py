"""Single presigned PUT to the S3 server: the client's bytes go straight to S3 through
the presigned URL; the commit stats and reads the object back; a refusal deletes it."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bidding.bids import services
from bidding.bids.models import UploadState
from bidding.config import Settings
from bidding.core import db
from bidding.core.clock import Clock
from bidding.core.storage import get_storage
from tests.bids.helpers import BidWorld, Sealed, commit, seal_bid
from tests.bids.test_services import assert_refused_and_deleted, refuse
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path, s3_storage_url: str) -> Settings:
    return make_settings(tmp_path / "instance", storage_url=s3_storage_url)


def _put(bw: BidWorld, sealed: Sealed, key: str, data: bytes) -> services.UploadTicket:
    get_storage().check()  # the bucket exists (as in any deployment)
    ticket = services.start_upload(
        bw.rep(0),
        bw.section,
        size=sealed.size,
        sha256=sealed.sha256,
        client_key=key,
        method="single",
    )
    assert ticket.put_url is not None and ticket.put_headers is not None
    # the URL signs the checksum header: a store that checks signatures (MinIO, AWS)
    # accepts the PUT only with this header, and then only the declared bytes
    signed = parse_qs(urlsplit(ticket.put_url).query)["X-Amz-SignedHeaders"][0]
    assert signed == "host;x-amz-checksum-sha256"
    assert (
        ticket.put_headers["x-amz-checksum-sha256"]
        == base64.b64encode(bytes.fromhex(sealed.sha256)).decode()
    )
    r = requests.put(ticket.put_url, data=data, headers=ticket.put_headers, timeout=30)
    assert r.status_code == 200, r.text
    return ticket


def test_single_put_to_s3_commit_and_refusals(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    bad = sealed.envelope[:-1] + bytes([sealed.envelope[-1] ^ 1])
    up = _put(bw, sealed, "bad", bad).upload
    refuse("checksum_mismatch", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("checksum_mismatch", up)
    up = _put(bw, sealed, "short", sealed.envelope[:-5]).upload
    refuse("upload_incomplete", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("upload_incomplete", up)
    get_storage().check()
    early = services.start_upload(
        bw.rep(0), bw.section, size=sealed.size, sha256=sealed.sha256, client_key="early",
        method="single",
    ).upload  # fmt: skip
    # committed before its PUT arrived: the GET finds nothing, the upload is kept
    refuse("bid_upload_incomplete", commit, bw, 0, sealed, early)
    db.get_session().refresh(early)
    assert early.state is UploadState.OPEN
    up = _put(bw, sealed, "long", sealed.envelope + b"\0").upload
    refuse("upload_too_large", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("upload_too_large", up)
    assert get_storage().list_keys("bids/") == []

    ticket = _put(bw, sealed, "ok", sealed.envelope)
    result = commit(bw, 0, sealed, ticket.upload)
    db.get_session().commit()
    assert ticket.upload.state is UploadState.COMMITTED
    assert get_storage().stat(result.bid.storage_key).size == sealed.size
    assert get_storage().list_keys("bids/") == [result.bid.storage_key]


def test_put_url_never_outlives_the_deadline(bw: BidWorld, frozen_clock: Clock) -> None:
    """A presigned PUT cannot be revoked: it must not be usable after the bid deadline."""
    sealed = seal_bid(bw, 0)
    assert bw.section.bid_deadline is not None
    frozen_clock.freeze(bw.section.bid_deadline - timedelta(minutes=10))
    ticket = services.start_upload(
        bw.rep(0),
        bw.section,
        size=sealed.size,
        sha256=sealed.sha256,
        client_key="late",
        method="single",
    )
    assert ticket.put_url is not None
    query = parse_qs(urlsplit(ticket.put_url).query)
    assert int(query["X-Amz-Expires"][0]) == 600
