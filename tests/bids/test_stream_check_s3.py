"""Streamed uploads to the S3 server: a bad envelope leaves neither an object nor an open
multipart upload, whether it is refused while the first part fills (nothing sent) or
at its last bytes (after a part went up: the multipart upload is aborted)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from bidding.bids import services
from bidding.config import Settings
from bidding.core import db
from bidding.core.errors import DomainError
from bidding.core.storage import get_storage
from tests.bids.helpers import BidWorld, commit, seal_bid, upload
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

PART = 5 * 1024 * 1024  # the smallest S3 part: a 6 MiB envelope goes up in two parts


@pytest.fixture
def settings(tmp_path: Path, s3_storage_url: str) -> Settings:
    return make_settings(tmp_path / "instance", storage_url=s3_storage_url)


def _nothing_left() -> None:
    storage = get_storage()
    assert storage.list_keys("bids/") == []
    assert [k for k, _ in storage.list_uploads() if k.startswith("bids/")] == []  # type: ignore[attr-defined]


def _refused(bw: BidWorld, data: bytes) -> DomainError:
    s = db.get_session()
    s.commit()
    with pytest.raises(DomainError) as info:
        services.upload_bid_stream(
            bw.rep(0),
            bw.section,
            io.BytesIO(data),
            len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            client_key="k",
        )
    s.rollback()
    return info.value


def test_bad_envelopes_leave_nothing_in_s3(bw: BidWorld) -> None:
    get_storage().part_size = PART  # type: ignore[attr-defined]
    sealed = seal_bid(bw, 0, plaintext=bytes(6 * 1024 * 1024))
    envelope = sealed.envelope
    assert len(envelope) > PART
    word = int.from_bytes(envelope[12:16], "big") + 2 * (4 + 1024 + 16)
    bad_word = envelope[:word] + b"\0\0\0\1" + envelope[word + 4 :]
    for data, crypto_code in (
        (envelope + b"\0", "envelope_trailing_data"),  # found at the very end
        (envelope[:-1], "envelope_truncated"),
        (bad_word, "envelope_format"),  # found while the first part fills
    ):
        err = _refused(bw, data)
        assert (err.code, err.details.get("crypto_code")) == ("bid_envelope_invalid", crypto_code)
        _nothing_left()

    up = upload(bw, 0, sealed)
    assert up.envelope_verified and up.envelope_size == len(envelope)
    assert get_storage().stat(up.storage_key).size == len(envelope)
    assert commit(bw, 0, sealed, up).bid.ciphertext_sha256 == sealed.sha256
