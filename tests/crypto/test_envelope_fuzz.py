"""Property-based fuzzing of envelopes (Hypothesis), bounded to a few seconds in all.

* Random plaintexts, segment sizes and contexts round-trip.
* Random mutations of a valid envelope (bit flips, byte overwrites, truncation,
  insertion, deletion, duplicated ranges) are either a no-op or refused with an
  ``EnvelopeError``, never another exception, and the output is always whole, verified
  segments of the original plaintext.
* Arbitrary bytes, with or without a valid-looking fixed header, only ever raise
  ``EnvelopeError`` from ``read_header`` / ``inspect_envelope`` / ``open_envelope``.
"""

from __future__ import annotations

import contextlib
import io
import struct

from cryptography.hazmat.primitives.asymmetric import x25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.envelope import (
    MAGIC,
    EnvelopeError,
    inspect_envelope,
    open_envelope,
    read_header,
    seal_bytes,
)
from tests.crypto.envelope_helpers import DeterministicRng

KEY = x25519.X25519PrivateKey.from_private_bytes(bytes(range(32)))
SEG = 64
PLAINTEXT = DeterministicRng(b"fuzz")(SEG * 4 + 9)
ENVELOPE, RESULT = seal_bytes(
    PLAINTEXT, [KEY.public_key()], context={"section_id": "F"}, segment_size=SEG
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)

context_keys = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True)


@FUZZ
@given(
    plaintext=st.binary(max_size=1500),
    segment_size=st.integers(min_value=64, max_value=400),
    context=st.dictionaries(context_keys, st.text(max_size=40), max_size=4),
)
def test_round_trip(plaintext: bytes, segment_size: int, context: dict[str, str]) -> None:
    envelope, result = seal_bytes(
        plaintext, [KEY.public_key()], context=context, segment_size=segment_size
    )
    out = io.BytesIO()
    opened = open_envelope(
        io.BytesIO(envelope),
        out,
        private_key=KEY,
        expected_context=context,
        expected_ciphertext_sha256=result.ciphertext_sha256,
    )
    assert out.getvalue() == plaintext
    assert opened.plaintext_size == len(plaintext)
    assert dict(opened.header.context) == context


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(ENVELOPE) - 1), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, len(ENVELOPE) - 1), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, len(ENVELOPE) - 1), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, len(ENVELOPE)), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, len(ENVELOPE) - 1), st.integers(1, 100)),
    st.tuples(st.just("dup"), st.integers(0, len(ENVELOPE) - 1), st.integers(1, 200)),
)


def _mutate(data: bytearray, op: tuple[str, int, int]) -> bytearray:
    kind, pos, arg = op
    pos = min(pos, len(data))
    if kind == "flip" and pos < len(data):
        data[pos] ^= 1 << arg
    elif kind == "set" and pos < len(data):
        data[pos] = arg
    elif kind == "truncate":
        del data[pos:]
    elif kind == "insert":
        data[pos:pos] = bytes([arg])
    elif kind == "delete":
        del data[pos : pos + arg]
    elif kind == "dup":
        data[pos:pos] = data[pos : pos + arg]
    return data


@settings(FUZZ, max_examples=1500)
@given(ops=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_envelopes_never_release_unverified_plaintext(
    ops: list[tuple[str, int, int]],
) -> None:
    data = bytearray(ENVELOPE)
    for op in ops:
        data = _mutate(data, op)
    mutated = bytes(data)
    out = io.BytesIO()
    try:
        open_envelope(io.BytesIO(mutated), out, private_key=KEY)
    except EnvelopeError:
        output = out.getvalue()
        assert len(output) % SEG == 0
        assert PLAINTEXT.startswith(output)
        # Upload-time check never crashes either.
        with contextlib.suppress(EnvelopeError):
            inspect_envelope(io.BytesIO(mutated))
    else:
        assert mutated == ENVELOPE
        assert out.getvalue() == PLAINTEXT


fixed_headers = st.builds(
    lambda hs, ss, c, r, prefix: struct.pack(
        ">8sBBHII7sB32sBBH", MAGIC, 1, 1, 0, hs, ss, prefix, 0, b"\0" * 32, c, r, 0
    ),
    st.integers(0, 2**32 - 1) | st.integers(96, 4000),
    st.integers(0, 2**32 - 1) | st.integers(64, 1000),
    st.integers(0, 255) | st.integers(0, 3),
    st.integers(0, 255) | st.integers(1, 3),
    st.binary(min_size=7, max_size=7),
)


@settings(FUZZ, max_examples=1000)
@given(prefix=st.one_of(st.just(b""), fixed_headers), tail=st.binary(max_size=3000))
def test_arbitrary_bytes_only_raise_envelope_errors(prefix: bytes, tail: bytes) -> None:
    data = prefix + tail
    for call in (
        lambda: read_header(io.BytesIO(data)),
        lambda: inspect_envelope(io.BytesIO(data)),
        lambda: open_envelope(io.BytesIO(data), io.BytesIO(), private_key=KEY),
    ):
        with contextlib.suppress(EnvelopeError):
            call()
