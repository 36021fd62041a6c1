"""The local-directory backend (本地目录存储) of the embedded runtime.

Layout under the root directory::

    <key>                      the object's bytes
    .meta/<key>.json           size, sha256, content type (written before the data appears)
    .tmp/                      uploads in progress; renamed into place when complete
    .uploads/<upload id>/      parts of client multipart uploads

Valid keys never have a segment starting with ``.``, so these never collide with objects.
A write goes to a temp file in ``.tmp`` (same file system), is flushed and fsync'ed, and is
then renamed over the final path: readers see the whole object or none.

Presigned URLs are served by the blueprint in :mod:`bidding.core.storage.web`: a token
signed with the app's secret names the operation, key, expiry and (for downloads) the
content hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import unquote, urlsplit

from flask_babel import lazy_gettext as _l

from bidding.core.errors import BadRequest
from bidding.core.fsutil import fsync_dir
from bidding.core.storage.base import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    Intake,
    InvalidObjectKey,
    ObjectNotFound,
    Storage,
    StorageUnavailable,
    StoredObject,
    UploadedPart,
    _msg,
    normalise_sha256,
    validate_key,
)

META_DIR = ".meta"
TMP_DIR = ".tmp"
UPLOADS_DIR = ".uploads"

#: Builds a presigned URL from a token payload (set by :func:`bidding.core.storage.init_app`).
UrlSigner = Callable[[dict[str, Any], int], str]


class LocalStorage(Storage):
    """Objects as files in a directory (``SUNBID_STORAGE_URL=file:///abs/dir``)."""

    name = "local"

    def __init__(self, root: str | Path, *, url_signer: UrlSigner | None = None) -> None:
        self.root = Path(root).resolve()
        self.url_signer = url_signer
        with contextlib.suppress(OSError):  # check() reports a root that cannot be made
            self._ensure_dirs()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> LocalStorage:
        parts = urlsplit(url)
        if parts.scheme != "file":
            raise ValueError(f"not a file:// storage URL: {url!r}")
        path = unquote(parts.netloc + parts.path)
        if not path.startswith("/"):
            raise ValueError(f"file:// storage URL needs an absolute path: {url!r}")
        return cls(path, **kwargs)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------------------

    def _ensure_dirs(self) -> None:
        for sub in (TMP_DIR, META_DIR, UPLOADS_DIR):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def path_of(self, key: str) -> Path:
        """The file holding ``key`` (which need not exist)."""
        return self.root / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / META_DIR / f"{validate_key(key)}.json"

    def _upload_dir(self, upload_id: str) -> Path:
        try:
            uid = uuid.UUID(hex=upload_id).hex
        except (ValueError, TypeError, AttributeError):
            raise InvalidObjectKey(
                _msg(_l("分片上传标识不合法。")), details={"upload_id": upload_id}
            ) from None
        return self.root / UPLOADS_DIR / uid

    def _tempfile(self) -> tuple[int, Path]:
        self._ensure_dirs()
        fd, name = tempfile.mkstemp(dir=self.root / TMP_DIR, prefix="put-")
        return fd, Path(name)

    # -- writes ----------------------------------------------------------------------------

    def put(
        self,
        key: str,
        stream: IO[bytes] | BinaryIO | Any,
        *,
        length: int | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
        expected_sha256: str | None = None,
        max_size: int | None = None,
    ) -> StoredObject:
        final = self.path_of(key)
        intake = Intake(stream, length=length, max_size=max_size, expected_sha256=expected_sha256)
        try:
            fd, tmp = self._tempfile()
        except OSError as exc:
            raise StorageUnavailable(details={"reason": str(exc)}) from exc
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                for chunk in intake.chunks(CHUNK_SIZE):
                    _write_all(out, chunk)
                sha256 = intake.finish()
                os.fsync(out.fileno())
            info = StoredObject(
                key=key,
                size=intake.size,
                sha256=sha256,
                etag=sha256,
                content_type=content_type or DEFAULT_CONTENT_TYPE,
                last_modified=_mtime(tmp),
            )
            self._commit(tmp, final, info)
        except (NotADirectoryError, IsADirectoryError, FileExistsError):
            # "a/b" where "a" is an object, or "a" where "a/…" objects exist.
            raise InvalidObjectKey(
                _msg(_l("文件标识与已有文件冲突。")), details={"key": key}
            ) from None
        except OSError as exc:
            raise StorageUnavailable(details={"reason": str(exc)}) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return info

    def _commit(self, tmp: Path, final: Path, info: StoredObject) -> None:
        """Metadata first, then the data by an atomic rename.

        The metadata names the inode of the data file it describes (a rename keeps it), so
        a crash or failure between the two steps leaves metadata that :meth:`stat` sees
        does not belong to the file under the key, and recomputes.
        """
        final.parent.mkdir(parents=True, exist_ok=True)
        self._write_meta(info, inode=tmp.stat().st_ino)
        os.replace(tmp, final)
        fsync_dir(final.parent)

    def _write_meta(self, info: StoredObject, *, inode: int) -> None:
        meta = self._meta_path(info.key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {
                "size": info.size,
                "sha256": info.sha256,
                "content_type": info.content_type,
                "inode": inode,
            }
        )
        fd, name = tempfile.mkstemp(dir=self.root / TMP_DIR, prefix="meta-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(body)
            os.replace(name, meta)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def delete(self, key: str) -> None:
        path = self.path_of(key)
        try:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(FileNotFoundError):
                self._meta_path(key).unlink()
        except OSError as exc:
            raise StorageUnavailable(details={"reason": str(exc)}) from exc

    # -- reads -----------------------------------------------------------------------------

    def open(self, key: str) -> IO[bytes]:
        try:
            return open(self.path_of(key), "rb", buffering=CHUNK_SIZE)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StorageUnavailable(details={"reason": str(exc)}) from exc

    def open_sized(self, key: str) -> tuple[IO[bytes], int]:
        reader = self.open(key)
        try:
            return reader, os.fstat(reader.fileno()).st_size
        except OSError as exc:
            reader.close()
            raise StorageUnavailable(details={"reason": str(exc)}) from exc

    def stat(self, key: str) -> StoredObject:
        path = self.path_of(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StorageUnavailable(details={"reason": str(exc)}) from exc
        if not path.is_file():
            raise ObjectNotFound(key)
        meta = self._read_meta(key)
        if meta is None or meta.get("size") != st.st_size or meta.get("inode") != st.st_ino:
            # Placed by hand or meta lost: recompute once and remember.
            size, sha256 = self.hash_object(key)
            content_type = (meta or {}).get("content_type") or DEFAULT_CONTENT_TYPE
            meta = {"size": size, "sha256": sha256, "content_type": content_type}
            with contextlib.suppress(OSError):
                self._write_meta(
                    StoredObject(
                        key=key, size=size, sha256=sha256, etag=sha256, content_type=content_type
                    ),
                    inode=st.st_ino,
                )
        sha = meta.get("sha256")
        return StoredObject(
            key=key,
            size=st.st_size,
            sha256=sha,
            etag=sha or "",
            content_type=meta.get("content_type") or DEFAULT_CONTENT_TYPE,
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def _read_meta(self, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._meta_path(key).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def list_keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        if not self.root.is_dir():
            return keys
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if name.startswith("."):
                    continue
                rel = Path(dirpath, name).relative_to(self.root).as_posix()
                if rel.startswith(prefix):
                    keys.append(rel)
        return sorted(keys)

    def check(self) -> None:
        try:
            self._ensure_dirs()
            fd, name = tempfile.mkstemp(dir=self.root / TMP_DIR, prefix="check-")
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise StorageUnavailable(details={"reason": str(exc)}) from exc

    # -- presigned URLs ------------------------------------------------------------------

    def _sign(self, payload: dict[str, Any], expires: int) -> str:
        if self.url_signer is None:
            raise RuntimeError("LocalStorage needs init_app() to make presigned URLs")
        if expires < 1:
            raise ValueError("expires must be at least 1 second")
        return self.url_signer(payload, expires)

    def presigned_put_url(
        self,
        key: str,
        expires: int,
        *,
        content_type: str | None = None,
        max_size: int | None = None,
        sha256: str | None = None,
    ) -> str:
        payload: dict[str, Any] = {"op": "put", "k": validate_key(key)}
        if content_type:
            payload["ct"] = content_type
        if max_size is not None:
            payload["max"] = int(max_size)
        if sha256 is not None:
            payload["h"] = normalise_sha256(sha256)
        return self._sign(payload, expires)

    def presigned_get_url(self, key: str, expires: int, filename: str | None = None) -> str:
        info = self.stat(key)
        payload: dict[str, Any] = {"op": "get", "k": key, "h": info.sha256}
        if filename:
            payload["fn"] = filename
        return self._sign(payload, expires)

    # -- multipart -------------------------------------------------------------------------

    def create_multipart_upload(self, key: str, *, content_type: str = DEFAULT_CONTENT_TYPE) -> str:
        validate_key(key)
        upload_id = uuid.uuid4().hex
        directory = self._upload_dir(upload_id)
        try:
            directory.mkdir(parents=True)
            (directory / "upload.json").write_text(
                json.dumps({"key": key, "content_type": content_type or DEFAULT_CONTENT_TYPE})
            )
        except OSError as exc:
            raise StorageUnavailable(details={"reason": str(exc)}) from exc
        return upload_id

    def _upload(self, key: str, upload_id: str) -> tuple[Path, dict[str, Any]]:
        directory = self._upload_dir(upload_id)
        try:
            info = json.loads((directory / "upload.json").read_text())
        except (OSError, ValueError):
            raise ObjectNotFound(key, _msg(_l("分片上传不存在或已结束。"))) from None
        if info.get("key") != key:
            raise ObjectNotFound(key, _msg(_l("分片上传不存在或已结束。")))
        return directory, info

    def presigned_part_url(self, key: str, upload_id: str, part_number: int, expires: int) -> str:
        validate_key(key)
        _check_part_number(part_number)
        self._upload(key, upload_id)
        payload = {"op": "part", "k": key, "u": upload_id, "n": part_number}
        return self._sign(payload, expires)

    def put_part(
        self, key: str, upload_id: str, part_number: int, stream: Any, *, length: int | None
    ) -> UploadedPart:
        """Receive one part (called by the presigned-URL view)."""
        _check_part_number(part_number)
        directory, _info = self._upload(key, upload_id)
        intake = Intake(stream, length=length)
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            fd, name = tempfile.mkstemp(dir=directory, prefix=".part-")
        except OSError as exc:
            raise StorageUnavailable(details={"reason": str(exc)}) from exc
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                for chunk in intake.chunks(CHUNK_SIZE):
                    md5.update(chunk)
                    _write_all(out, chunk)
                intake.finish()
                os.fsync(out.fileno())
            os.replace(tmp, directory / f"part-{part_number:05d}")
        except OSError as exc:
            raise StorageUnavailable(details={"reason": str(exc)}) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return UploadedPart(part_number=part_number, etag=md5.hexdigest(), size=intake.size)

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        directory, _info = self._upload(key, upload_id)
        parts = []
        for path in sorted(directory.glob("part-*")):
            md5 = hashlib.md5(usedforsecurity=False)
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK_SIZE):
                    md5.update(chunk)
            parts.append(
                UploadedPart(
                    part_number=int(path.name[5:]), etag=md5.hexdigest(), size=path.stat().st_size
                )
            )
        return parts

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[UploadedPart]
    ) -> StoredObject:
        directory, info = self._upload(key, upload_id)
        have = {p.part_number: p for p in self.list_parts(key, upload_id)}
        numbers = [p.part_number for p in parts]
        if not parts or numbers != sorted(set(numbers)):
            raise BadRequest(_msg(_l("分片列表不合法（须按序号升序且不重复）。")))
        for p in parts:
            got = have.get(p.part_number)
            if got is None or got.etag != p.etag.strip('"'):
                raise BadRequest(
                    _msg(_l("分片不存在或校验值不符。")), details={"part_number": p.part_number}
                )
        fd, tmp = self._tempfile()
        hasher = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                for p in parts:
                    with open(directory / f"part-{p.part_number:05d}", "rb") as f:
                        while chunk := f.read(CHUNK_SIZE):
                            hasher.update(chunk)
                            _write_all(out, memoryview(chunk))
                            size += len(chunk)
                os.fsync(out.fileno())
            sha256 = hasher.hexdigest()
            result = StoredObject(
                key=key,
                size=size,
                sha256=sha256,
                etag=sha256,
                content_type=info.get("content_type") or DEFAULT_CONTENT_TYPE,
                last_modified=_mtime(tmp),
            )
            self._commit(tmp, self.path_of(key), result)
            shutil.rmtree(directory, ignore_errors=True)
        except OSError as exc:
            raise StorageUnavailable(details={"reason": str(exc)}) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return result

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        directory = self._upload_dir(upload_id)
        with contextlib.suppress(ObjectNotFound):
            self._upload(key, upload_id)
            shutil.rmtree(directory, ignore_errors=True)

    def iter_uploads(self) -> Iterator[str]:
        """Ids of unfinished multipart uploads (for housekeeping)."""
        base = self.root / UPLOADS_DIR
        if base.is_dir():
            yield from sorted(p.name for p in base.iterdir() if p.is_dir())


def _check_part_number(part_number: int) -> None:
    if not isinstance(part_number, int) or not 1 <= part_number <= 10000:
        raise BadRequest(
            _msg(_l("分片序号须在 1 到 10000 之间。")), details={"part_number": part_number}
        )


def _write_all(out: Any, chunk: memoryview) -> None:
    view = memoryview(chunk)
    while view:
        n = out.write(view)
        view = view[n:]


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)
