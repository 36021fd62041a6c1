"""Detached signatures over canonical JSON, bid manifests and signed documents."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, utils

from crypto import pki, signing
from crypto.canonical import CanonicalizationError, canonical_json
from crypto.signing import (
    BidManifest,
    SignedDocument,
    sign_document,
    sign_manifest,
    verify_document,
    verify_manifest,
)

DOC = {"type": "sunbid.test", "金额": "1234.50", "currency": "CNY", "items": [1, 2, {"b": None}]}


@pytest.fixture(params=["bidder", "bidder_ed25519", "bidder_rsa"])
def identity(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def test_sign_and_verify_each_key_type(identity: Any) -> None:
    sig = sign_document(identity.key, DOC)
    verify_document(identity.certificate, DOC, sig)
    verify_document(identity.key.public_key(), dict(reversed(list(DOC.items()))), sig)  # key order
    with pytest.raises(signing.SignatureInvalidError) as err:
        verify_document(identity.certificate, {**DOC, "金额": "1234.51"}, sig)
    assert err.value.code == "signature_invalid"
    with pytest.raises(signing.SignatureInvalidError):
        verify_document(identity.certificate, DOC, sig[:-1] + bytes([sig[-1] ^ 1]))
    with pytest.raises(signing.SignatureInvalidError):
        verify_document(identity.certificate, DOC, sig + b"\x00")
    with pytest.raises(signing.SignatureInvalidError):
        verify_document(identity.certificate, DOC, b"")


def test_wrong_key_refused(bidder: Any, bidder_ed25519: Any) -> None:
    sig = sign_document(bidder.key, DOC)
    with pytest.raises(signing.SignatureInvalidError):
        verify_document(pki.generate_key("p256").public_key(), DOC, sig)
    with pytest.raises(signing.SignatureInvalidError):
        verify_document(bidder_ed25519.certificate, DOC, sig)


def test_signature_encodings(bidder: Any, bidder_ed25519: Any, bidder_rsa: Any) -> None:
    message = signing.signing_input(DOC)
    assert message == b"sunbid-signed-document-v1\n" + canonical_json(DOC)
    # P-256: raw r || s, verifiable by re-encoding as DER.
    raw = sign_document(bidder.key, DOC)
    assert len(raw) == 64
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    bidder.key.public_key().verify(der, message, ec.ECDSA(hashes.SHA256()))
    # Ed25519 over the same bytes.
    bidder_ed25519.key.public_key().verify(sign_document(bidder_ed25519.key, DOC), message)
    # RSA-PSS with a 32-byte salt (a verifier fixing salt_length=32 accepts it).
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    bidder_rsa.key.public_key().verify(
        sign_document(bidder_rsa.key, DOC), message, pss, hashes.SHA256()
    )


def test_unsupported_keys_and_documents() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(signing.UnsupportedKeyError) as err:
        sign_document(p384, DOC)
    assert err.value.code == "key_unsupported"
    with pytest.raises(CanonicalizationError):
        sign_document(ed25519.Ed25519PrivateKey.generate(), {"price": 12.5})
    with pytest.raises(CanonicalizationError):
        sign_document(ed25519.Ed25519PrivateKey.generate(), ["not", "an", "object"])  # type: ignore[arg-type]


def _manifest(org_code: str, **changes: Any) -> BidManifest:
    values: dict[str, Any] = {
        "section_id": "SEC-2025-001-01",
        "bidder_id": org_code,
        "ciphertext_sha256": "ab" * 32,
        "ciphertext_size": 5 * 1024 * 1024 + 17,
        "data_key_commitment": "cd" * 32,
        "segment_size": 1 << 20,
        "opening_key_fingerprint": "ef" * 32,
        "sealed_at": "2025-03-01T07:59:00Z",
    }
    values.update(changes)
    return BidManifest(**values)


def test_manifest_document_roundtrip(org_codes: dict[str, str]) -> None:
    manifest = _manifest(org_codes["bidder"])
    doc = manifest.to_document()
    assert (
        doc["type"] == "sunbid.bid-manifest" and doc["version"] == 1 and doc["format_version"] == 1
    )
    assert BidManifest.from_document(json.loads(canonical_json(doc))) == manifest
    assert manifest.sealed_at_datetime.isoformat() == "2025-03-01T07:59:00+00:00"
    with pytest.raises(signing.ManifestError):
        BidManifest.from_document({**doc, "extra": 1})
    with pytest.raises(signing.ManifestError):
        BidManifest.from_document({k: v for k, v in doc.items() if k != "sealed_at"})
    with pytest.raises(signing.ManifestError):
        BidManifest.from_document({**doc, "type": "sunbid.receipt"})


@pytest.mark.parametrize(
    "changes",
    [
        {"bidder_id": "91350100M000100Y44"},
        {"ciphertext_sha256": "AB" * 32},
        {"data_key_commitment": "cd" * 31},
        {"ciphertext_size": -1},
        {"ciphertext_size": True},
        {"segment_size": 0},
        {"sealed_at": "2025-03-01T15:59:00+08:00"},
        {"section_id": ""},
        {"format_version": 0},
    ],
)
def test_manifest_validation(org_codes: dict[str, str], changes: dict[str, Any]) -> None:
    with pytest.raises(signing.ManifestError) as err:
        _manifest(org_codes["bidder"], **changes)
    assert err.value.code == "manifest_invalid"


def test_verify_manifest(bidder: Any, test_pki: Any, now: Any, org_codes: dict[str, str]) -> None:
    manifest = _manifest(org_codes["bidder"])
    sig = sign_manifest(bidder.key, manifest)
    ctx = {"intermediates": bidder.intermediates, "trust_roots": test_pki.trust_roots, "at": now}
    verify_manifest(manifest, sig, bidder.certificate, crls=[test_pki.crl()], **ctx)
    with pytest.raises(signing.SignatureInvalidError):
        verify_manifest(replace(manifest, ciphertext_size=1), sig, bidder.certificate, **ctx)
    # A bidder cannot sign for another company.
    other = _manifest(org_codes["other"])
    with pytest.raises(signing.ManifestSignerMismatchError) as err:
        verify_manifest(other, sign_manifest(bidder.key, other), bidder.certificate, **ctx)
    assert err.value.code == "manifest_signer_mismatch"
    # Chain refusals come through with their own codes.
    with pytest.raises(pki.CertificateRevokedError):
        verify_manifest(
            manifest,
            sig,
            bidder.certificate,
            crls=[test_pki.crl([bidder.certificate.serial_number])],
            **ctx,
        )
    with pytest.raises(pki.CertificateExpiredError):
        verify_manifest(
            manifest, sig, bidder.certificate, **{**ctx, "at": now + timedelta(days=400)}
        )


def test_signed_document(platform_identity: Any, test_pki: Any, now: Any) -> None:
    other_key = pki.generate_key("p256")
    other_root = pki.create_root_ca(
        "Other Root", other_key, not_before=now - timedelta(1), not_after=now + timedelta(1)
    )
    doc = {"type": "sunbid.award-notice", "section_id": "SEC-1", "winner": "某某建设有限公司"}
    signed = SignedDocument.create(
        platform_identity.key,
        doc,
        certificate=platform_identity.certificate,
        intermediates=platform_identity.intermediates,
    )
    data = signed.to_json()
    assert json.loads(data)["algorithm"] == "ed25519"
    loaded = SignedDocument.from_json(data)
    assert loaded == signed and loaded.to_json() == data
    cert = loaded.verify(trust_roots=test_pki.trust_roots, at=now, required_role="platform")
    assert cert == platform_identity.certificate
    loaded.verify_with_key(platform_identity.key.public_key())
    # Tampering with the document.
    tampered = json.loads(data)
    tampered["document"]["winner"] = "另一家公司"
    with pytest.raises(signing.SignatureInvalidError):
        SignedDocument.from_json(json.dumps(tampered)).verify(
            trust_roots=test_pki.trust_roots, at=now
        )
    # Wrong role, wrong key, untrusted roots.
    with pytest.raises(pki.CertificateRoleError):
        loaded.verify(trust_roots=test_pki.trust_roots, at=now, required_role="guarantor")
    with pytest.raises(signing.SignatureInvalidError):
        loaded.verify_with_key(pki.generate_key("ed25519").public_key())
    with pytest.raises(pki.CertificateUntrustedError):
        loaded.verify(trust_roots=[other_root], at=now)


def test_signed_document_key_id_mode(bidder_rsa: Any) -> None:
    signed = SignedDocument.create(bidder_rsa.key, {"type": "t", "n": 1})
    assert signed.certificate is None and signed.key_id == pki.key_id(bidder_rsa.certificate)
    loaded = SignedDocument.from_json(signed.to_json())
    loaded.verify_with_key(bidder_rsa.certificate)
    with pytest.raises(signing.SignedDocumentFormatError):
        loaded.verify(trust_roots=[], at=None)  # type: ignore[arg-type]


def test_signed_document_refusals(bidder: Any, bidder_ed25519: Any) -> None:
    with pytest.raises(signing.UnsupportedKeyError):
        SignedDocument.create(bidder.key, {"a": 1}, certificate=bidder_ed25519.certificate)
    good = SignedDocument.create(bidder.key, {"a": 1}).to_dict()
    bad_variants = [
        {**good, "version": 2},
        {**good, "algorithm": "rsa-pkcs1"},
        {**good, "key_id": "xyz"},
        {**good, "signature": "***"},
        {**good, "document": [1]},
        {**good, "surprise": True},
        {k: v for k, v in good.items() if k != "signature"},
    ]
    for variant in bad_variants:
        with pytest.raises(signing.SignedDocumentFormatError):
            SignedDocument.from_dict(variant)
    with pytest.raises(CanonicalizationError):
        SignedDocument.from_json(b'{"version":1,"version":1}')
    # Algorithm relabelled: refused even though the key id matches.
    relabelled = SignedDocument.from_dict({**good, "algorithm": "ed25519"})
    with pytest.raises(signing.SignatureInvalidError):
        relabelled.verify_with_key(bidder.certificate)
    assert base64.b64decode(good["signature"]) == SignedDocument.from_dict(good).signature
