"""Object storage (对象存储): one interface, a local-directory and an S3 (MinIO) backend.

``SUNBID_STORAGE_URL`` chooses the backend:

* ``file:///abs/dir`` — :class:`LocalStorage` (embedded runtime; default under
  ``instance/objects``), with signed, expiring links served at ``/storage/<token>``;
* ``s3://KEY:SECRET@host:port/bucket`` (HTTP), ``s3+http://…`` or ``s3+https://…`` (TLS) —
  :class:`S3Storage` through the ``minio`` client, with real presigned URLs.

Usage::

    from bidding.core.storage import get_storage, new_key

    storage = get_storage()
    key = new_key("bids")
    obj = storage.put(key, stream, length=n, expected_sha256=digest, max_size=limit)
    with storage.open(key) as reader: ...

Every write is streamed in fixed-size chunks and hashed on the way in; a truncated, too
large or mis-hashed upload is refused (``upload_incomplete``, ``upload_too_large``,
``checksum_mismatch``) and leaves no object; a store that does not answer gives
``storage_unavailable`` (503).
"""

from __future__ import annotations

from flask import Flask, current_app

from bidding.core.storage.base import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    ChecksumMismatch,
    Intake,
    InvalidObjectKey,
    ObjectNotFound,
    Storage,
    StorageUnavailable,
    StoredObject,
    UploadedPart,
    UploadIncomplete,
    UploadTooLarge,
    new_key,
    validate_key,
)
from bidding.core.storage.local import LocalStorage, UrlSigner
from bidding.core.storage.models import StoredFileMixin
from bidding.core.storage.s3 import S3Storage

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_CONTENT_TYPE",
    "ChecksumMismatch",
    "Intake",
    "InvalidObjectKey",
    "LocalStorage",
    "ObjectNotFound",
    "S3Storage",
    "Storage",
    "StorageUnavailable",
    "StoredFileMixin",
    "StoredObject",
    "UploadIncomplete",
    "UploadTooLarge",
    "UploadedPart",
    "build_storage",
    "get_storage",
    "init_app",
    "new_key",
    "validate_key",
]

EXTENSION = "storage"


def build_storage(url: str, *, url_signer: UrlSigner | None = None) -> Storage:
    """The backend named by a storage URL (``file://…`` or ``s3://…``)."""
    if url.startswith("file:"):
        return LocalStorage.from_url(url, url_signer=url_signer)
    if url.startswith(("s3:", "s3+http:", "s3+https:")):
        return S3Storage.from_url(url)
    raise ValueError(f"unsupported storage URL scheme: {url.split(':', 1)[0]!r}")


def init_app(app: Flask) -> None:
    """Build the backend from the app's settings and register the signed-link blueprint."""
    from bidding.app import settings_of
    from bidding.core.storage import web

    storage = build_storage(settings_of(app).storage_url, url_signer=web.make_url_signer(app))
    app.extensions[EXTENSION] = storage
    web.register(app)


def get_storage() -> Storage:
    """The current app's storage backend."""
    storage: Storage = current_app.extensions[EXTENSION]
    return storage
