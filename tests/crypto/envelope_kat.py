"""Known-answer vectors for the envelope format (tests/crypto/vectors/envelope_*.json).

Regenerate (only when the format changes on purpose)::

    .venv/bin/python -m tests.crypto.envelope_kat

Keys live in ``vectors/envelope_keys.json``: X25519 and P-256 private keys are fixed
bytes; the RSA-2048 key and the two self-signed certificates were generated once and are
stored as PEM. Every other random byte comes from :class:`DeterministicRng` with the
vector's seed, in the order ``seal`` draws them (see FORMAT.md §8).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from cryptography.x509.oid import NameOID

from crypto.envelope import seal_bytes
from crypto.recipients import PrivateKey, Recipient
from tests.crypto.envelope_helpers import DeterministicRng

VECTORS = Path(__file__).parent / "vectors"
KEYS_FILE = VECTORS / "envelope_keys.json"

CASES: list[dict[str, Any]] = [
    {
        "name": "envelope_x25519_small",
        "description": "one X25519 recipient (opening key), 100-byte plaintext, 64-byte segments",
        "seed": "sunbid-kat-1",
        "recipients": ["x25519"],
        "segment_size": 64,
        "plaintext_size": 100,
        "context": {"section_id": "SEC-2025-0001-01", "opening_key_fingerprint": "x25519"},
    },
    {
        "name": "envelope_all_recipients",
        "description": "X25519 + P-256 certificate + RSA-2048 certificate, exact multiple of S",
        "seed": "sunbid-kat-2",
        "recipients": ["x25519", "p256_cert", "rsa_cert"],
        "segment_size": 128,
        "plaintext_size": 512,
        "context": {"bidder_id": "91110108MA01ABCD1E", "section_id": "标段-一"},
    },
    {
        "name": "envelope_empty",
        "description": "empty plaintext, bare P-256 key, no context",
        "seed": "sunbid-kat-3",
        "recipients": ["p256"],
        "segment_size": 1048576,
        "plaintext_size": 0,
        "context": {},
    },
]


def plaintext_for(case: dict[str, Any]) -> bytes:
    return hashlib.shake_256(b"sunbid-kat-plaintext").digest(case["plaintext_size"])


def _self_signed(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_keys() -> dict[str, Any]:
    x = x25519.X25519PrivateKey.from_private_bytes(hashlib.sha256(b"kat x25519").digest())
    scalar = int.from_bytes(hashlib.sha256(b"kat p256").digest(), "big") % (2**255)
    p = ec.derive_private_key(scalar, ec.SECP256R1())
    r = rsa.generate_private_key(65537, 2048)
    return {
        "x25519": {"private_key_pem": _pem(x)},
        "p256": {"private_key_pem": _pem(p)},
        "p256_cert": {
            "private_key_pem": _pem(p),
            "certificate_pem": _self_signed(p, "KAT P-256 bidder").decode(),
        },
        "rsa_cert": {
            "private_key_pem": _pem(r),
            "certificate_pem": _self_signed(r, "KAT RSA bidder").decode(),
        },
    }


def load_keys() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(KEYS_FILE.read_text())
    return data


def private_key(entry: dict[str, Any]) -> PrivateKey:
    key = serialization.load_pem_private_key(entry["private_key_pem"].encode(), None)
    assert isinstance(key, x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return key


def recipient(entry: dict[str, Any]) -> Recipient:
    if "certificate_pem" in entry:
        return x509.load_pem_x509_certificate(entry["certificate_pem"].encode())
    return private_key(entry).public_key()


def build_vector(case: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    rng = DeterministicRng(case["seed"].encode())
    data_key = DeterministicRng(case["seed"].encode())(32)  # the first draw is the data key
    plaintext = plaintext_for(case)
    envelope, result = seal_bytes(
        plaintext,
        [recipient(keys[name]) for name in case["recipients"]],
        context=case["context"],
        segment_size=case["segment_size"],
        _rng=rng,
    )
    return {
        **case,
        "rng": "call j returns SHAKE-256(seed_utf8 ‖ uint64_be(j)) truncated to n bytes",
        "plaintext_sha256": hashlib.sha256(plaintext).hexdigest(),
        "data_key": data_key.hex(),
        "key_commitment": result.key_commitment.hex(),
        "nonce_prefix": result.header.nonce_prefix.hex(),
        "header_size": result.header.size,
        "header_sha256": result.header_sha256.hex(),
        "ciphertext_sha256": result.ciphertext_sha256.hex(),
        "ciphertext_size": result.ciphertext_size,
        "envelope": envelope.hex(),
    }


def main() -> None:
    VECTORS.mkdir(exist_ok=True)
    if not KEYS_FILE.exists():
        KEYS_FILE.write_text(json.dumps(make_keys(), indent=2, ensure_ascii=False) + "\n")
    keys = load_keys()
    for case in CASES:
        vector = build_vector(case, keys)
        path = VECTORS / f"{case['name']}.json"
        path.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path} ({vector['ciphertext_size']} bytes)")


if __name__ == "__main__":
    main()
