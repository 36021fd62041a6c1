"""Details of the local-directory backend: URL, layout, metadata that goes stale."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from bidding.core.storage import InvalidObjectKey, LocalStorage, StoredObject, build_storage
from tests.storage.conftest import leftovers, sha256


def test_from_url(tmp_path: Path) -> None:
    storage = build_storage(f"file://{tmp_path}/my%20objects")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "my objects"
    with pytest.raises(ValueError):
        LocalStorage.from_url("file://relative/dir")
    with pytest.raises(ValueError):
        build_storage("ftp://host/dir")


def test_objects_are_plain_files_and_meta_is_hidden(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("bids/2026/x", b"data", content_type="text/plain")
    assert (tmp_path / "bids/2026/x").read_bytes() == b"data"
    assert storage.list_keys() == ["bids/2026/x"]
    assert storage.list_keys("other/") == []


def test_stale_metadata_is_not_trusted(tmp_path: Path) -> None:
    """Metadata written for a file that never replaced the object (a failed or interrupted
    commit) names another inode: stat() recomputes instead of reporting a wrong hash."""
    storage = LocalStorage(tmp_path)
    storage.put("k/x", io.BytesIO(b"AAAA"), content_type="text/plain")
    bogus = StoredObject(key="k/x", size=4, sha256=sha256(b"BBBB"), etag="", content_type="x/y")
    storage._write_meta(bogus, inode=os.stat(tmp_path / "k/x").st_ino + 1)
    info = storage.stat("k/x")
    assert info.sha256 == sha256(b"AAAA")
    assert storage.stat("k/x").sha256 == sha256(b"AAAA")


def test_file_placed_by_hand_gets_its_checksum(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    (tmp_path / "imported").mkdir()
    (tmp_path / "imported/file").write_bytes(b"legacy")
    info = storage.stat("imported/file")
    assert (info.size, info.sha256) == (6, sha256(b"legacy"))


def test_key_conflicting_with_a_directory_is_refused(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("a/b", b"x")
    with pytest.raises(InvalidObjectKey):
        storage.put_bytes("a", b"y")
    with pytest.raises(InvalidObjectKey):
        storage.put_bytes("a/b/c", b"z")
    assert leftovers(storage) == ["a/b"]
    assert storage.read_bytes("a/b") == b"x"
