"""``open_envelope(header=…)``: a caller that read the header first (to find the data key)
hands it over instead of having it read and parsed again; every check still holds."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from crypto.envelope import open_envelope, read_header, seal_bytes, unwrap_data_key
from crypto.envelope_errors import CiphertextHashMismatchError, EnvelopeError

CONTEXT = {"section_id": "s-1"}


def _sealed(plaintext: bytes) -> tuple[bytes, X25519PrivateKey]:
    key = X25519PrivateKey.generate()
    envelope, _ = seal_bytes(plaintext, [key.public_key()], context=CONTEXT, segment_size=1024)
    return envelope, key


def test_a_given_header_opens_like_a_read_one() -> None:
    plaintext = os.urandom(5000)
    envelope, key = _sealed(plaintext)
    expected = hashlib.sha256(envelope).digest()
    src = io.BytesIO(envelope)
    header = read_header(src)
    data_key = unwrap_data_key(header, key)
    out = io.BytesIO()
    given = open_envelope(
        src,
        out,
        data_key=data_key,
        header=header,
        expected_ciphertext_sha256=expected,
        expected_context=CONTEXT,
    )
    assert out.getvalue() == plaintext
    plain = open_envelope(io.BytesIO(envelope), io.BytesIO(), data_key=data_key)
    # the header bytes are still hashed: the same digest and size as a full read
    assert given.ciphertext_sha256 == plain.ciphertext_sha256 == expected
    assert given.ciphertext_size == len(envelope)
    assert given.plaintext_size == len(plaintext)


def test_a_header_of_another_envelope_does_not_open() -> None:
    envelope, key = _sealed(os.urandom(3000))
    other, other_key = _sealed(os.urandom(3000))
    foreign = read_header(io.BytesIO(other))
    src = io.BytesIO(envelope)
    read_header(src)  # positioned after this envelope's own header
    with pytest.raises(EnvelopeError):
        open_envelope(
            src, io.BytesIO(), data_key=unwrap_data_key(foreign, other_key), header=foreign
        )
    # and the signed hash check still sees the bytes actually hashed
    src = io.BytesIO(envelope)
    header = read_header(src)
    with pytest.raises(CiphertextHashMismatchError):
        open_envelope(
            src,
            io.BytesIO(),
            data_key=unwrap_data_key(header, key),
            header=header,
            expected_ciphertext_sha256=hashlib.sha256(other).digest(),
        )
