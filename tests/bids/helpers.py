"""Helpers for the bids tests: a published section with registered bidders, bidder
certificates from the demo CA, small sealed envelopes and signed manifests."""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from bidding.bids import services
from bidding.bids.package import package_bytes
from bidding.bids.trust import IssuedCertificate, demo_issue_bidder_certificate
from bidding.core import db
from bidding.core.clock import now
from bidding.core.roles import Actor
from bidding.projects import services as project_services
from crypto.canonical import format_utc
from crypto.envelope import seal_bytes
from crypto.pki import SigningPrivateKey, certificate_to_pem
from crypto.signing import BidManifest, sign_manifest
from tests.projects.factories import World, make_world, published_section

SEGMENT = 1024


@dataclass
class Sealed:
    envelope: bytes
    manifest: dict[str, Any]
    signature: bytes
    chain: list[str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.envelope).hexdigest()

    @property
    def size(self) -> int:
        return len(self.envelope)


@dataclass
class BidWorld:
    world: World
    section: Any
    certs: dict[uuid.UUID, IssuedCertificate] = field(default_factory=dict)

    def rep(self, i: int) -> Actor:
        return self.world.bidder_reps[i]

    def org(self, i: int) -> Any:
        return self.world.bidders[i]

    def cert(self, i: int) -> IssuedCertificate:
        org = self.org(i)
        if org.id not in self.certs:
            self.certs[org.id] = demo_issue_bidder_certificate(org)
        return self.certs[org.id]


def make_bid_world(register: int = 4) -> BidWorld:
    w = make_world(bidders=4)
    section = published_section(w)
    for rep in w.bidder_reps[:register]:
        project_services.register_bidder(rep, section)
    db.get_session().flush()
    return BidWorld(world=w, section=section)


def price_sheet(section: Any, org: Any, price: str = "4650000.00") -> dict[str, Any]:
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


def seal_bid(
    bw: BidWorld,
    i: int,
    *,
    price: str = "4650000.00",
    section_id: str | None = None,
    fingerprint: str | None = None,
    opening_key: X25519PublicKey | None = None,
    bidder_code: str | None = None,
    signer: tuple[SigningPrivateKey, x509.Certificate] | None = None,
    extra_chain: list[x509.Certificate] | None = None,
    tamper_manifest: dict[str, Any] | None = None,
    plaintext: bytes | None = None,
) -> Sealed:
    section = bw.section
    org = bw.org(i)
    cert = bw.cert(i)
    sid = section_id or str(section.id)
    fp = fingerprint or section.opening_key_fingerprint
    opening = opening_key or X25519PublicKey.from_public_bytes(
        bytes.fromhex(section.opening_public_key)
    )
    data = plaintext or package_bytes(
        price_sheet(section, org, price), {"商务标.txt": "投标函".encode() * 50}
    )
    envelope, result = seal_bytes(
        data,
        [opening, cert.certificate],
        context={"section_id": sid, "opening_key_fingerprint": fp},
        segment_size=SEGMENT,
    )
    manifest = BidManifest(
        section_id=sid,
        bidder_id=bidder_code or org.credit_code,
        ciphertext_sha256=result.ciphertext_sha256.hex(),
        ciphertext_size=result.ciphertext_size,
        data_key_commitment=result.key_commitment.hex(),
        segment_size=result.segment_size,
        opening_key_fingerprint=fp,
        sealed_at=format_utc(now()),
    )
    if tamper_manifest:
        manifest = BidManifest(**{**manifest.__dict__, **tamper_manifest})
    key, certificate = signer or (cert.private_key, cert.certificate)
    chain = [certificate_to_pem(certificate).decode()]
    chain += [certificate_to_pem(c).decode() for c in extra_chain or []]
    return Sealed(envelope, manifest.to_document(), sign_manifest(key, manifest), chain)


def upload(bw: BidWorld, i: int, sealed: Sealed, key: str | None = None) -> Any:
    return services.upload_bid_stream(
        bw.rep(i),
        bw.section,
        io.BytesIO(sealed.envelope),
        sealed.size,
        sha256=sealed.sha256,
        client_key=key or uuid.uuid4().hex,
    )


def commit(bw: BidWorld, i: int, sealed: Sealed, up: Any, key: str | None = None) -> Any:
    return services.commit_bid(
        bw.rep(i),
        bw.section,
        up,
        manifest=sealed.manifest,
        signature=sealed.signature,
        certificate_chain=sealed.chain,
        client_key=key or uuid.uuid4().hex,
    )


def submit(bw: BidWorld, i: int, **seal_kwargs: Any) -> Any:
    sealed = seal_bid(bw, i, **seal_kwargs)
    return commit(bw, i, sealed, upload(bw, i, sealed))
