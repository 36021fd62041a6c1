"""The push-mode inspector (``EnvelopeInspector``) agrees with ``inspect_envelope``.

Whatever the chunking, the same bytes give the same result or the same error (class,
code, message, details) as the pull-mode pass: valid envelopes, every truncation point,
trailing data, expectation mismatches, and random mutations and garbage (Hypothesis).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.envelope import (
    EnvelopeArgumentError,
    EnvelopeError,
    EnvelopeInfo,
    EnvelopeInspector,
    TrailingDataError,
    TruncatedEnvelopeError,
    inspect_envelope,
    seal_bytes,
)
from tests.crypto.envelope_helpers import DeterministicRng, records

KEY = x25519.X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
SEG = 64
PLAINTEXT = DeterministicRng(b"stream")(SEG * 3 + 11)
CONTEXT = {"opening_key_fingerprint": "ab" * 8, "section_id": "S-1"}
ENVELOPE, RESULT = seal_bytes(PLAINTEXT, [KEY.public_key()], context=CONTEXT, segment_size=SEG)

Outcome = tuple[object, ...]


def _outcome(call: Callable[[], EnvelopeInfo]) -> Outcome:
    try:
        info = call()
    except EnvelopeError as exc:
        return ("error", type(exc), exc.code, exc.message, dict(exc.details))
    return (
        "ok",
        info.header.raw,
        info.ciphertext_sha256,
        info.ciphertext_size,
        info.plaintext_size,
        info.segment_count,
    )


def _pull(data: bytes, **expect: object) -> Outcome:
    return _outcome(lambda: inspect_envelope(io.BytesIO(data), **expect))  # type: ignore[arg-type]


def _push(chunks: Iterable[bytes], **expect: object) -> Outcome:
    def run() -> EnvelopeInfo:
        inspector = EnvelopeInspector(**expect)  # type: ignore[arg-type]
        for chunk in chunks:
            inspector.update(chunk)
        return inspector.finish()

    return _outcome(run)


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, k = [], 0, 0
    while pos < len(data):
        step = max(1, sizes[k % len(sizes)]) if sizes else len(data)
        out.append(data[pos : pos + step])
        pos += step
        k += 1
    return out


@pytest.mark.parametrize("chunk", [1, 3, 4, 63, 64, 65, 80, 1000, len(ENVELOPE)])
def test_valid_envelope_any_chunking(chunk: int) -> None:
    got = _push(_split(ENVELOPE, [chunk]), expected_context=CONTEXT)
    assert got == _pull(ENVELOPE, expected_context=CONTEXT)
    assert got[0] == "ok"
    assert got[2] == RESULT.ciphertext_sha256 == hashlib.sha256(ENVELOPE).digest()
    assert got[3:] == (len(ENVELOPE), len(PLAINTEXT), 4)


def test_every_truncation_point() -> None:
    for cut in range(len(ENVELOPE)):
        data = ENVELOPE[:cut]
        expected = _pull(data)
        assert expected[0] == "error"
        assert _push(_split(data, [7])) == expected, cut
        assert _push([data]) == expected, cut


def test_truncation_at_record_boundaries_names_the_segment() -> None:
    for record in records(ENVELOPE)[:-1]:
        inspector = EnvelopeInspector()
        inspector.update(ENVELOPE[: record.end])
        with pytest.raises(TruncatedEnvelopeError) as info:
            inspector.finish()
        assert info.value.details == {"segment": record.index + 1}


@pytest.mark.parametrize("tail", [b"\0", b"x" * 100, ENVELOPE[-20:]], ids=["1", "100", "record"])
def test_trailing_data_is_refused_as_it_arrives(tail: bytes) -> None:
    inspector = EnvelopeInspector()
    inspector.update(ENVELOPE)
    with pytest.raises(TrailingDataError):
        inspector.update(tail)
    assert _push([ENVELOPE, tail]) == _pull(ENVELOPE + tail)
    assert _push([ENVELOPE + tail]) == _pull(ENVELOPE + tail)


def test_expectations_are_checked_as_in_pull_mode() -> None:
    for expect in (
        {"expected_context": {"section_id": "S-2"}},
        {"expected_context": {"missing": "x"}},
        {"expected_key_commitment": b"\1" * 32},
        {"expected_key_commitment": RESULT.key_commitment},
        {"expected_ciphertext_sha256": b"\0" * 32},
        {"expected_ciphertext_sha256": RESULT.ciphertext_sha256},
    ):
        assert _push(_split(ENVELOPE, [5, 50]), **expect) == _pull(ENVELOPE, **expect), expect


def test_errors_are_sticky_and_finish_is_final() -> None:
    inspector = EnvelopeInspector()
    bad = b"PK\x03\x04" + bytes(100)
    with pytest.raises(EnvelopeError) as first:
        inspector.update(bad)
    with pytest.raises(EnvelopeError) as again:
        inspector.update(ENVELOPE)
    assert again.value is first.value
    with pytest.raises(EnvelopeError) as at_end:
        inspector.finish()
    assert at_end.value is first.value and inspector.failed is first.value

    ok = EnvelopeInspector()
    ok.update(ENVELOPE)
    assert ok.header is not None and dict(ok.header.context) == CONTEXT
    assert ok.size == len(ENVELOPE)
    assert ok.finish() is ok.finish()
    with pytest.raises(EnvelopeArgumentError):
        ok.update(b"")


def test_nothing_but_the_header_is_buffered() -> None:
    inspector = EnvelopeInspector()
    inspector.update(ENVELOPE[:-1])
    assert len(inspector._buf) < 70_016  # the header cap; payload bytes pass through
    inspector.update(memoryview(ENVELOPE)[-1:])
    assert inspector.finish().ciphertext_size == len(ENVELOPE)


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
chunkings = st.lists(st.integers(1, 200), min_size=1, max_size=8)
mutation = st.tuples(
    st.sampled_from(["flip", "truncate", "insert", "delete", "dup"]),
    st.integers(0, len(ENVELOPE) - 1),
    st.integers(0, 255),
)


def _mutate(data: bytearray, op: tuple[str, int, int]) -> bytearray:
    kind, pos, arg = op
    pos = min(pos, len(data))
    if kind == "flip" and pos < len(data):
        data[pos] ^= 1 << (arg % 8)
    elif kind == "truncate":
        del data[pos:]
    elif kind == "insert":
        data[pos:pos] = bytes([arg])
    elif kind == "delete":
        del data[pos : pos + 1 + arg % 40]
    elif kind == "dup":
        data[pos:pos] = data[pos : pos + 1 + arg]
    return data


@FUZZ
@given(ops=st.lists(mutation, min_size=1, max_size=3), sizes=chunkings)
def test_mutations_agree_with_pull_mode(ops: list[tuple[str, int, int]], sizes: list[int]) -> None:
    data = bytearray(ENVELOPE)
    for op in ops:
        data = _mutate(data, op)
    assert _push(_split(bytes(data), sizes)) == _pull(bytes(data))


@FUZZ
@given(head=st.sampled_from([b"", ENVELOPE[:64], ENVELOPE[:200]]), tail=st.binary(max_size=600))
def test_garbage_agrees_with_pull_mode(head: bytes, tail: bytes) -> None:
    data = head + tail
    assert _push(_split(data, [13])) == _pull(data)


def test_without_hashing_the_structure_is_checked_and_the_digest_left_empty() -> None:
    hashed = _push(_split(ENVELOPE, [100]))
    unhashed = _push(_split(ENVELOPE, [100]), hashing=False)
    assert unhashed[0] == "ok" and unhashed[2] == b""
    assert unhashed[:2] + unhashed[3:] == hashed[:2] + hashed[3:]
    for bad in (ENVELOPE[:-1], ENVELOPE + b"x"):  # truncated, trailing data
        assert _push([bad], hashing=False)[:3] == _push([bad])[:3]
    with pytest.raises(EnvelopeArgumentError):
        EnvelopeInspector(hashing=False, expected_ciphertext_sha256=RESULT.ciphertext_sha256)
