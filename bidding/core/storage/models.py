"""Columns for rows that reference a stored object (存储文件字段), as indico's
``StoredFileMixin``: the row keeps the key, size, SHA-256, type and original name; the
bytes live in the object store (whichever backend is configured)."""

from __future__ import annotations

from typing import IO

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from bidding.core.storage.base import DEFAULT_CONTENT_TYPE, StoredObject


class StoredFileMixin:
    """Adds ``storage_key``, ``size``, ``sha256``, ``content_type`` and ``filename``.

    Fill them from :meth:`Storage.put` / :meth:`Storage.verify_object` with
    :meth:`set_stored_object`; read the bytes with :meth:`open`.
    """

    storage_key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(255), default=DEFAULT_CONTENT_TYPE)
    filename: Mapped[str | None] = mapped_column(String(255), default=None)

    def set_stored_object(self, obj: StoredObject, filename: str | None = None) -> None:
        """Record an object the store accepted (its checksum must be known)."""
        if obj.sha256 is None:
            raise ValueError("stored object without a verified SHA-256")
        self.storage_key = obj.key
        self.size = obj.size
        self.sha256 = obj.sha256
        self.content_type = obj.content_type
        if filename is not None:
            self.filename = filename

    def open(self) -> IO[bytes]:
        """A streaming reader of the stored bytes (current app's backend)."""
        from bidding.core.storage import get_storage

        return get_storage().open(self.storage_key)

    def presigned_get_url(self, expires: int = 300) -> str:
        """A short-lived download link, named after the original file."""
        from bidding.core.storage import get_storage

        return get_storage().presigned_get_url(self.storage_key, expires, filename=self.filename)
