"""Factories for the opening tests: sealed bids stored as the bids domain stores them, and
a section taken to its opening."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bidding.bids.models import Bid, BidState, BidUpload, UploadMethod, UploadState
from bidding.bids.package import package_bytes
from bidding.core import db
from bidding.core.clock import now
from bidding.core.storage import get_storage
from bidding.opening import services
from bidding.opening.models import OpeningSession
from bidding.projects import services as project_services
from bidding.projects.models import Section
from crypto.envelope import seal_bytes
from crypto.threshold import EncryptedShare, Share, decrypt_share
from tests.projects.factories import World, published_section

PRICES = ("4650000.00", "4700000.00", "4580000.00", "4800000.00")


def price_sheet(section: Section, org: Any, price: str) -> dict[str, Any]:
    return {
        "type": "sunbid.price-sheet",
        "version": 1,
        "section_id": str(section.id),
        "bidder_credit_code": org.credit_code,
        "bidder_name": org.name,
        "total_price": price,
        "currency": "CNY",
        "duration_days": 180,
        "quality": "合格",
        "items": [{"name": "质保期", "value": "5年"}],
    }


def bid_package(section: Section, org: Any, price: str, extra: int = 0) -> bytes:
    return package_bytes(
        price_sheet(section, org, price), {"商务标.pdf": b"%PDF-1.7 " + b"x" * (100 + extra)}
    )


@dataclass
class SealedBid:
    bid: Bid
    data_key: bytes
    bidder_key: X25519PrivateKey
    envelope: bytes = field(repr=False)


def store_bid(
    w: World,
    section: Section,
    index: int,
    plaintext: bytes | None = None,
    *,
    recipients: list[Any] | None = None,
    envelope: bytes | None = None,
    segment_size: int = 1024,
) -> SealedBid:
    """Seal ``plaintext`` (default: a valid package) for bidder ``index`` and record it as a
    committed, current bid."""
    org = w.bidders[index]
    rep = w.bidder_reps[index]
    if plaintext is None:
        plaintext = bid_package(section, org, PRICES[index % len(PRICES)])
    bidder_key = X25519PrivateKey.generate()
    opening_pub = X25519PrivateKey  # noqa: F841 - readability
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    pub = X25519PublicKey.from_public_bytes(bytes.fromhex(section.opening_public_key or ""))
    rng_key: list[bytes] = []
    import os

    def rng(n: int) -> bytes:
        data = os.urandom(n)
        rng_key.append(data)
        return data

    if envelope is None:
        envelope, result = seal_bytes(
            plaintext,
            recipients if recipients is not None else [pub, bidder_key.public_key()],
            context={
                "section_id": str(section.id),
                "opening_key_fingerprint": section.opening_key_fingerprint or "",
            },
            segment_size=segment_size,
            _rng=rng,
        )
        data_key = rng_key[0]
        commitment = result.key_commitment.hex()
        header_sha = result.header_sha256.hex()
    else:
        from crypto.envelope import parse_header  # noqa: F401

        data_key = b""
        import io

        from crypto.envelope import read_header

        header = read_header(io.BytesIO(envelope))
        commitment = header.key_commitment.hex()
        header_sha = header.sha256.hex()
    key = f"bids/{section.id}/{uuid.uuid4().hex}"
    get_storage().put_bytes(key, envelope)
    digest = hashlib.sha256(envelope).hexdigest()
    s = db.get_session()
    upload = BidUpload(
        section_id=section.id,
        bidder_id=org.id,
        created_by_id=rep.id,
        client_key=uuid.uuid4().hex,
        method=UploadMethod.STREAM,
        state=UploadState.COMMITTED,
        storage_key=key,
        expected_size=len(envelope),
        expected_sha256=digest,
        expires_at=now() + timedelta(days=1),
    )
    s.add(upload)
    s.flush()
    s.execute(
        Bid.__table__.update()
        .where(Bid.section_id == section.id, Bid.bidder_id == org.id, Bid.is_current.is_(True))
        .values(is_current=False, state=BidState.SUPERSEDED.value, superseded_at=now())
    )
    bid = Bid(
        section_id=section.id,
        bidder_id=org.id,
        submitted_by_id=rep.id,
        upload_id=upload.id,
        state=BidState.COMMITTED,
        is_current=True,
        client_key=upload.client_key,
        storage_key=key,
        ciphertext_size=len(envelope),
        ciphertext_sha256=digest,
        envelope_header_sha256=header_sha,
        data_key_commitment=commitment,
        opening_key_fingerprint=section.opening_key_fingerprint or "",
        segment_size=segment_size,
        manifest={"section_id": str(section.id)},
        manifest_signature="",
        signer_certificate_pem="",
        signer_intermediates_pem=[],
        signer_key_id="0" * 64,
        signer_certificate_serial="1",
        committed_at=now(),
        audit_event_id=uuid.uuid4(),
        log_index=0,
        receipt={},
    )
    s.add(bid)
    s.flush()
    from bidding.core.clock import clock

    if clock.frozen:
        clock.move(timedelta(seconds=1))  # bids are received one after the other
    return SealedBid(bid, data_key, bidder_key, envelope)


def count_current_bids(section: Section) -> int:
    from sqlalchemy import func, select

    return int(
        db.get_session().scalar(
            select(func.count(Bid.id)).where(Bid.section_id == section.id, Bid.is_current)
        )
        or 0
    )


def close(section: Section, clock: Any) -> None:
    assert section.bid_deadline is not None
    clock.freeze(section.bid_deadline + timedelta(seconds=1))
    project_services.close_section(None, section)


def share_for(w: World, section: Section, actor_id: uuid.UUID) -> Share:
    custodian = next(c for c in section.custodians if c.user_id == actor_id)
    ceremony = project_services.opening_ceremony(section)
    return decrypt_share(
        EncryptedShare.from_dict(custodian.encrypted_share or {}),
        w.custodian_keys[actor_id],
        ceremony,
    )


def share_json(w: World, section: Section, actor_id: uuid.UUID) -> bytes:
    import json

    return json.dumps(share_for(w, section, actor_id).to_dict()).encode()


def commit() -> None:
    """Commit the test's unit of work and run its after-commit callbacks (tasks, emits)."""
    db.get_session().commit()
    db.end_scope()


def opening_with_bids(
    w: World, clock: Any, n: int = 3, **section_overrides: Any
) -> tuple[Section, list[SealedBid], OpeningSession]:
    section = published_section(w, **section_overrides)
    bids = [store_bid(w, section, i) for i in range(n)]
    close(section, clock)
    session = services.start_opening(None, section)
    assert session is not None
    return section, bids, session


def price_of(result: Any) -> Decimal:
    return Decimal(result.price_sheet["total_price"])
