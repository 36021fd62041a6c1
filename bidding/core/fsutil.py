"""Small filesystem helpers shared by the local object store and instance-file writers."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a file just renamed or linked into ``path``) to disk; a
    filesystem that cannot open or sync directories is left as it is."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
