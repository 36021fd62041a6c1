"""Storage fixtures: the same tests run on the local backend and on S3 (moto subprocess)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from bidding.core.storage import LocalStorage, S3Storage, Storage
from bidding.core.storage.local import TMP_DIR, UPLOADS_DIR

#: The smallest part S3 allows: small enough that tests exercise multipart cheaply.
SMALL_PART = 5 * 1024 * 1024


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "objects")


@pytest.fixture
def s3_storage(s3_storage_url: str) -> S3Storage:
    return S3Storage.from_url(s3_storage_url, part_size=SMALL_PART)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    """Each backend in turn (S3 with 5 MiB parts, so multipart paths run on small data)."""
    if request.param == "local":
        yield request.getfixturevalue("local_storage")
    else:
        yield request.getfixturevalue("s3_storage")


def leftovers(storage: Storage) -> list[str]:
    """Everything a refused upload could have left: objects, temp files, open uploads."""
    found = list(storage.list_keys())
    if isinstance(storage, LocalStorage):
        for sub in (TMP_DIR, UPLOADS_DIR):
            found += [f"{sub}/{p.name}" for p in (storage.root / sub).iterdir()]
    elif isinstance(storage, S3Storage):
        found += [f"upload:{key}" for key, _uid in storage.list_uploads()]
    return found


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ShortStream(io.RawIOBase):
    """Yields ``data`` in small reads, then ends (or fails, like a client going away)."""

    def __init__(self, data: bytes, *, fail: BaseException | None = None, step: int = 65536):
        self._data = memoryview(data)
        self._pos = 0
        self._fail = fail
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos >= len(self._data):
            if self._fail is not None:
                raise self._fail
            return 0
        n = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


class ReadOnlyStream:
    """A stream with only ``read()`` (no ``readinto``), as some WSGI inputs are."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._buffer.read(min(n, 10_000) if n > 0 else n)
