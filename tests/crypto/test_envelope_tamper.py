"""Tampered, truncated, spliced and hostile envelopes: each refused with its own error, and
no plaintext of an unverified segment ever reaches the output."""

from __future__ import annotations

import io
import os
import struct
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from crypto.envelope import (
    FIXED_HEADER_SIZE,
    MAX_HEADER_SIZE,
    EnvelopeError,
    EnvelopeFormatError,
    EnvelopeLimitError,
    HeaderAuthError,
    KeyCommitmentError,
    NoMatchingRecipientError,
    RecipientUnwrapError,
    SegmentAuthError,
    TrailingDataError,
    TruncatedEnvelopeError,
    UnsupportedVersionError,
    inspect_envelope,
    open_envelope,
    read_header,
    seal_bytes,
    unwrap_data_key,
)
from tests.crypto.envelope_helpers import CountingReader, DeterministicRng, flip, records

SEG = 64
PLAINTEXT = DeterministicRng(b"tamper plaintext")(SEG * 3 + 17)  # 4 segments, last short


@pytest.fixture(scope="module")
def keys(test_pki: Any) -> dict[str, Any]:
    bidder = test_pki.issue("bidder", "p256")
    return {"opening": x25519.X25519PrivateKey.generate(), "bidder": bidder}


@pytest.fixture(scope="module")
def sealed(keys: dict[str, Any]) -> tuple[bytes, Any]:
    return seal_bytes(
        PLAINTEXT,
        [keys["opening"].public_key(), keys["bidder"].certificate],
        context={"section_id": "S-1", "opening_key_fingerprint": "0" * 64},
        segment_size=SEG,
    )


def _open(envelope: bytes, **kwargs: Any) -> tuple[bytes, BaseException | None]:
    out = io.BytesIO()
    try:
        open_envelope(io.BytesIO(envelope), out, **kwargs)
    except EnvelopeError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def _assert_only_verified_prefix(output: bytes) -> None:
    """Output must be whole, verified segments of the original plaintext."""
    assert len(output) % SEG == 0
    assert PLAINTEXT.startswith(output)


def _region(pos: int, envelope: bytes, header: Any) -> str:
    stanza0 = FIXED_HEADER_SIZE + sum(
        3 + len(k) + len(v.encode()) for k, v in header.context.items()
    )
    stanza1 = stanza0 + 35 + len(header.stanzas[0].body)
    mac = header.size - 32
    if pos < 8:
        return "magic"
    if pos < 28:
        return "fixed"
    if pos < 60:
        return "commitment"
    if pos < stanza0:
        return "fixed" if pos < FIXED_HEADER_SIZE else "context"
    if pos < stanza0 + 1:
        return "stanza0.type"
    if pos < stanza0 + 33:
        return "stanza0.key_id"
    if pos < stanza0 + 35:
        return "stanza0.length"
    if pos < stanza1:
        return "stanza0.body"
    if pos < stanza1 + 35:
        return "stanza1.head"
    if pos < mac:
        return "stanza1.body"
    if pos < header.size:
        return "mac"
    return "payload"


def test_every_single_bit_flip_is_refused(keys: dict[str, Any], sealed: tuple[bytes, Any]) -> None:
    """Flip one bit at every byte (two bit positions): opening with the opening key, the
    bidder's certificate key and the data key all refuse, each with a specific error, and
    never write plaintext of an unverified segment."""
    envelope, result = sealed
    header = result.header
    dk = unwrap_data_key(header, keys["opening"])
    seen: dict[str, set[str]] = {}
    for pos in range(len(envelope)):
        for bit in (0, 7):
            bad = flip(envelope, pos, bit)
            region = _region(pos, envelope, header)
            for how, kwargs in (
                ("opening", {"private_key": keys["opening"]}),
                ("bidder", {"private_key": keys["bidder"].key}),
                ("data_key", {"data_key": dk}),
            ):
                output, exc = _open(bad, **kwargs)
                assert exc is not None, (pos, bit, region, how)
                _assert_only_verified_prefix(output)
                seen.setdefault(f"{region}/{how}", set()).add(type(exc).__name__)
                if region == "payload":
                    rec = next(r for r in records(envelope) if r.start <= pos < r.end)
                    assert exc.details.get("segment") in (rec.index, rec.index + 1), exc
    # Specific errors per region (a sample of the mapping documented in FORMAT.md §5).
    assert seen["magic/opening"] == {"EnvelopeFormatError"}
    # The commitment is part of every stanza's binding: the HPKE open fails first.
    assert seen["commitment/opening"] == {"RecipientUnwrapError"}
    assert seen["commitment/data_key"] == {"KeyCommitmentError"}
    assert seen["stanza0.body/opening"] == {"RecipientUnwrapError"}
    assert seen["stanza0.body/bidder"] == {"HeaderAuthError"}
    assert seen["stanza0.key_id/opening"] == {"NoMatchingRecipientError"}
    assert seen["stanza1.body/opening"] == {"HeaderAuthError"}
    assert seen["stanza1.body/bidder"] == {"RecipientUnwrapError"}
    assert seen["stanza1.head/opening"] <= {"HeaderAuthError", "EnvelopeFormatError"}
    assert seen["mac/opening"] == {"HeaderAuthError"}
    assert seen["mac/data_key"] == {"HeaderAuthError"}
    assert seen["context/opening"] <= {
        "RecipientUnwrapError",
        "EnvelopeFormatError",
        "EnvelopeLimitError",
    }
    assert seen["context/data_key"] <= {
        "HeaderAuthError",
        "EnvelopeFormatError",
        "EnvelopeLimitError",
    }
    assert "SegmentAuthError" in seen["payload/opening"]
    assert seen["payload/opening"] <= {
        "SegmentAuthError",
        "EnvelopeFormatError",
        "TruncatedEnvelopeError",
    }


def test_flipped_byte_in_middle_segment_names_it(
    keys: dict[str, Any], sealed: tuple[bytes, Any]
) -> None:
    envelope, _ = sealed
    rec = records(envelope)[1]
    for pos in (rec.body_start, rec.body_start + 30, rec.end - 1):  # ciphertext and tag
        output, exc = _open(flip(envelope, pos), private_key=keys["opening"])
        assert isinstance(exc, SegmentAuthError)
        assert exc.details == {"segment": 1}
        assert output == PLAINTEXT[:SEG]


def test_every_truncation_is_refused(keys: dict[str, Any], sealed: tuple[bytes, Any]) -> None:
    envelope, result = sealed
    boundaries = {r.end: r.index for r in records(envelope)}
    for cut in range(len(envelope)):
        output, exc = _open(envelope[:cut], private_key=keys["opening"])
        assert exc is not None, cut
        _assert_only_verified_prefix(output)
        if cut >= result.header.size:
            assert isinstance(exc, TruncatedEnvelopeError), (cut, exc)
        if cut in boundaries:  # exactly at a segment boundary
            assert exc.details["segment"] == boundaries[cut] + 1
            assert "final segment is missing" in str(exc)
            # Segment k is not released either: its record was incomplete (no next word).
            assert output == PLAINTEXT[: boundaries[cut] * SEG]
        with pytest.raises(EnvelopeFormatError):
            inspect_envelope(io.BytesIO(envelope[:cut]))


def test_header_only_is_truncated(keys: dict[str, Any], sealed: tuple[bytes, Any]) -> None:
    envelope, result = sealed
    output, exc = _open(envelope[: result.header.size], private_key=keys["opening"])
    assert isinstance(exc, TruncatedEnvelopeError)
    assert exc.code == "envelope_truncated"
    assert str(exc) == "envelope truncated: no segment after the header"
    assert output == b""


def test_reordered_segments(keys: dict[str, Any], sealed: tuple[bytes, Any]) -> None:
    envelope, _result = sealed
    r = records(envelope)
    swapped = (
        envelope[: r[0].start]
        + envelope[r[1].start : r[1].end]
        + envelope[r[0].start : r[0].end]
        + envelope[r[2].start :]
    )
    output, exc = _open(swapped, private_key=keys["opening"])
    assert isinstance(exc, SegmentAuthError) and exc.details["segment"] == 0
    assert output == b""


def test_duplicated_segment(keys: dict[str, Any], sealed: tuple[bytes, Any]) -> None:
    envelope, _ = sealed
    r = records(envelope)
    dup = envelope[: r[2].start] + envelope[r[1].start : r[1].end] + envelope[r[2].start :]
    output, exc = _open(dup, private_key=keys["opening"])
    assert isinstance(exc, SegmentAuthError) and exc.details["segment"] == 2
    assert output == PLAINTEXT[: 2 * SEG]


def test_dropped_middle_segment(keys: dict[str, Any], sealed: tuple[bytes, Any]) -> None:
    envelope, _ = sealed
    r = records(envelope)
    dropped = envelope[: r[1].start] + envelope[r[2].start :]
    output, exc = _open(dropped, private_key=keys["opening"])
    assert isinstance(exc, SegmentAuthError) and exc.details["segment"] == 1
    assert output == PLAINTEXT[:SEG]


def test_segment_spliced_from_another_envelope(
    keys: dict[str, Any], sealed: tuple[bytes, Any]
) -> None:
    envelope, _ = sealed
    other, _ = seal_bytes(
        os.urandom(len(PLAINTEXT)), [keys["opening"].public_key()], segment_size=SEG
    )
    r, ro = records(envelope), records(other)
    spliced = envelope[: r[2].start] + other[ro[2].start : ro[2].end] + envelope[r[3].start :]
    output, exc = _open(spliced, private_key=keys["opening"])
    assert isinstance(exc, SegmentAuthError) and exc.details["segment"] == 2
    assert output == PLAINTEXT[: 2 * SEG]


def test_splice_between_envelopes_sharing_data_key_and_nonce_prefix(
    keys: dict[str, Any],
) -> None:
    """Even with the same data key and nonce prefix (a broken RNG), segments are bound to
    their header by the header hash in the associated data."""
    pk = keys["opening"].public_key()
    a, _ = seal_bytes(
        PLAINTEXT,
        [pk],
        context={"section_id": "A"},
        segment_size=SEG,
        _rng=DeterministicRng(b"same"),
    )
    b, _ = seal_bytes(
        PLAINTEXT,
        [pk],
        context={"section_id": "B"},
        segment_size=SEG,
        _rng=DeterministicRng(b"same"),
    )
    ra, rb = records(a), records(b)
    assert a[ra[0].start : ra[0].end] != b[rb[0].start : rb[0].end]
    spliced = a[: ra[0].start] + b[rb[0].start :]
    output, exc = _open(spliced, private_key=keys["opening"])
    assert isinstance(exc, SegmentAuthError) and exc.details["segment"] == 0
    assert output == b""


def test_earlier_segment_relabelled_final(keys: dict[str, Any], sealed: tuple[bytes, Any]) -> None:
    """Truncate after segment 1 and set its final flag: the nonce's last flag catches it."""
    envelope, _ = sealed
    r = records(envelope)
    word = struct.pack(">I", 0x8000_0000 | SEG)
    forged = envelope[: r[1].start] + word + envelope[r[1].body_start : r[1].end]
    output, exc = _open(forged, private_key=keys["opening"])
    assert isinstance(exc, SegmentAuthError) and exc.details["segment"] == 1
    assert output == PLAINTEXT[:SEG]


@pytest.mark.parametrize(
    "tail", [b"\x00", b"garbage", bytes(range(7, 107))], ids=["nul", "text", "binary"]
)
def test_trailing_garbage_after_short_final(
    tail: bytes, keys: dict[str, Any], sealed: tuple[bytes, Any]
) -> None:
    envelope, _ = sealed
    output, exc = _open(envelope + tail, private_key=keys["opening"])
    assert isinstance(exc, TrailingDataError) and exc.details["segment"] == 3
    assert output == PLAINTEXT[: 3 * SEG]  # the final segment is not released
    with pytest.raises(TrailingDataError):
        inspect_envelope(io.BytesIO(envelope + tail))


def test_trailing_garbage_after_full_final_and_after_empty(keys: dict[str, Any]) -> None:
    pk = keys["opening"].public_key()
    for plaintext in (b"", PLAINTEXT[: 2 * SEG]):
        envelope, _ = seal_bytes(plaintext, [pk], segment_size=SEG)
        extra = envelope[records(envelope)[-1].start :]  # a whole valid-looking record
        output, exc = _open(envelope + extra, private_key=keys["opening"])
        assert isinstance(exc, TrailingDataError)
        assert len(output) == max(0, len(plaintext) - SEG)


# ------------------------------------------------------------------ hostile headers


def _fixed(**fields: int | bytes) -> bytes:
    values: dict[str, int | bytes] = {
        "magic": b"\x89SUNBID\n",
        "version": 1,
        "suite": 1,
        "flags": 0,
        "header_size": 211,
        "segment_size": 1024,
        "prefix": b"\0" * 7,
        "reserved1": 0,
        "commitment": b"\0" * 32,
        "n_context": 0,
        "n_stanzas": 1,
        "reserved2": 0,
    }
    values.update(fields)
    return struct.pack(">8sBBHII7sB32sBBH", *values.values())


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"magic": b"PK\x03\x04\0\0\0\0"}, EnvelopeFormatError),
        ({"version": 2}, UnsupportedVersionError),
        ({"version": 0}, UnsupportedVersionError),
        ({"suite": 9}, UnsupportedVersionError),
        ({"flags": 1}, EnvelopeFormatError),
        ({"reserved1": 1}, EnvelopeFormatError),
        ({"reserved2": 0x100}, EnvelopeFormatError),
        ({"header_size": 0xFFFF_FFFF}, EnvelopeLimitError),
        ({"header_size": 0}, EnvelopeLimitError),
        ({"segment_size": 0}, EnvelopeLimitError),
        ({"segment_size": 63}, EnvelopeLimitError),
        ({"segment_size": 0xFFFF_FFFF}, EnvelopeLimitError),
        ({"n_stanzas": 0}, EnvelopeLimitError),
        ({"n_stanzas": 255}, EnvelopeLimitError),
        ({"n_context": 255}, EnvelopeLimitError),
        ({"n_stanzas": 64, "header_size": MAX_HEADER_SIZE + 1}, EnvelopeLimitError),
    ],
)
def test_hostile_fixed_header_refused_before_reading_more(
    fields: dict[str, Any], error: type[Exception], keys: dict[str, Any]
) -> None:
    data = _fixed(**fields) + b"\0" * 10_000_000
    reader = CountingReader(data)
    started = time.perf_counter()
    with pytest.raises(error):
        read_header(reader)
    assert time.perf_counter() - started < 0.05
    assert reader.requested == FIXED_HEADER_SIZE  # nothing read or allocated past 64 bytes
    with pytest.raises(error):
        open_envelope(io.BytesIO(data), io.BytesIO(), private_key=keys["opening"])


def test_wrong_magic_on_short_input() -> None:
    for data in (b"", b"\x89SUN", b"hello", b"%PDF-1.7\n"):
        with pytest.raises(EnvelopeFormatError):
            read_header(io.BytesIO(data))


def test_inner_lengths_are_checked(sealed: tuple[bytes, Any], keys: dict[str, Any]) -> None:
    envelope, result = sealed
    h = result.header.size
    cases = []
    # context key length 0 / beyond the header end
    ctx = FIXED_HEADER_SIZE
    cases.append(envelope[:ctx] + b"\x00" + envelope[ctx + 1 :])
    cases.append(envelope[:ctx] + b"\xff" + envelope[ctx + 1 :])
    # stanza body length wrong for its type
    stanza0 = h - 32 - 148 - 115
    cases.append(envelope[: stanza0 + 33] + b"\xff\xff" + envelope[stanza0 + 35 :])
    # unknown stanza type
    cases.append(envelope[:stanza0] + b"\x09" + envelope[stanza0 + 1 :])
    # header size larger than its contents (still within bounds)
    bigger = envelope[:12] + (h + 5).to_bytes(4, "big") + envelope[16:]
    cases.append(bigger)
    for bad in cases:
        with pytest.raises(EnvelopeFormatError):
            read_header(io.BytesIO(bad))
        output, exc = _open(bad, private_key=keys["opening"])
        assert isinstance(exc, EnvelopeFormatError) and output == b""


def test_hostile_segment_word_refused_before_reading_body(
    sealed: tuple[bytes, Any], keys: dict[str, Any]
) -> None:
    envelope, result = sealed
    h = result.header.size
    for word in (0x7FFF_FFFF, 0xFFFF_FFFF, SEG + 1, SEG - 1, 0):
        bad = envelope[:h] + struct.pack(">I", word) + b"\0" * 1_000_000
        reader = CountingReader(bad)
        with pytest.raises(EnvelopeFormatError) as err:
            open_envelope(reader, io.BytesIO(), private_key=keys["opening"])
        assert err.value.details["segment"] == 0
        assert reader.largest_request <= max(h, SEG + 20)


def test_errors_carry_codes() -> None:
    codes = {
        HeaderAuthError: "envelope_header_auth",
        KeyCommitmentError: "envelope_key_commitment",
        NoMatchingRecipientError: "envelope_no_matching_recipient",
        RecipientUnwrapError: "envelope_unwrap_failed",
        SegmentAuthError: "envelope_segment_auth",
        TrailingDataError: "envelope_trailing_data",
        TruncatedEnvelopeError: "envelope_truncated",
    }
    for cls, code in codes.items():
        assert cls.code == code
