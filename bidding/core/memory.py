"""Keeping freed memory for reuse in worker processes (glibc's ``mallopt``).

A decrypt worker streams each bid through buffers of about a segment (1 MiB): the storage
client's read buffers, the GCM record, the plaintext. With glibc's defaults a freed block
of that size is handed back to the kernel at once (``mmap``, or the heap top trimmed past
twice the dynamic threshold), so the next bid's buffers are fresh pages again: some 1,300
page faults per 20 MB bid, each zeroing a page — measured at 130,000 faults and 15–20 %
more CPU per bid in a Celery worker process than in a thread of the bench's own process,
whose arena kept its memory.

:func:`retain_freed_memory` raises the ``mmap`` threshold to 32 MiB (blocks below it come
from the heap and are reused) and lets up to ``retain_mb`` of free heap stay mapped
(trim threshold). The worker's resident size then stays at its working set plus at most
``retain_mb`` instead of shrinking between bids. It runs in each Celery worker process
(``SUNBID_WORKER_MALLOC_RETAIN_MB``, default 128; 0 leaves the C library's defaults).
Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

#: ``mallopt`` parameters (glibc ``<malloc.h>``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's ceiling for the mmap threshold on 64-bit (``DEFAULT_MMAP_THRESHOLD_MAX``).
MMAP_THRESHOLD = 32 * 1024 * 1024


def retain_freed_memory(retain_mb: int) -> bool:
    """Tune this process's allocator as the module says; True if it took effect."""
    if retain_mb <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    trim = min(retain_mb, 1024) * 1024 * 1024
    # glibc returns 1 on success; musl's stub returns 0 and changes nothing
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1) and bool(
        mallopt(M_TRIM_THRESHOLD, trim) == 1
    )
    if done:
        log.debug("malloc: mmap threshold 32 MiB, trim threshold %d MiB", trim >> 20)
    return done
