"""Authentication and authorisation (身份认证与授权) for every view.

* Browser pages: Flask-Login sessions (session protection "strong"; cookie flags from the
  settings in ``bidding.app``). Every form post carries a CSRF token (Flask-WTF).
* API (``/api/v1``): ``Authorization: Bearer <token>``. A bearer request carries no
  ambient credential, so it needs no CSRF token; a browser script may also call the API
  with its session cookie, and then a state-changing call must send ``X-CSRFToken``.

The acting party is resolved once per request into ``g.actor``; read it with
:func:`current_actor`. Gate views with :func:`require_login` / :func:`require_roles`, and
check access to an object with :func:`authorize`, e.g.::

    @bp.post("/sections/<uuid:section_id>/publish")
    @bp.auth_required(token_auth)
    def publish(section_id):
        section = load_or_404(Section, section_id)
        actor = authorize(current_actor(), "section.publish", section)
        ...

Permissions are registered by name with :func:`register_permission`; :func:`scoped_to`
builds the common check "holds one of these roles in the object's center or organisation".
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import urlsplit

import flask_babel
import flask_login
from apiflask import HTTPTokenAuth
from flask import Flask, current_app, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect

from bidding.core.errors import DomainError, ErrorCode, Forbidden, NotFound, NotSignedIn
from bidding.core.roles import CENTER_SIDE, Actor, Role

__all__ = [
    "Actor",
    "Role",
    "authorize",
    "can",
    "csrf",
    "current_actor",
    "init_app",
    "login_manager",
    "register_permission",
    "require_login",
    "require_roles",
    "scoped_to",
    "token_auth",
]

P = ParamSpec("P")
R = TypeVar("R")

login_manager = LoginManager()
csrf = CSRFProtect()


class _BearerOrSessionAuth(HTTPTokenAuth):
    """Bearer tokens as documented in OpenAPI; a browser script's session is accepted too
    (its state-changing calls need the CSRF header)."""

    def authenticate(self, auth: Any, stored_password: Any) -> Actor | None:
        return current_actor()


token_auth = _BearerOrSessionAuth(
    scheme="Bearer",
    description="API token from POST /api/v1/auth/token: `Authorization: Bearer sbt_…`",
)

#: Endpoints that take no ambient credential and so need no CSRF token.
CSRF_EXEMPT_ENDPOINTS: set[str] = {"accounts_api.create_token"}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
LOGIN_ENDPOINT = "accounts.login"


def init_app(app: Flask) -> None:
    """Wire Flask-Login, CSRF protection and the bearer-token scheme into ``app``."""
    login_manager.init_app(app)
    login_manager.session_protection = "strong"
    login_manager.user_loader(_load_session_user)
    login_manager.unauthorized_handler(_unauthorized)
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked in _csrf_check
    app.config.setdefault("WTF_CSRF_HEADERS", ["X-CSRFToken", "X-CSRF-Token"])
    csrf.init_app(app)
    app.before_request(_fresh_request)
    app.before_request(_csrf_check)
    app.before_request(_session_locale)
    app.register_error_handler(CSRFError, _csrf_error)
    app.context_processor(lambda: {"current_actor": current_actor})


# --------------------------------------------------------------------------- resolution


def _load_session_user(user_id: str) -> Any:
    from bidding.accounts.services import load_session_user

    return load_session_user(user_id)


def _bearer_header() -> str | None:
    header = request.headers.get("Authorization")
    return header if header else None


def _resolve_actor() -> Actor | None:
    from bidding.accounts import services

    header = _bearer_header()
    if header is not None:
        scheme, _sep, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise services.TokenError(
                _("请在 Authorization 头中使用 Bearer 令牌。"), code=ErrorCode.INVALID_TOKEN
            )
        token = services.resolve_token(value.strip())
        return services.actor_for_token(token)
    user = flask_login.current_user
    if user is not None and user.is_authenticated:
        return services.actor_for_user(user._get_current_object())
    return None


def current_actor() -> Actor | None:
    """The acting party of this request (``None`` when anonymous), resolved once into
    ``g.actor``. A malformed, expired or revoked bearer token raises its ``DomainError``
    (401). Tests may set ``g.actor`` in a ``before_request`` hook to act as anyone.
    """
    if "actor" not in g:
        g.actor = _resolve_actor()
    return cast(Actor | None, g.actor)


def forget_actor() -> None:
    """Drop the cached actor (after signing in or out within a request)."""
    g.pop("actor", None)


def _fresh_request() -> None:
    # ``g`` belongs to the app context, which tests keep pushed across requests: start
    # every request without a previous request's actor or Flask-Login user.
    g.pop("actor", None)
    g.pop("_login_user", None)
    g.pop("user_locale", None)
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    flask_babel.refresh()


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def _session_locale() -> None:
    if _bearer_header() is None and "_user_id" in session:
        actor = current_actor()
        if actor is not None:
            g.user_locale = actor.locale


# --------------------------------------------------------------------------- CSRF


def _csrf_check() -> None:
    if request.method in _SAFE_METHODS:
        return
    if request.routing_exception is not None:
        return  # 404/405: nothing will run, let the routing error answer
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if _bearer_header() is not None:
        return  # the token is not sent by the browser on its own: no forgery possible
    if request.endpoint in CSRF_EXEMPT_ENDPOINTS:
        return
    if is_api_request():
        user = flask_login.current_user
        if user is None or not user.is_authenticated:
            return  # anonymous API call: nothing ambient to abuse
    csrf.protect()


def _csrf_error(err: CSRFError) -> Any:
    from flask import render_template

    from bidding.app import _json_error

    message = _("页面已过期或缺少安全校验码，请刷新页面后重新提交。")
    if is_api_request() or request.accept_mimetypes.best == "application/json":
        return _json_error(ErrorCode.CSRF_FAILED, message, 400)
    if request.endpoint == LOGIN_ENDPOINT:
        return render_template("accounts/login.html", error=message, next_url=""), 400
    return render_template("errors.html", code=ErrorCode.CSRF_FAILED, message=message), 400


# --------------------------------------------------------------------------- gates


def _unauthorized() -> Any:
    if is_api_request():
        raise NotSignedIn(_("请先登录或提供有效的访问令牌。"))
    return redirect(url_for(LOGIN_ENDPOINT, next=_safe_next(request.full_path)))


def _safe_next(target: str | None) -> str:
    """A same-site path to return to after sign-in, never an absolute URL."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target.rstrip("?") or "/"


safe_next = _safe_next


def require_login(view: Callable[P, R]) -> Callable[P, R]:
    """Refuse anonymous callers: 401 ``not_signed_in`` (API) or a redirect to the login page."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if current_actor() is None:
            return cast(R, _unauthorized())
        return view(*args, **kwargs)

    return wrapper


def require_roles(*roles: Role | str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse callers holding none of ``roles`` (in any scope): 403 ``forbidden``.

    Object-level checks (the role in *this* object's center) still belong in
    :func:`authorize`.
    """
    wanted = tuple(Role(r) for r in roles)

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            actor = current_actor()
            if actor is None:
                return cast(R, _unauthorized())
            if not actor.has_role(*wanted):
                raise Forbidden(
                    _("您没有执行此操作的权限。"),
                    details={"required_roles": [r.value for r in wanted]},
                )
            return view(*args, **kwargs)

        return wrapper

    return decorator


# --------------------------------------------------------------------------- permissions

PermissionCheck = Callable[[Actor, Any], bool]
_PERMISSIONS: dict[str, PermissionCheck] = {}


def register_permission(name: str) -> Callable[[PermissionCheck], PermissionCheck]:
    """Register ``check(actor, obj) -> bool`` as permission ``name`` (e.g. ``section.edit``)."""

    def decorator(check: PermissionCheck) -> PermissionCheck:
        _PERMISSIONS[name] = check
        return check

    return decorator


def scoped_to(*roles: Role | str) -> PermissionCheck:
    """A check: the actor holds one of ``roles`` in ``obj.center_id`` or ``obj.organisation_id``.

    ``obj`` may also be the center or organisation itself (its own ``id`` is then the scope,
    told apart by ``obj.__tablename__``).
    """
    wanted = tuple(Role(r) for r in roles)

    def check(actor: Actor, obj: Any) -> bool:
        table = getattr(obj, "__tablename__", "")
        center_id = obj.id if table == "trading_centers" else getattr(obj, "center_id", None)
        org_id = obj.id if table == "organisations" else getattr(obj, "organisation_id", None)
        return actor.has_role_at(wanted, center_id=center_id, organisation_id=org_id)

    return check


def can(actor: Actor | None, permission: str, obj: Any = None) -> bool:
    """Whether ``actor`` has ``permission`` on ``obj`` (unknown permission: a bug, KeyError)."""
    check = _PERMISSIONS[permission]
    return actor is not None and check(actor, obj)


def authorize(
    actor: Actor | None, permission: str, obj: Any = None, *, hide: bool = False
) -> Actor:
    """Return ``actor`` if it has ``permission`` on ``obj``; otherwise refuse with 401
    (anonymous), 403 ``forbidden``, or 404 ``not_found`` when ``hide`` (the object's
    existence is itself confidential)."""
    if actor is None:
        raise NotSignedIn(_("请先登录或提供有效的访问令牌。"))
    if not can(actor, permission, obj):
        if hide:
            raise NotFound(_("请求的资源不存在或您无权查看。"))
        raise Forbidden(_("您没有执行此操作的权限。"), details={"permission": permission})
    return actor


def refusal(err: DomainError) -> dict[str, Any]:
    return err.to_dict()


# Permissions of the accounts domain (the platform's own objects).
register_permission("user.manage")(scoped_to(Role.CENTER_ADMIN))
register_permission("organisation.view_all")(lambda actor, _obj: actor.has_role(*CENTER_SIDE))
register_permission("organisation.create")(
    lambda actor, _obj: actor.has_role(Role.CENTER_ADMIN, Role.CENTER_STAFF)
)
register_permission("center.view")(lambda _actor, _obj: True)
register_permission("center.admin")(scoped_to(Role.CENTER_ADMIN))
