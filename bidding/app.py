"""The application factory (应用工厂): the one place that wires every part together."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from apiflask import APIFlask
from apiflask.exceptions import HTTPError
from flask import Flask, Response, g, has_request_context, jsonify, render_template, request
from flask_babel import Babel, gettext
from werkzeug.exceptions import HTTPException

from bidding.config import Settings
from bidding.core import db
from bidding.core.errors import DomainError, ErrorCode

log = logging.getLogger(__name__)

#: Domain packages wired in order; each exposes ``init_app(app)``.
DOMAINS: tuple[str, ...] = (
    "bidding.core.tasks",
    "bidding.core.storage",
    "bidding.accounts",
    "bidding.core.audit",
    "bidding.core.health",
    "bidding.core.pages",
    "bidding.projects",
    "bidding.bids",
    "bidding.opening",
    "bidding.notifications",
    "bidding.core.realtime",
)

_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.NOT_SIGNED_IN,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    412: ErrorCode.PRECONDITION_FAILED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    422: ErrorCode.VALIDATION_ERROR,
    429: ErrorCode.TOO_MANY_ATTEMPTS,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}

LANGUAGES = ("zh_CN", "en")


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the platform app from ``settings`` (default: the ``SUNBID_*`` environment)."""
    settings = settings or Settings.from_env(**overrides)
    app = APIFlask(
        "bidding",
        title="Sunbid API",
        version="1",
        spec_path="/api/openapi.json",
        docs_path="/api/docs",
        docs_oauth2_redirect_path=None,
    )
    app.extensions["sunbid_settings"] = settings
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_mb * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        BABEL_DEFAULT_LOCALE=settings.default_locale,
        BABEL_DEFAULT_TIMEZONE="Asia/Shanghai",
        WTF_CSRF_TIME_LIMIT=None,
        JSON_SORT_KEYS=False,
        # API docs work offline: Swagger UI is served from our own static/vendor folder.
        SWAGGER_UI_CSS="/static/vendor/swagger-ui/swagger-ui.css",
        SWAGGER_UI_BUNDLE_JS="/static/vendor/swagger-ui/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS="/static/vendor/swagger-ui/swagger-ui-standalone-preset.js",
        DOCS_FAVICON="/static/favicon.svg",
        INFO={
            "description": "Sunbid public-resource trading platform API (公共资源交易平台接口). "
            "Errors are JSON objects {code, message, details}.",
        },
    )
    if settings.proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    settings.instance_dir.mkdir(parents=True, exist_ok=True)
    db.configure(settings.database_url)

    Babel(app, locale_selector=_select_locale, timezone_selector=lambda: "Asia/Shanghai")
    _install_transaction_wrapper(app)
    _install_error_handlers(app)
    _install_security_headers(app)

    for name in DOMAINS:
        module = importlib.import_module(name)
        module.init_app(app)
    return app


def settings_of(app: Flask) -> Settings:
    """The validated settings the app was built with."""
    settings: Settings = app.extensions["sunbid_settings"]
    return settings


def _select_locale() -> str:
    if not has_request_context():  # sweeps, tasks, CLI: the platform's default language
        return "zh_CN"
    wanted = request.args.get("lang") or request.cookies.get("lang")
    if wanted in LANGUAGES:
        return wanted
    user_locale = getattr(g, "user_locale", None)
    if user_locale in LANGUAGES:
        return str(user_locale)
    best = request.accept_languages.best_match(["zh_CN", "zh", "en"])
    if best == "en":
        return "en"
    return "zh_CN"


def _install_transaction_wrapper(app: Flask) -> None:
    """One transaction per request: commit on success (< 400), roll back otherwise."""

    @app.after_request
    def _commit(response: Response) -> Response:
        if not db.session.registry.has():
            return response
        s = db.session()
        if response.status_code < 400:
            try:
                s.commit()
            except Exception:
                s.rollback()
                log.exception("commit failed")
                return _json_error(
                    ErrorCode.INTERNAL_ERROR, gettext("服务器内部错误，请稍后重试。"), 500
                )
        else:
            s.rollback()
        return response

    @app.teardown_request
    def _close(exc: BaseException | None) -> None:
        if exc is not None and db.session.registry.has():
            db.session().rollback()
        db.end_scope()


def _wants_json() -> bool:
    if request.path.startswith("/api/") or request.path == "/healthz":
        return True
    if request.path.startswith("/storage/") and request.method == "PUT":
        return True  # presigned uploads are client traffic (the local store's S3 stand-in)
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _json_error(code: str, message: str, status: int, details: Any = None) -> Response:
    body: dict[str, Any] = {"code": str(code), "message": message}
    if details:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    return response


def _install_error_handlers(app: APIFlask) -> None:
    from flask_babel import gettext as _

    @app.errorhandler(DomainError)
    def _domain_error(err: DomainError) -> Any:
        if db.session.registry.has():
            db.session().rollback()
        if _wants_json():
            response = jsonify(err.to_dict())
            response.status_code = err.http_status
            if err.http_status == 429 and "retry_after" in err.details:
                response.headers["Retry-After"] = str(err.details["retry_after"])
            return response
        return (
            render_template("errors.html", code=err.code, message=err.message),
            err.http_status,
        )

    @app.error_processor
    def _api_error(err: HTTPError) -> Any:
        # APIFlask validation and abort() errors, in the platform's error shape.
        status = err.status_code
        code = _HTTP_CODES.get(status, ErrorCode.INTERNAL_ERROR)
        details: Any = err.detail or None
        message = err.message or ""
        if status == 422:
            code = ErrorCode.VALIDATION_ERROR
            message = _("提交的数据不符合要求，请按 details 中列出的字段更正后重试。")
        if status == 400 and isinstance(details, dict) and "json" in str(details).lower():
            code = ErrorCode.MALFORMED_JSON
        if err.extra_data and "code" in err.extra_data:
            code = err.extra_data["code"]
        return _json_error(code, message or _("请求有误。"), status, details), status, err.headers

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Any:
        status = err.code or 500
        code = _HTTP_CODES.get(status, ErrorCode.INTERNAL_ERROR)
        messages = {
            400: _("请求格式有误，请检查后重试。"),
            404: _("请求的资源不存在或您无权查看。"),
            405: _("不支持该请求方法。"),
            413: _("上传内容超过平台允许的大小。"),
        }
        message = messages.get(status, err.description or "")
        parser_data = getattr(err, "data", None)  # webargs: {"messages": {"json": [...]}}
        parser_messages = parser_data.get("messages") if isinstance(parser_data, dict) else None
        if status == 400 and (
            "json" in (err.description or "").lower()
            or (isinstance(parser_messages, dict) and "json" in parser_messages)
        ):
            code = ErrorCode.MALFORMED_JSON
            message = _("请求体不是合法的 JSON，请检查格式后重试。")
        if _wants_json():
            return _json_error(code, message, status)
        return render_template("errors.html", code=code, message=message), status

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Any:
        log.exception("unhandled error", exc_info=err)
        if db.session.registry.has():
            db.session().rollback()
        message = _("服务器内部错误，请稍后重试；如持续出现请联系交易中心。")
        if _wants_json():
            return _json_error(ErrorCode.INTERNAL_ERROR, message, 500)
        return render_template("errors.html", code="internal_error", message=message), 500


def _install_security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; "
            "frame-ancestors 'none'",
        )
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if settings_of(app).secure_cookies:
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
