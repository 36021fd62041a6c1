"""Child process for the memory acceptance test: streams a large deterministic object into
a storage backend and back, and reports the process's peak RSS growth.

Run as ``python -m tests.storage.memprobe '<json>'`` with ``{"url": storage URL, "size":
bytes, "mode": "stream" | "naive"}``; prints one JSON line. Peak RSS is the kernel's
high-water mark (``ru_maxrss``), so a short spike between samples cannot hide. ``naive``
mode buffers the whole object first, as a careless implementation would: the test uses
it to show that the probe does detect such growth.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import resource
import sys
import time
from typing import Any

BLOCK = 1024 * 1024


class PatternReader(io.RawIOBase):
    """``size`` deterministic bytes: 1 MiB blocks of a fixed pattern, each starting with
    its block number, produced on demand (never more than one block in memory)."""

    def __init__(self, size: int, seed: int = 20261126) -> None:
        import random

        self._base = random.Random(seed).randbytes(BLOCK)
        self._size = size
        self._pos = 0
        self._block_no = -1
        self._block = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._size - self._pos)
        done = 0
        while done < n:
            block_no, offset = divmod(self._pos, BLOCK)
            if block_no != self._block_no:
                self._block = block_no.to_bytes(8, "big") + self._base[8:]
                self._block_no = block_no
            take = min(n - done, BLOCK - offset)
            view[done : done + take] = self._block[offset : offset + take]
            done += take
            self._pos += take
        return n


def pattern_sha256(size: int) -> str:
    hasher = hashlib.sha256()
    reader = PatternReader(size)
    buffer = bytearray(BLOCK)
    while n := reader.readinto(buffer):
        hasher.update(memoryview(buffer)[:n])
    return hasher.hexdigest()


class HashingSink:
    """A write target that only hashes (the object is not kept anywhere)."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return len(data)


def peak_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def main(args: dict[str, Any]) -> dict[str, Any]:
    from bidding.core.storage import build_storage

    size = int(args["size"])
    storage = build_storage(args["url"])
    expected = pattern_sha256(size)

    # Warm up: imports, connection pools, first-use allocations.
    storage.put("warmup/x", io.BytesIO(b"w" * 4096), length=4096)
    storage.get("warmup/x", HashingSink())
    storage.delete("warmup/x")
    gc.collect()
    before = peak_kib()
    started = time.monotonic()

    if args["mode"] == "naive":
        whole = PatternReader(size).read()
        stored = storage.put("probe/object", io.BytesIO(whole), length=size)
        del whole
    else:
        stored = storage.put(
            "probe/object", PatternReader(size), length=size, expected_sha256=expected
        )
    put_seconds = time.monotonic() - started
    sink = HashingSink()
    got = storage.get("probe/object", sink)
    after = peak_kib()
    info = storage.stat("probe/object")
    storage.delete("probe/object")
    return {
        "expected_sha256": expected,
        "put_sha256": stored.sha256,
        "get_sha256": got.sha256,
        "sink_sha256": sink.hasher.hexdigest(),
        "sink_size": sink.size,
        "stat_size": info.size,
        "before_kib": before,
        "after_kib": after,
        "growth_mib": (after - before) / 1024,
        "put_seconds": round(put_seconds, 2),
        "total_seconds": round(time.monotonic() - started, 2),
        "exists_after_delete": storage.exists("probe/object"),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
