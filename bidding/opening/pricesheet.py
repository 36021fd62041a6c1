"""The price sheet (开标一览表) read out of a bid package *while* it is decrypted.

A bid package is a ZIP (``bidding.bids.package``): ``price_sheet.json`` is written first,
so it sits at the very beginning of the plaintext, and the ZIP's central directory sits at
its very end. :class:`PackageCapture` is the plaintext sink of the decryption: it keeps
the first :data:`HEAD` bytes and the last :data:`TAIL` bytes, counts the rest and throws
it away — no temporary file, no second pass. :meth:`PackageCapture.reader` then serves
those two regions as a seekable file of the full plaintext size, and the bids domain's own
``read_price_sheet`` runs on it unchanged (same ZIP checks, same codes, same refusals).

Should the ZIP reader need a byte in the discarded middle (the price sheet is not near the
start, or the central directory is larger than :data:`TAIL`), the read raises
:class:`PlaintextGap` and :attr:`PackageCapture.missed` is set: the caller then falls back
to a full plaintext file. The capture is therefore never *wrong*, only, for unusual
packages, not enough.

Copies are kept few (this runs for every bid of an opening): when the first write starts
with the local file header of the expected first entry (``first_entry``, sizes in the
header), only that entry is kept from the head, not :data:`HEAD` bytes; with the expected
size known, the tail is copied once, straight to its place in a buffer of :data:`TAIL`
bytes; the reader serves both without copying them again.
"""

from __future__ import annotations

import io
from typing import IO, Any, cast

from crypto.envelope import TAG_SIZE, WORD_SIZE

__all__ = ["HEAD", "TAIL", "PackageCapture", "PlaintextGap", "plaintext_size_of"]

#: ZIP local file header: signature, fixed size, and the offsets used here.
_LOCAL_SIG = b"PK\x03\x04"
_LOCAL_SIZE = 30
#: Bytes kept after the first entry's data when the head is sized from its local header.
_HEAD_SLACK = 4096

#: Bytes kept from the start: a local file header (30 bytes, name and extra field up to
#: 64 KiB each) and a price sheet up to ``MAX_PRICE_SHEET_SIZE`` (1 MiB).
HEAD = 1024 * 1024 + 30 + 2 * 65535 + 16
#: Bytes kept from the end: end-of-central-directory records (ZIP64 too), the archive
#: comment (≤ 64 KiB) and a central directory of several thousand entries.
TAIL = 1024 * 1024


class PlaintextGap(Exception):
    """A read needed plaintext bytes that were not kept (deliberately not an ``OSError``:
    the ZIP reader must not mistake it for a broken file)."""


def plaintext_size_of(ciphertext_size: int, header_size: int, segment_size: int) -> int | None:
    """The plaintext size a well-formed envelope of ``ciphertext_size`` bytes carries, or
    None when no plaintext size fits (the inverse of ``ciphertext_size_for``)."""
    body = ciphertext_size - header_size
    record = segment_size + WORD_SIZE + TAG_SIZE
    if body < WORD_SIZE + TAG_SIZE or segment_size <= 0:
        return None
    segments = max(1, -(-body // record))
    size = body - segments * (WORD_SIZE + TAG_SIZE)
    if size < 0 or max(1, -(-size // segment_size)) != segments:
        return None
    return size


class PackageCapture:
    """A write-only plaintext sink keeping the head and the tail of the package.

    ``expected_size`` (from the signed ciphertext size) lets it copy only the bytes that
    can end up in the tail, once, into a buffer of ``tail`` bytes; without it every write
    is copied into a rolling tail. ``first_entry`` (the name of the ZIP entry a package
    starts with): if the first write holds that entry's whole local header, with its
    sizes, the head keeps just that entry (plus a little), at most ``head`` bytes. A wrong
    expectation costs coverage (a :class:`PlaintextGap`, then the fallback), never
    correctness.
    """

    def __init__(
        self,
        expected_size: int | None = None,
        *,
        head: int = HEAD,
        tail: int = TAIL,
        first_entry: str | None = None,
    ) -> None:
        self._head_cap = head
        self._tail_cap = tail
        self._first_entry = first_entry.encode("utf-8") if first_entry else None
        self._head = bytearray()
        self._tail: list[bytes] = []
        self._tail_len = 0
        self._expected = expected_size
        self._tail_from = 0 if expected_size is None else max(0, expected_size - tail)
        self._tail_buf: bytearray | None = None
        self.size = 0
        self.missed = False

    def _size_head(self, view: memoryview) -> None:
        """On the first write: keep just the first entry if its local header says how
        long it is (no data descriptor, no ZIP64 sizes) and it is the expected one."""
        if self._first_entry is None or len(view) < _LOCAL_SIZE:
            return
        if view[:4] != _LOCAL_SIG:
            return
        flags = int.from_bytes(view[6:8], "little")
        compressed = int.from_bytes(view[18:22], "little")
        name_len = int.from_bytes(view[26:28], "little")
        extra_len = int.from_bytes(view[28:30], "little")
        if flags & 0x08 or compressed == 0xFFFFFFFF:
            return
        if view[_LOCAL_SIZE : _LOCAL_SIZE + name_len] != self._first_entry:
            return
        needed = _LOCAL_SIZE + name_len + extra_len + compressed + _HEAD_SLACK
        self._head_cap = min(self._head_cap, needed)

    def write(self, data: Any, /) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        start = self.size
        end = start + n
        if start == 0:
            self._size_head(view)
        if start < self._head_cap:
            self._head += view[: self._head_cap - start]
        if end > self._tail_from:
            keep = view[max(0, self._tail_from - start) :]
            if self._expected is not None and end <= self._expected:
                # one copy, straight to its place in the tail buffer
                if self._tail_buf is None:
                    self._tail_buf = bytearray(self._expected - self._tail_from)
                offset = max(start, self._tail_from) - self._tail_from
                self._tail_buf[offset : offset + len(keep)] = keep
            else:
                self._roll(keep)
        self.size = end
        return n

    def _roll(self, keep: memoryview) -> None:
        """The rolling tail (no size expected, or more bytes than expected)."""
        if self._tail_buf is not None:  # more than expected: continue as a rolling tail
            filled = self.size - self._tail_from
            self._tail = [bytes(self._tail_buf[:filled])]
            self._tail_len = filled
            self._tail_buf = None
            self._expected = None
        if len(keep) >= self._tail_cap:
            self._tail = [bytes(keep[len(keep) - self._tail_cap :])]
            self._tail_len = self._tail_cap
        else:
            self._tail.append(bytes(keep))
            self._tail_len += len(keep)
            while self._tail_len - len(self._tail[0]) >= self._tail_cap:
                self._tail_len -= len(self._tail.pop(0))

    def reader(self) -> IO[bytes]:
        """The captured plaintext as a seekable, read-only file of the full size."""
        # Every byte from ``_tail_from`` on was kept in order (in the buffer, or appended
        # with only whole chunks dropped from the front), so what is kept always ends at
        # the real end.
        tail: bytes | memoryview
        if self._tail_buf is not None:
            tail = memoryview(self._tail_buf)[: max(0, self.size - self._tail_from)]
        else:
            tail = b"".join(self._tail)
        return cast(
            IO[bytes],
            _CapturedFile(self, bytes(self._head), tail, self.size - len(tail)),
        )


class _CapturedFile(io.RawIOBase):
    """``[0, len(head))`` and ``[tail_start, size)`` of the plaintext; the rest is a gap."""

    def __init__(
        self,
        capture: PackageCapture,
        head: bytes,
        tail: bytes | memoryview,
        tail_start: int,
    ):
        super().__init__()
        self._capture = capture
        self._head = head
        self._tail = tail
        self._tail_start = tail_start
        self._size = capture.size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise OSError("negative seek position")  # as a real file would
        self._pos = pos
        return pos

    def readinto(self, buffer: Any, /) -> int:
        out = memoryview(buffer).cast("B")
        want = min(len(out), max(0, self._size - self._pos))
        done = 0
        chunk: bytes | memoryview
        while done < want:
            pos = self._pos + done
            if pos < len(self._head):
                chunk = self._head[pos : pos + want - done]
            elif pos >= self._tail_start:
                offset = pos - self._tail_start
                chunk = self._tail[offset : offset + want - done]
            else:
                self._capture.missed = True
                raise PlaintextGap(f"plaintext byte {pos} was not kept")
            out[done : done + len(chunk)] = chunk
            done += len(chunk)
        self._pos += done
        return done
