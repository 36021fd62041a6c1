"""Worker processes keep freed memory for reuse (bidding.core.memory), measured in page
faults of a real process: glibc's defaults hand a freed segment-sized buffer back to the
kernel, so the next one is fresh pages again."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bidding.core import memory

ROOT = Path(__file__).resolve().parents[2]

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt tuning applies to glibc only",
)

#: Streams 300 "segments" through buffers shaped like the decryption's (the storage
#: client's read of a segment and its length word, a GCM record buffer) and prints the
#: minor page faults it took.
_PROGRAM = """
import resource, sys
sys.path.insert(0, {root!r})
from bidding.core.memory import retain_freed_memory
print(retain_freed_memory({retain}))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(300):
    read = bytes(1024 * 1024 + 20)
    record = bytearray(1024 * 1024 + 36)
    del read, record
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(retain: int) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM.format(root=str(ROOT), retain=retain)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return out[0] == "True", int(out[1])


@glibc
def test_retaining_freed_memory_spares_the_page_faults() -> None:
    tuned, tuned_faults = _faults(128)
    untuned, default_faults = _faults(0)
    assert (tuned, untuned) == (True, False)
    # defaults: ~512 faults a round (two fresh MiB); tuned: the same pages every round
    assert default_faults > 300 * 256
    assert tuned_faults < default_faults / 20


def test_zero_leaves_the_allocator_alone() -> None:
    assert memory.retain_freed_memory(0) is False


@glibc
def test_each_celery_worker_process_tunes_its_allocator_and_connects(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bidding.core import db, tasks

    calls: list[int] = []
    monkeypatch.setattr(memory, "retain_freed_memory", calls.append)
    monkeypatch.setitem(tasks.celery.conf, "flask_app", app)
    tasks._after_fork()
    assert calls == [app.extensions["sunbid_settings"].worker_malloc_retain_mb] == [128]
    # the new engine holds a connection already, made before any task
    pool: Any = db.get_engine().pool
    assert pool.checkedin() == 1
