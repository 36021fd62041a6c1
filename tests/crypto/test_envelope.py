"""Sealed-bid envelopes: round trips, recipients, key commitment, results, API refusals."""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from crypto import envelope as env_mod
from crypto.envelope import (
    DEFAULT_SEGMENT_SIZE,
    CiphertextHashMismatchError,
    ContextMismatchError,
    EnvelopeArgumentError,
    HeaderAuthError,
    KeyCommitmentError,
    NoMatchingRecipientError,
    RecipientUnwrapError,
    SegmentAuthError,
    UnsupportedRecipientError,
    check_data_key,
    ciphertext_size_for,
    inspect_envelope,
    key_commitment,
    open_bytes,
    open_envelope,
    parse_header,
    read_header,
    seal,
    seal_bytes,
    unwrap_data_key,
)
from crypto.errors import CryptoError
from crypto.recipients import recipient_key, unwrap_stanza
from tests.crypto.envelope_helpers import DeterministicRng, TrickleWriter, records

CONTEXT = {"section_id": "SEC-2025-0001-01", "opening_key_fingerprint": "ab" * 32}


@pytest.fixture(scope="module")
def opening_key() -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.generate()


@pytest.fixture(scope="module")
def ec_bidder(test_pki: Any) -> Any:
    return test_pki.issue("bidder", "p256")


@pytest.fixture(scope="module")
def all_recipients(
    opening_key: x25519.X25519PrivateKey, ec_bidder: Any, bidder_rsa: Any
) -> list[tuple[Any, Any]]:
    """(recipient given to seal, private key that opens) pairs of every stanza type."""
    return [
        (opening_key.public_key(), opening_key),
        (ec_bidder.certificate, ec_bidder.key),
        (bidder_rsa.certificate, bidder_rsa.key),
    ]


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 200, 640, 1000])
def test_round_trip_every_recipient_and_data_key(
    size: int, all_recipients: list[tuple[Any, Any]]
) -> None:
    plaintext = os.urandom(size)
    envelope, result = seal_bytes(
        plaintext, [r for r, _ in all_recipients], context=CONTEXT, segment_size=64
    )
    assert len(envelope) == result.ciphertext_size
    assert hashlib.sha256(envelope).digest() == result.ciphertext_sha256
    assert result.plaintext_size == size
    assert result.segment_count == max(1, -(-size // 64))
    assert result.ciphertext_size == ciphertext_size_for(size, result.header.size, 64)
    for _, key in all_recipients:
        assert open_bytes(envelope, private_key=key) == plaintext
    dk = unwrap_data_key(result.header, all_recipients[0][1])
    assert key_commitment(dk) == result.key_commitment
    assert open_bytes(envelope, data_key=dk) == plaintext
    # Every recipient path yields the same key.
    for _, key in all_recipients[1:]:
        assert unwrap_data_key(result.header, key) == dk


def test_default_segment_size_multi_mib_threaded(opening_key: x25519.X25519PrivateKey) -> None:
    plaintext = os.urandom(3 * DEFAULT_SEGMENT_SIZE + 12345)
    src, out = io.BytesIO(plaintext), io.BytesIO()
    result = seal(src, out, [opening_key.public_key()], context=CONTEXT)
    assert result.segment_size == DEFAULT_SEGMENT_SIZE
    assert result.segment_count == 4
    back = io.BytesIO()
    opened = open_envelope(
        io.BytesIO(out.getvalue()),
        back,
        private_key=opening_key,
        expected_ciphertext_sha256=result.ciphertext_sha256,
        expected_key_commitment=result.key_commitment,
        expected_context=CONTEXT,
    )
    assert back.getvalue() == plaintext
    assert opened.ciphertext_sha256 == result.ciphertext_sha256
    assert opened.ciphertext_size == result.ciphertext_size
    assert opened.stanza_index == 0


@pytest.mark.parametrize("threads", [True, False])
@pytest.mark.parametrize("segment_size", [64, 65536])
def test_threaded_and_inline_paths_write_identical_bytes(
    threads: bool, segment_size: int, opening_key: x25519.X25519PrivateKey
) -> None:
    plaintext = DeterministicRng(b"pt")(5 * segment_size + 3)
    reference, _ = seal_bytes(
        plaintext,
        [opening_key.public_key()],
        segment_size=segment_size,
        _rng=DeterministicRng(b"s"),
    )
    out = io.BytesIO()
    res = seal(
        io.BytesIO(plaintext),
        out,
        [opening_key.public_key()],
        segment_size=segment_size,
        threads=threads,
        _rng=DeterministicRng(b"s"),
    )
    assert out.getvalue() == reference
    assert res.ciphertext_sha256 == hashlib.sha256(reference).digest()
    back = io.BytesIO()
    opened = open_envelope(io.BytesIO(reference), back, private_key=opening_key, threads=threads)
    assert back.getvalue() == plaintext
    assert opened.ciphertext_sha256 == res.ciphertext_sha256


def test_exact_multiple_has_full_final_segment(opening_key: x25519.X25519PrivateKey) -> None:
    envelope, result = seal_bytes(os.urandom(256), [opening_key.public_key()], segment_size=64)
    recs = records(envelope)
    assert [r.length for r in recs] == [64, 64, 64, 64]
    assert [r.final for r in recs] == [False, False, False, True]
    assert result.segment_count == 4


def test_empty_plaintext_is_one_empty_final_segment(opening_key: x25519.X25519PrivateKey) -> None:
    envelope, result = seal_bytes(b"", [opening_key.public_key()], segment_size=64)
    recs = records(envelope)
    assert len(recs) == 1 and recs[0].length == 0 and recs[0].final
    assert len(envelope) == result.header.size + 20
    assert open_bytes(envelope, private_key=opening_key) == b""


def test_short_reads_and_partial_writes(opening_key: x25519.X25519PrivateKey) -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data, self.pos = data, 0

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            n = min(len(b), 5, len(self.data) - self.pos)
            b[:n] = self.data[self.pos : self.pos + n]
            self.pos += n
            return n

    plaintext = os.urandom(500)
    sink = TrickleWriter(3)
    result = seal(Trickle(plaintext), sink, [opening_key.public_key()], segment_size=64)
    envelope = bytes(sink.buf)
    assert hashlib.sha256(envelope).digest() == result.ciphertext_sha256
    out = TrickleWriter(11)
    open_envelope(Trickle(envelope), out, private_key=opening_key)
    assert bytes(out.buf) == plaintext


def test_header_fields_and_manifest_fields(opening_key: x25519.X25519PrivateKey) -> None:
    envelope, result = seal_bytes(
        b"bid", [opening_key.public_key()], context=CONTEXT, segment_size=4096
    )
    header = parse_header(envelope[: result.header.size])
    assert header.context == CONTEXT
    assert header.segment_size == 4096
    assert header.raw == result.header_bytes
    fields = result.manifest_fields()
    assert fields == {
        "envelope_format": "sunbid-envelope/v1",
        "ciphertext_sha256": hashlib.sha256(envelope).hexdigest(),
        "ciphertext_size": len(envelope),
        "key_commitment": result.key_commitment.hex(),
        "segment_size": 4096,
        "header_sha256": hashlib.sha256(result.header_bytes).hexdigest(),
    }
    summary = header.fields()
    assert summary["context"] == CONTEXT
    assert summary["recipients"] == [
        {"type": 1, "key_id": recipient_key(opening_key.public_key()).key_id.hex()}
    ]
    stream = io.BytesIO(envelope)
    assert read_header(stream).raw == header.raw
    assert stream.tell() == header.size


def test_inspect_without_key(opening_key: x25519.X25519PrivateKey) -> None:
    envelope, result = seal_bytes(os.urandom(300), [opening_key.public_key()], segment_size=128)
    info = inspect_envelope(
        io.BytesIO(envelope),
        expected_ciphertext_sha256=result.ciphertext_sha256,
        expected_key_commitment=result.key_commitment,
    )
    assert (info.ciphertext_size, info.plaintext_size, info.segment_count) == (
        len(envelope),
        300,
        3,
    )
    with pytest.raises(CiphertextHashMismatchError):
        inspect_envelope(io.BytesIO(envelope), expected_ciphertext_sha256=b"\0" * 32)


def test_expectations_checked_before_any_key_use(opening_key: x25519.X25519PrivateKey) -> None:
    envelope, _result = seal_bytes(b"x" * 100, [opening_key.public_key()], context=CONTEXT)
    with pytest.raises(ContextMismatchError) as err:
        open_bytes(envelope, private_key=opening_key, expected_context={"section_id": "OTHER"})
    assert err.value.code == "envelope_context_mismatch"
    with pytest.raises(KeyCommitmentError):
        open_bytes(envelope, private_key=opening_key, expected_key_commitment=b"\1" * 32)
    with pytest.raises(CiphertextHashMismatchError):
        open_bytes(envelope, private_key=opening_key, expected_ciphertext_sha256=b"\1" * 32)


def test_wrong_keys_are_refused(opening_key: x25519.X25519PrivateKey) -> None:
    envelope, _result = seal_bytes(b"x" * 100, [opening_key.public_key()])
    stranger = x25519.X25519PrivateKey.generate()
    with pytest.raises(NoMatchingRecipientError) as err:
        open_bytes(envelope, private_key=stranger)
    assert err.value.code == "envelope_no_matching_recipient"
    with pytest.raises(KeyCommitmentError):
        open_bytes(envelope, data_key=os.urandom(32))
    with pytest.raises(EnvelopeArgumentError):
        open_bytes(envelope, data_key=b"short")
    with pytest.raises(EnvelopeArgumentError):
        open_bytes(envelope)
    with pytest.raises(EnvelopeArgumentError):
        open_bytes(envelope, private_key=opening_key, data_key=os.urandom(32))


def test_unsupported_recipients_and_bad_arguments(opening_key: x25519.X25519PrivateKey) -> None:
    pk = opening_key.public_key()
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    small_rsa = rsa.generate_private_key(65537, 1024).public_key()
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    for bad in (p384, small_rsa, ed):
        with pytest.raises(UnsupportedRecipientError):
            seal_bytes(b"x", [bad])  # type: ignore[list-item]
    bad_calls: list[dict[str, Any]] = [
        {"recipients": []},
        {"recipients": [pk, pk]},
        {"recipients": [pk], "segment_size": 63},
        {"recipients": [pk], "segment_size": 16 * 1024 * 1024 + 1},
        {"recipients": [pk], "context": {"Section": "x"}},
        {"recipients": [pk], "context": {"": "x"}},
        {"recipients": [pk], "context": {"a" * 65: "x"}},
        {"recipients": [pk], "context": {"note": "字" * 400}},
        {"recipients": [pk], "context": {f"k{i}": "v" for i in range(33)}},
    ]
    for kwargs in bad_calls:
        with pytest.raises(EnvelopeArgumentError):
            seal_bytes(b"x", **kwargs)


def test_context_is_utf8_and_sorted(opening_key: x25519.X25519PrivateKey) -> None:
    context = {"z.last": "", "a-first": "标段一", "m_mid": "x" * 1024}
    envelope, result = seal_bytes(b"x", [opening_key.public_key()], context=context)
    assert list(result.header.context) == ["a-first", "m_mid", "z.last"]
    assert dict(result.header.context) == context
    assert open_bytes(envelope, private_key=opening_key, expected_context=context) == b"x"


def test_all_errors_are_crypto_errors_with_codes() -> None:
    classes = [
        getattr(env_mod, name)
        for name in env_mod.__all__
        if name.endswith("Error") and isinstance(getattr(env_mod, name), type)
    ]
    assert len(classes) >= 14
    codes = {cls.code for cls in classes}
    assert len(codes) == len(classes)
    for cls in classes:
        assert issubclass(cls, CryptoError)
        assert cls.code.startswith("envelope_")


# ------------------------------------------------------------------ key commitment


def _malicious_envelope(
    plaintext: bytes,
    honest: x25519.X25519PrivateKey,
    victim_recipient: x509.Certificate | x25519.X25519PublicKey,
) -> tuple[bytes, bytes, bytes]:
    """An envelope whose second stanza wraps a *different* data key than the first.

    A dishonest sealer could try this so that the custodians and the bidder read
    different bids (AES-GCM alone is not key-committing). Returns (envelope, dk1, dk2).
    """
    dk1, dk2 = os.urandom(32), os.urandom(32)
    keys = [recipient_key(honest.public_key()), recipient_key(victim_recipient)]
    header = env_mod._build_header(
        dk1, os.urandom(7), 64, CONTEXT, keys, None, stanza_data_keys=[dk1, dk2]
    )
    out = io.BytesIO()
    env_mod._seal_payload(io.BytesIO(plaintext), out, header, dk1, None, None)
    return out.getvalue(), dk1, dk2


def test_stanzas_wrapping_different_keys_are_refused_by_key_commitment(
    opening_key: x25519.X25519PrivateKey, ec_bidder: Any
) -> None:
    plaintext = os.urandom(300)
    envelope, dk1, dk2 = _malicious_envelope(plaintext, opening_key, ec_bidder.certificate)
    header = parse_header(envelope[: int.from_bytes(envelope[12:16], "big")])
    # The second stanza really does carry another key...
    assert unwrap_stanza(header.stanzas[1], ec_bidder.key, header.binding(header.stanzas[1])) == dk2
    # ...and opening through it is refused, whichever API is used.
    with pytest.raises(KeyCommitmentError) as err:
        open_bytes(envelope, private_key=ec_bidder.key)
    assert err.value.details["stanza"] == 1
    assert err.value.code == "envelope_key_commitment"
    with pytest.raises(KeyCommitmentError):
        unwrap_data_key(header, ec_bidder.key)
    with pytest.raises(KeyCommitmentError):
        open_bytes(envelope, data_key=dk2)
    with pytest.raises(KeyCommitmentError):
        check_data_key(header, dk2)
    # The stanza whose key matches the commitment opens normally.
    assert open_bytes(envelope, private_key=opening_key) == plaintext
    assert open_bytes(envelope, data_key=dk1) == plaintext


def test_stanza_copied_into_another_envelope_does_not_unwrap(
    opening_key: x25519.X25519PrivateKey,
) -> None:
    """A stanza is bound (HPKE info) to its envelope's fixed fields and context."""
    _, a = seal_bytes(b"a", [opening_key.public_key()], context={"section": "A"})
    _, b = seal_bytes(b"b", [opening_key.public_key()], context={"section": "B"})
    with pytest.raises(RecipientUnwrapError):
        unwrap_stanza(a.header.stanzas[0], opening_key, b.header.binding(b.header.stanzas[0]))


def test_failed_segment_writes_only_verified_segments(
    opening_key: x25519.X25519PrivateKey,
) -> None:
    plaintext = os.urandom(64 * 4)
    envelope, _ = seal_bytes(plaintext, [opening_key.public_key()], segment_size=64)
    rec = records(envelope)[2]
    bad = bytearray(envelope)
    bad[rec.body_start + 10] ^= 0x40
    out = io.BytesIO()
    with pytest.raises(SegmentAuthError) as err:
        open_envelope(io.BytesIO(bytes(bad)), out, private_key=opening_key)
    assert err.value.details["segment"] == 2
    assert str(err.value) == "segment 2 failed authentication"
    assert out.getvalue() == plaintext[:128]


def test_header_mac_detects_other_stanza_tampering(
    opening_key: x25519.X25519PrivateKey, ec_bidder: Any
) -> None:
    envelope, result = seal_bytes(
        b"x" * 50, [opening_key.public_key(), ec_bidder.certificate], segment_size=64
    )
    # Flip a byte inside the *second* stanza's body: the opening key's stanza still
    # unwraps, but the header MAC no longer verifies.
    pos = result.header.size - 32 - 10
    bad = bytearray(envelope)
    bad[pos] ^= 1
    with pytest.raises(HeaderAuthError):
        open_bytes(bytes(bad), private_key=opening_key)
