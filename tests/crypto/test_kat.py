"""Known-answer tests for the envelope format.

1. Re-create every vector in ``vectors/envelope_*.json`` from its seed and fixed keys and
   compare byte for byte; open it with every recipient key and with the data key.
2. Read every vector with a small *independent* reader written here straight from
   ``crypto/FORMAT.md`` (struct parsing, HKDF from ``hmac``, ``hpke.Suite`` / RSA OAEP from
   ``cryptography``, one-shot AES-GCM), so the document and the implementation agree.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.envelope import key_commitment, open_bytes, open_envelope
from tests.crypto.envelope_kat import CASES, build_vector, load_keys, plaintext_for, private_key

VECTOR_DIR = Path(__file__).parent / "vectors"
VECTOR_FILES = sorted(VECTOR_DIR.glob("envelope_*.json"))
VECTOR_FILES = [p for p in VECTOR_FILES if p.name != "envelope_keys.json"]


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return load_keys()


def test_every_case_has_a_vector_file() -> None:
    assert sorted(p.stem for p in VECTOR_FILES) == sorted(c["name"] for c in CASES)


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.stem)
def test_vector_recreated_byte_for_byte(path: Path, keys: dict[str, Any]) -> None:
    stored = _load(path)
    case = next(c for c in CASES if c["name"] == stored["name"])
    rebuilt = build_vector(case, keys)
    assert rebuilt["envelope"] == stored["envelope"]
    assert rebuilt == stored


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.stem)
def test_vector_opens_with_every_key(path: Path, keys: dict[str, Any]) -> None:
    vector = _load(path)
    envelope = bytes.fromhex(vector["envelope"])
    plaintext = plaintext_for(vector)
    assert hashlib.sha256(plaintext).hexdigest() == vector["plaintext_sha256"]
    assert hashlib.sha256(envelope).hexdigest() == vector["ciphertext_sha256"]
    assert len(envelope) == vector["ciphertext_size"]
    for name in vector["recipients"]:
        out = io.BytesIO()
        result = open_envelope(
            io.BytesIO(envelope),
            out,
            private_key=private_key(keys[name]),
            expected_ciphertext_sha256=bytes.fromhex(vector["ciphertext_sha256"]),
            expected_key_commitment=bytes.fromhex(vector["key_commitment"]),
            expected_context=vector["context"],
        )
        assert out.getvalue() == plaintext
        assert result.header.sha256.hex() == vector["header_sha256"]
    data_key = bytes.fromhex(vector["data_key"])
    assert open_bytes(envelope, data_key=data_key) == plaintext
    assert key_commitment(data_key).hex() == vector["key_commitment"]


# ------------------------------------------------------------ independent spec reader


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    prk = hmac.new(b"", ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def spec_open(envelope: bytes, key: Any) -> tuple[bytes, dict[str, Any]]:
    """Open an envelope following FORMAT.md only, with a private key."""
    (magic, version, suite, flags, h, s, prefix, r1, commitment, c, r, r2) = struct.unpack(
        ">8sBBHII7sB32sBBH", envelope[:64]
    )
    assert (magic, version, suite, flags, r1, r2) == (b"\x89SUNBID\n", 1, 1, 0, 0, 0)
    pos = 64
    context = {}
    for _ in range(c):
        klen = envelope[pos]
        k = envelope[pos + 1 : pos + 1 + klen].decode()
        pos += 1 + klen
        vlen = int.from_bytes(envelope[pos : pos + 2], "big")
        context[k] = envelope[pos + 2 : pos + 2 + vlen].decode()
        pos += 2 + vlen
    core_hash = hashlib.sha256(envelope[:pos]).digest()
    stanzas = []
    for _ in range(r):
        stype, kid = envelope[pos], envelope[pos + 1 : pos + 33]
        blen = int.from_bytes(envelope[pos + 33 : pos + 35], "big")
        stanzas.append((stype, kid, envelope[pos + 35 : pos + 35 + blen]))
        pos += 35 + blen
    assert pos == h - 32
    header = envelope[:h]

    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    my_kid = hashlib.sha256(spki).digest()
    stype, kid, body = next(st for st in stanzas if st[1] == my_kid)
    binding = b"sunbid-envelope/v1 stanza\x00" + core_hash + bytes([stype]) + kid
    if stype == 1:
        assert isinstance(key, x25519.X25519PrivateKey)
        suite_ = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
        dk = suite_.decrypt(body, key, info=binding)
    elif stype == 2:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        suite_ = hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
        dk = suite_.decrypt(body, key, info=binding)
    else:
        assert stype == 3 and isinstance(key, rsa.RSAPrivateKey)
        dk = key.decrypt(
            body, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), binding)
        )
    ck = _hkdf(dk, b"sunbid-envelope/v1 commitment key")
    assert hmac.new(ck, b"sunbid-envelope/v1 key commitment", hashlib.sha256).digest() == commitment
    mac_key = _hkdf(dk, b"sunbid-envelope/v1 header mac key")
    assert hmac.new(mac_key, header[:-32], hashlib.sha256).digest() == header[-32:]
    aead = AESGCM(_hkdf(dk, b"sunbid-envelope/v1 payload key"))
    header_hash = hashlib.sha256(header).digest()
    pos, index, out = h, 0, b""
    while True:
        word = envelope[pos : pos + 4]
        w = int.from_bytes(word, "big")
        final, n = w >> 31, w & 0x7FFFFFFF
        assert final or n == s
        nonce = prefix + index.to_bytes(4, "big") + bytes([final])
        out += aead.decrypt(nonce, envelope[pos + 4 : pos + 4 + n + 16], header_hash + word)
        pos += 4 + n + 16
        index += 1
        if final:
            break
    assert pos == len(envelope)
    return out, {"context": context, "segment_size": s, "data_key": dk, "prefix": prefix}


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.stem)
def test_independent_reader_agrees_with_format_md(path: Path, keys: dict[str, Any]) -> None:
    vector = _load(path)
    envelope = bytes.fromhex(vector["envelope"])
    for name in vector["recipients"]:
        plaintext, info = spec_open(envelope, private_key(keys[name]))
        assert plaintext == plaintext_for(vector)
        assert info["context"] == vector["context"]
        assert info["segment_size"] == vector["segment_size"]
        assert info["data_key"].hex() == vector["data_key"]
        assert info["prefix"].hex() == vector["nonce_prefix"]
