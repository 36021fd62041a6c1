"""Platform-signed receipts (回执): issue, serialise, verify offline, refuse tampering."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from crypto import pki
from crypto.receipt import Receipt, ReceiptFormatError, issue_receipt, verify_receipt
from crypto.signing import SignatureInvalidError, UnsupportedKeyError

FIELDS: dict[str, Any] = {
    "bid_id": "01JN8Z5V3K9Q2W7X4Y6T0R1M3P",
    "section_id": "SEC-2025-001-01",
    "bidder_id": "91350100M000100Y43",
    "ciphertext_sha256": "ab" * 32,
    "server_time": "2025-03-01T07:59:30.250000Z",
    "log_index": 41,
}


@pytest.fixture(params=["ed25519", "p256"])
def platform_key(request: pytest.FixtureRequest) -> pki.SigningPrivateKey:
    return pki.generate_key(request.param)


def test_issue_verify_roundtrip(platform_key: pki.SigningPrivateKey) -> None:
    receipt = issue_receipt(platform_key, FIELDS)
    verify_receipt(receipt, platform_key.public_key())
    data = receipt.to_json()
    parsed = json.loads(data)
    assert parsed["type"] == "sunbid.receipt" and "tree_size" not in parsed
    loaded = Receipt.from_json(data)
    assert loaded == receipt
    verify_receipt(loaded, platform_key.public_key())


def test_with_tree_head_and_certificate(platform_identity: Any) -> None:
    receipt = issue_receipt(
        platform_identity.key, {**FIELDS, "tree_size": 42, "root_hash": "cd" * 32}
    )
    loaded = Receipt.from_json(receipt.to_json())
    assert (loaded.tree_size, loaded.root_hash) == (42, "cd" * 32)
    verify_receipt(loaded, platform_identity.certificate)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("bid_id", "other"),
        ("ciphertext_sha256", "ac" * 32),
        ("server_time", "2025-03-01T07:59:31Z"),
        ("log_index", 40),
    ],
)
def test_tampering_detected(platform_key: pki.SigningPrivateKey, name: str, value: Any) -> None:
    receipt = issue_receipt(platform_key, FIELDS)
    with pytest.raises(SignatureInvalidError) as err:
        verify_receipt(replace(receipt, **{name: value}), platform_key.public_key())
    assert err.value.code == "signature_invalid"
    # The same through the JSON file.
    data = json.loads(receipt.to_json())
    data[name] = value
    with pytest.raises(SignatureInvalidError):
        verify_receipt(Receipt.from_dict(data), platform_key.public_key())


def test_other_key_refused(platform_key: pki.SigningPrivateKey) -> None:
    receipt = issue_receipt(platform_key, FIELDS)
    with pytest.raises(SignatureInvalidError):
        verify_receipt(receipt, pki.generate_key("ed25519").public_key())
    # Even if someone rewrites key_id to match the other key, the signature fails.
    other = pki.generate_key("p256")
    forged = replace(receipt, key_id=pki.key_id(other.public_key()), algorithm="ecdsa-p256-sha256")
    with pytest.raises(SignatureInvalidError):
        verify_receipt(forged, other.public_key())


def test_rsa_refused(bidder_rsa: Any) -> None:
    with pytest.raises(UnsupportedKeyError):
        issue_receipt(bidder_rsa.key, FIELDS)
    receipt = issue_receipt(pki.generate_key("ed25519"), FIELDS)
    with pytest.raises(UnsupportedKeyError):
        verify_receipt(receipt, bidder_rsa.certificate)


@pytest.mark.parametrize(
    "changes",
    [
        {"log_index": -1},
        {"log_index": True},
        {"ciphertext_sha256": "AB" * 32},
        {"server_time": "2025-03-01 07:59:30"},
        {"bid_id": ""},
        {"tree_size": 42},  # without root_hash
        {"tree_size": 41, "root_hash": "cd" * 32},  # must exceed log_index
        {"tree_size": 42, "root_hash": "cd"},
        {"extra": 1},
    ],
)
def test_field_validation(changes: dict[str, Any]) -> None:
    with pytest.raises(ReceiptFormatError) as err:
        issue_receipt(pki.generate_key("ed25519"), {**FIELDS, **changes})
    assert err.value.code == "receipt_invalid"


def test_file_validation() -> None:
    good = issue_receipt(pki.generate_key("ed25519"), FIELDS).to_dict()
    for bad in [
        {**good, "type": "sunbid.bid-manifest"},
        {**good, "algorithm": "rsa-pss-sha256"},
        {**good, "key_id": "00"},
        {**good, "signature": "!!"},
        {k: v for k, v in good.items() if k != "bid_id"},
        {**good, "note": "hi"},
    ]:
        with pytest.raises(ReceiptFormatError):
            Receipt.from_dict(bad)
    with pytest.raises(ReceiptFormatError):
        Receipt.from_json(b"[]")
    missing = dict(FIELDS)
    del missing["log_index"]
    with pytest.raises(ReceiptFormatError):
        issue_receipt(pki.generate_key("ed25519"), missing)
