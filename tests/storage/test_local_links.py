"""The local backend inside the app: ``init_app``, and signed, expiring ``/storage/<token>``
links for downloads, uploads and client multipart uploads."""

from __future__ import annotations

import io
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bidding.config import Settings
from bidding.core.clock import Clock
from bidding.core.errors import ErrorCode
from bidding.core.storage import LocalStorage, S3Storage, UploadedPart, get_storage
from tests.conftest import build_app, make_settings
from tests.storage.conftest import leftovers, sha256

JSON = {"Accept": "application/json"}


@pytest.fixture
def local(app: Flask) -> LocalStorage:
    storage = get_storage()
    assert isinstance(storage, LocalStorage)
    return storage


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path


def test_init_app_uses_the_instance_directory(app: Flask, settings: Settings) -> None:
    storage = get_storage()
    assert isinstance(storage, LocalStorage)
    assert storage.root == settings.instance_dir / "objects"
    assert app.extensions["storage"] is storage
    storage.check()


def test_check_reports_an_unusable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    storage = LocalStorage(blocker / "objects")
    with pytest.raises(Exception) as err:
        storage.check()
    assert getattr(err.value, "code", None) == ErrorCode.STORAGE_UNAVAILABLE


def test_presigned_get(local: LocalStorage, client: FlaskClient) -> None:
    data = os.urandom(50_000)
    local.put("docs/a", io.BytesIO(data), content_type="application/pdf")
    url = local.presigned_get_url("docs/a", 300, filename="招标文件.pdf")
    assert url.startswith("/storage/")  # no request: a path on this site
    r = client.get(url)
    assert r.status_code == 200
    assert r.data == data
    assert r.mimetype == "application/pdf"
    assert r.headers["ETag"].strip('"') == sha256(data)
    assert "招标文件.pdf" in unquote(r.headers["Content-Disposition"])
    assert r.headers["Cache-Control"] == "private, no-store"
    ranged = client.get(url, headers={"Range": "bytes=10-19"})  # resumable downloads
    assert ranged.status_code == 206
    assert ranged.data == data[10:20]


def test_presigned_url_is_external_inside_a_request(local: LocalStorage, app: Flask) -> None:
    local.put_bytes("docs/a", b"x")
    with app.test_request_context("/", base_url="https://trade.example.cn"):
        url = local.presigned_get_url("docs/a", 60)
    assert url.startswith("https://trade.example.cn/storage/")


def test_presigned_get_expires(
    local: LocalStorage, client: FlaskClient, frozen_clock: Clock
) -> None:
    local.put_bytes("docs/a", b"hello")
    url = local.presigned_get_url("docs/a", 60)
    frozen_clock.move(timedelta(seconds=59))
    assert client.get(url, headers=JSON).status_code == 200
    frozen_clock.move(timedelta(seconds=1))
    r = client.get(url, headers=JSON)
    assert r.status_code == 403
    assert r.json is not None and r.json["code"] == ErrorCode.TOKEN_EXPIRED


def test_tampered_link_is_refused(local: LocalStorage, client: FlaskClient) -> None:
    local.put_bytes("docs/a", b"hello")
    url = local.presigned_get_url("docs/a", 60)
    token = url.rsplit("/", 1)[1]
    payload, signature = token.rsplit(".", 1)
    for bad in (
        payload + "." + signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB"),
        payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature,
        "garbage",
    ):
        r = client.get(f"/storage/{bad}", headers=JSON)
        assert r.status_code == 403, bad
        assert r.json is not None and r.json["code"] == ErrorCode.INVALID_TOKEN


def test_link_from_another_secret_is_refused(
    local: LocalStorage, client: FlaskClient, tmp_path: Path
) -> None:
    other = build_app(make_settings(tmp_path / "other", secret_key="another-secret-0123456789"))
    with other.app_context():
        foreign = get_storage()
        foreign.put_bytes("docs/a", b"hello")
        url = foreign.presigned_get_url("docs/a", 60)
    local.put_bytes("docs/a", b"hello")
    assert client.get(url, headers=JSON).status_code == 403


def test_link_is_bound_to_the_content(local: LocalStorage, client: FlaskClient) -> None:
    local.put_bytes("docs/a", b"version one")
    url = local.presigned_get_url("docs/a", 60)
    local.put_bytes("docs/a", b"version two")
    r = client.get(url, headers=JSON)
    assert r.status_code == 404
    assert r.json is not None and r.json["code"] == ErrorCode.OBJECT_NOT_FOUND
    local.delete("docs/a")
    assert client.get(url, headers=JSON).status_code == 404


def test_link_is_bound_to_its_operation(local: LocalStorage, client: FlaskClient) -> None:
    local.put_bytes("docs/a", b"hello")
    get_url = local.presigned_get_url("docs/a", 60)
    put_url = local.presigned_put_url("docs/b", 60)
    assert client.put(get_url, data=b"overwrite", headers=JSON).status_code == 403
    assert client.get(put_url, headers=JSON).status_code == 403
    assert local.read_bytes("docs/a") == b"hello"


def test_presigned_put(local: LocalStorage, client: FlaskClient) -> None:
    data = os.urandom(100_000)
    url = local.presigned_put_url("bids/x", 300, content_type="application/octet-stream")
    r = client.put(url, data=data, headers=JSON)
    assert r.status_code == 200, r.json
    assert r.json == {"key": "bids/x", "size": len(data), "sha256": sha256(data)}
    assert r.headers["ETag"].strip('"') == sha256(data)
    assert local.verify_object("bids/x", len(data), sha256(data)).size == len(data)


def test_presigned_put_refusals_leave_nothing(local: LocalStorage, client: FlaskClient) -> None:
    url = local.presigned_put_url("bids/x", 300, max_size=1000)
    r = client.put(url, data=os.urandom(1001), headers=JSON)
    assert r.status_code == 413
    assert r.json is not None and r.json["code"] == ErrorCode.UPLOAD_TOO_LARGE
    # The client goes away after 3 of 10 announced bytes.
    r = client.put(
        url,
        input_stream=io.BytesIO(b"abc"),
        headers=JSON,
        environ_overrides={"CONTENT_LENGTH": "10"},
    )
    assert r.status_code == 400
    assert r.json is not None and r.json["code"] == ErrorCode.UPLOAD_INCOMPLETE
    assert leftovers(local) == []


def test_presigned_put_without_limit_keeps_the_app_limit(
    local: LocalStorage, client: FlaskClient, app: Flask
) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 2000
    url = local.presigned_put_url("bids/x", 300)
    r = client.put(url, data=os.urandom(2001), headers=JSON)
    assert r.status_code == 413
    assert r.json is not None and r.json["code"] == ErrorCode.UPLOAD_TOO_LARGE
    assert leftovers(local) == []


def test_presigned_multipart_upload(local: LocalStorage, client: FlaskClient) -> None:
    parts = [os.urandom(300_000), os.urandom(300_000), os.urandom(77)]
    whole = b"".join(parts)
    upload_id = local.create_multipart_upload("bids/big", content_type="application/zip")

    def send(number: int) -> str:
        url = local.presigned_part_url("bids/big", upload_id, number, 600)
        r = client.put(url, data=parts[number - 1], headers=JSON)
        assert r.status_code == 200, r.json
        return str(r.headers["ETag"])

    first = send(1)
    listed = local.list_parts("bids/big", upload_id)
    assert [(p.part_number, p.etag, p.size) for p in listed] == [(1, first.strip('"'), 300_000)]
    etags = {1: first, 3: send(3), 2: send(2)}  # any order
    assert not local.exists("bids/big")
    with pytest.raises(Exception) as err:  # a wrong ETag is refused
        local.complete_multipart_upload(
            "bids/big", upload_id, [UploadedPart(1, "0" * 32), UploadedPart(2, etags[2])]
        )
    assert getattr(err.value, "code", None) == ErrorCode.BAD_REQUEST
    info = local.complete_multipart_upload(
        "bids/big", upload_id, [UploadedPart(n, etags[n]) for n in (1, 2, 3)]
    )
    assert (info.size, info.sha256, info.content_type) == (
        len(whole),
        sha256(whole),
        "application/zip",
    )
    assert local.read_bytes("bids/big") == whole
    assert leftovers(local) == ["bids/big"]
    # The upload is over: its part links no longer work.
    with pytest.raises(Exception) as gone:
        local.presigned_part_url("bids/big", upload_id, 1, 60)
    assert getattr(gone.value, "code", None) == ErrorCode.OBJECT_NOT_FOUND


def test_part_link_after_abort_is_refused(local: LocalStorage, client: FlaskClient) -> None:
    upload_id = local.create_multipart_upload("bids/big")
    url = local.presigned_part_url("bids/big", upload_id, 1, 600)
    local.abort_multipart_upload("bids/big", upload_id)
    r = client.put(url, data=b"late part", headers=JSON)
    assert r.status_code == 404
    assert leftovers(local) == []


@pytest.mark.integration
def test_links_are_not_served_for_the_s3_backend(tmp_path: Path, s3_storage_url: str) -> None:
    app = build_app(make_settings(tmp_path / "instance", storage_url=s3_storage_url))
    with app.app_context():
        storage = get_storage()
        assert isinstance(storage, S3Storage)
        storage.check()
        client = app.test_client()
        assert client.get("/storage/whatever", headers=JSON).status_code == 404
