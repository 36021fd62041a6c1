"""The column mixin for rows that reference a stored object."""

from __future__ import annotations

import io
import uuid

import pytest
from flask import Flask
from sqlalchemy import create_engine, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bidding.core.storage import StoredFileMixin, StoredObject, get_storage


class _Base(DeclarativeBase):
    """A private metadata: this test table never reaches the platform's schema."""


class Attachment(StoredFileMixin, _Base):
    __tablename__ = "test_attachments"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


def test_mixin_columns_round_trip() -> None:
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    columns = {c["name"]: c for c in inspect(engine).get_columns("test_attachments")}
    assert {"storage_key", "size", "sha256", "content_type", "filename"} <= set(columns)
    assert columns["filename"]["nullable"] is True
    assert columns["sha256"]["nullable"] is False
    row = Attachment()
    row.set_stored_object(
        StoredObject(key="docs/a", size=3, sha256="a" * 64, etag="e", content_type="text/plain"),
        filename="说明.txt",
    )
    with Session(engine) as session:
        session.add(row)
        session.commit()
        loaded = session.get(Attachment, row.id)
        assert loaded is not None
        assert (loaded.storage_key, loaded.size, loaded.sha256, loaded.filename) == (
            "docs/a",
            3,
            "a" * 64,
            "说明.txt",
        )
    with pytest.raises(ValueError):
        row.set_stored_object(StoredObject(key="k", size=1, sha256=None, etag=""))


def test_mixin_reads_through_the_current_backend(app: Flask) -> None:
    stored = get_storage().put("docs/b", io.BytesIO(b"hello"), content_type="text/plain")
    row = Attachment()
    row.set_stored_object(stored, filename="b.txt")
    with row.open() as reader:
        assert reader.read() == b"hello"
    url = row.presigned_get_url(60)
    assert app.test_client().get(url).data == b"hello"
