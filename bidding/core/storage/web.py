"""Signed, expiring links for the local backend (本地存储的签名链接): ``/storage/<token>``.

The token is signed (itsdangerous) with the app's secret and carries the operation, the
key, an expiry (platform clock) and, for downloads, the content hash the link was issued
for: a link stops working when it expires, when it is altered, and when the object under
the key is no longer the same content. With the S3 backend the store itself serves
presigned URLs and this blueprint answers 404.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    has_request_context,
    jsonify,
    request,
    send_file,
    url_for,
)
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeSerializer

from bidding.core.clock import now
from bidding.core.errors import DomainError, ErrorCode, NotFound
from bidding.core.storage.base import _msg
from bidding.core.storage.local import LocalStorage, UrlSigner

SALT = "sunbid.storage.link.v1"
#: Largest part a client may send through a local presigned part URL (as S3: 5 GiB).
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024

bp = Blueprint("sunbid_storage", __name__)


class InvalidLink(DomainError):
    code = ErrorCode.INVALID_TOKEN
    http_status = 403


class LinkExpired(DomainError):
    code = ErrorCode.TOKEN_EXPIRED
    http_status = 403


def _serializer(secret: str | bytes) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=SALT)


def make_url_signer(app: Flask) -> UrlSigner:
    """A signer that turns a payload into ``/storage/<token>`` valid for N seconds."""
    serializer = _serializer(app.config["SECRET_KEY"])

    def sign(payload: dict[str, Any], expires: int) -> str:
        body = dict(payload)
        body["exp"] = int(now().timestamp()) + int(expires)
        token = serializer.dumps(body)
        if has_request_context():
            return url_for("sunbid_storage.transfer", token=token, _external=True)
        if app.config.get("SERVER_NAME"):
            with app.app_context():
                return url_for("sunbid_storage.transfer", token=token, _external=True)
        root = (app.config.get("APPLICATION_ROOT") or "/").rstrip("/")
        return f"{root}/storage/{token}"

    return sign


def load_token(token: str) -> dict[str, Any]:
    """The payload of a valid, unexpired link token, else :class:`InvalidLink` /
    :class:`LinkExpired`."""
    try:
        payload = _serializer(current_app.config["SECRET_KEY"]).loads(token)
    except BadSignature:
        raise InvalidLink(_msg(_l("链接无效或已被篡改。"))) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
        raise InvalidLink(_msg(_l("链接无效或已被篡改。")))
    if now().timestamp() >= payload["exp"]:
        raise LinkExpired(_msg(_l("链接已过期，请重新获取。")))
    return payload


def _local_storage() -> LocalStorage:
    from bidding.core.storage import get_storage

    storage = get_storage()
    if not isinstance(storage, LocalStorage):
        raise NotFound(_msg(_l("请求的资源不存在或您无权查看。")))
    return storage


@bp.route("/storage/<token>", methods=["GET", "PUT"])
def transfer(token: str) -> Any:
    """Download (GET) or upload (PUT) through a signed link."""
    storage = _local_storage()
    payload = load_token(token)
    op = payload.get("op")
    key = str(payload.get("k", ""))
    if request.method == "GET":
        if op != "get":
            raise InvalidLink(_msg(_l("链接无效或已被篡改。")))
        return _download(storage, key, payload)
    if op == "put":
        return _upload(storage, key, payload)
    if op == "part":
        return _upload_part(storage, key, payload)
    raise InvalidLink(_msg(_l("链接无效或已被篡改。")))


def _download(storage: LocalStorage, key: str, payload: dict[str, Any]) -> Response:
    from bidding.core.storage.base import ObjectNotFound

    info = storage.stat(key)
    if payload.get("h") and info.sha256 != payload["h"]:
        # The key now holds other content than the link was issued for.
        raise ObjectNotFound(key)
    filename = payload.get("fn")
    response = send_file(
        storage.path_of(key),
        mimetype=info.content_type,
        as_attachment=bool(filename),
        download_name=filename or None,
        conditional=True,
        etag=info.sha256 or False,
        max_age=0,
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _upload(storage: LocalStorage, key: str, payload: dict[str, Any]) -> Response:
    from bidding.core.storage.base import upload_too_large

    max_size = payload.get("max")
    if max_size is not None:
        request.max_content_length = int(max_size)
    limit = request.max_content_length
    length = request.content_length
    if limit is not None and length is not None and length > limit:
        raise upload_too_large(limit, length)
    info = storage.put(
        key,
        request.stream,
        length=request.content_length,
        content_type=payload.get("ct") or request.mimetype or "application/octet-stream",
        max_size=limit,
        expected_sha256=payload.get("h"),  # a URL bound to declared bytes accepts only them
    )
    response = jsonify({"key": info.key, "size": info.size, "sha256": info.sha256})
    response.headers["ETag"] = f'"{info.etag}"'
    return response


def _upload_part(storage: LocalStorage, key: str, payload: dict[str, Any]) -> Response:
    request.max_content_length = MAX_PART_SIZE
    part = storage.put_part(
        key,
        str(payload.get("u", "")),
        int(payload.get("n", 0)),
        request.stream,
        length=request.content_length,
    )
    response = jsonify({"part_number": part.part_number, "size": part.size})
    response.headers["ETag"] = f'"{part.etag}"'
    return response


def register(app: Flask) -> None:
    """Register the blueprint; signed links carry their own authority, so no CSRF check."""
    from bidding.core.auth import CSRF_EXEMPT_ENDPOINTS

    app.register_blueprint(bp)
    CSRF_EXEMPT_ENDPOINTS.add(f"{bp.name}.transfer")
