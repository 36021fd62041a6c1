"""Helpers for the envelope tests: a deterministic RNG, record offsets, hostile streams."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from crypto.envelope import FIXED_HEADER_SIZE, TAG_SIZE, WORD_SIZE


class DeterministicRng:
    """``rng(n)`` for call number ``j`` (from 0) = SHAKE-256(seed ‖ uint64_be(j)), n bytes.

    The known-answer vectors are defined with this generator (see vectors/*.json).
    """

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.calls = 0

    def __call__(self, n: int) -> bytes:
        out = hashlib.shake_256(self.seed + self.calls.to_bytes(8, "big")).digest(n)
        self.calls += 1
        return out


@dataclass(frozen=True)
class Record:
    index: int
    start: int  # offset of the word
    body_start: int
    end: int  # one past the tag
    length: int  # plaintext length
    final: bool


def header_size(envelope: bytes) -> int:
    return int.from_bytes(envelope[12:16], "big")


def records(envelope: bytes) -> list[Record]:
    """The segment records of a well-formed envelope."""
    pos = header_size(envelope)
    out: list[Record] = []
    while pos < len(envelope):
        word = int.from_bytes(envelope[pos : pos + WORD_SIZE], "big")
        length = word & 0x7FFF_FFFF
        end = pos + WORD_SIZE + length + TAG_SIZE
        out.append(Record(len(out), pos, pos + WORD_SIZE, end, length, bool(word >> 31)))
        pos = end
    assert pos == len(envelope)
    return out


def flip(data: bytes, pos: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


class CountingReader(io.RawIOBase):
    """A reader that counts the bytes requested and returns at most ``chunk`` per call."""

    def __init__(self, data: bytes, chunk: int | None = None) -> None:
        self._data = data
        self._pos = 0
        self._chunk = chunk
        self.requested = 0
        self.largest_request = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = len(buffer)
        self.requested += want
        self.largest_request = max(self.largest_request, want)
        if self._chunk is not None:
            want = min(want, self._chunk)
        chunk = self._data[self._pos : self._pos + want]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


class TrickleWriter:
    """A writer that accepts at most ``chunk`` bytes per call (like a raw pipe)."""

    def __init__(self, chunk: int = 7) -> None:
        self.buf = bytearray()
        self._chunk = chunk

    def write(self, data: memoryview) -> int:
        n = min(len(data), self._chunk)
        self.buf += data[:n]
        return n


def fixed_header(envelope: bytes) -> bytes:
    return envelope[:FIXED_HEADER_SIZE]
