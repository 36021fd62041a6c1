"""Accounts pages: sign in and out, user administration, my API tokens."""

from __future__ import annotations

import uuid
from typing import Any

import flask_login
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from bidding.accounts import services
from bidding.accounts.api import client_address, load
from bidding.accounts.models import ApiToken, Organisation, TradingCenter, User
from bidding.core import db
from bidding.core.auth import (
    authorize,
    current_actor,
    forget_actor,
    require_login,
    require_roles,
    safe_next,
)
from bidding.core.errors import DomainError, NotFound, TooManyAttempts
from bidding.core.roles import CENTER_ROLES, Actor, Role

bp = Blueprint("accounts", __name__, template_folder="templates")


def _actor() -> Actor:
    actor = current_actor()
    assert actor is not None
    return actor


# --------------------------------------------------------------------------- sign in/out


def render_login(*, error: str | None = None, status: int = 200, username: str = "") -> Any:
    next_url = safe_next(request.values.get("next"))
    return (
        render_template("accounts/login.html", error=error, next_url=next_url, username=username),
        status,
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        if current_actor() is not None:
            return redirect(safe_next(request.args.get("next")))
        return render_login()
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password:
        return render_login(error=_("请输入用户名和口令。"), status=400, username=username)
    try:
        user = services.authenticate(username, password, client_address())
    except TooManyAttempts as err:
        db.get_session().commit()
        retry = int(err.details.get("retry_after", 60))
        response = render_login(
            error=_("登录失败次数过多，请 %(seconds)s 秒后再试。", seconds=retry),
            status=429,
            username=username,
        )
        return (*response, {"Retry-After": str(retry)})
    except DomainError as err:
        db.get_session().commit()  # the failed attempt must count
        messages = {
            "invalid_credentials": _("用户名或口令不正确。"),
            "account_disabled": _("该账户已停用，请联系交易中心管理员。"),
        }
        return render_login(
            error=messages.get(err.code, err.message), status=err.http_status, username=username
        )
    flask_login.login_user(user)
    forget_actor()
    return redirect(safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Any:
    flask_login.logout_user()
    forget_actor()
    flash(_("您已安全退出。"), "info")
    return redirect(url_for("pages.index"))


# --------------------------------------------------------------------------- user admin


def _admin_centers(actor: Actor) -> list[TradingCenter]:
    return [load(TradingCenter, cid) for cid in sorted(actor.centers_with(Role.CENTER_ADMIN))]


@bp.get("/admin/users")
@require_roles(Role.CENTER_ADMIN)
def admin_users() -> Any:
    actor = _actor()
    centers = _admin_centers(actor)
    users = services.users_of_centers(c.id for c in centers)
    return render_template(
        "accounts/admin_users.html",
        users=users,
        centers=centers,
        organisations=services.all_organisations(),
        roles=list(Role),
        center_roles=CENTER_ROLES,
    )


def _admin_action(action: Any) -> Any:
    """Run one admin change; on refusal, show the message and go back to the list."""
    try:
        message = action()
    except DomainError as err:
        db.get_session().rollback()
        flash(err.message, "danger")
    else:
        flash(message, "success")
    return redirect(url_for("accounts.admin_users"))


@bp.post("/admin/users")
@require_roles(Role.CENTER_ADMIN)
def admin_create_user() -> Any:
    actor = _actor()
    form = request.form

    def act() -> str:
        centers = _admin_centers(actor)
        center = centers[0]
        if form.get("center_id"):
            center = load(TradingCenter, uuid.UUID(form["center_id"]))
            authorize(actor, "center.admin", center)
        org = (
            load(Organisation, uuid.UUID(form["organisation_id"]))
            if form.get("organisation_id")
            else None
        )
        user = services.create_user(
            actor,
            username=form.get("username", ""),
            display_name=form.get("display_name", ""),
            password=form.get("password", ""),
            email=form.get("email") or None,
            phone=form.get("phone") or None,
            center=center,
            organisation=org,
        )
        if form.get("role"):
            role = Role(form["role"])
            if role in CENTER_ROLES:
                services.grant_role(actor, user, role, center=center)
            else:
                services.grant_role(actor, user, role, organisation=org)
        return str(_("已创建用户 %(name)s。", name=user.username))

    return _admin_action(act)


def _managed_user(actor: Actor, user_id: uuid.UUID) -> User:
    user: User = load(User, user_id)
    authorize(actor, "user.manage", user, hide=True)
    return user


@bp.post("/admin/users/<uuid:user_id>/roles")
@require_roles(Role.CENTER_ADMIN)
def admin_grant_role(user_id: uuid.UUID) -> Any:
    actor = _actor()
    user = _managed_user(actor, user_id)
    form = request.form

    def act() -> str:
        try:
            role = Role(form.get("role", ""))
        except ValueError:
            return services.grant_role(actor, user, form.get("role", "")).role.value
        if role in CENTER_ROLES:
            center = load(TradingCenter, user.center_id) if user.center_id else None
            if center is not None:
                authorize(actor, "center.admin", center)
            services.grant_role(actor, user, role, center=center)
        else:
            org_id = form.get("organisation_id") or (
                str(user.organisation_id) if user.organisation_id else ""
            )
            org = load(Organisation, uuid.UUID(org_id)) if org_id else None
            services.grant_role(actor, user, role, organisation=org)
        return str(_("已为 %(name)s 授予角色。", name=user.username))

    return _admin_action(act)


@bp.post("/admin/users/<uuid:user_id>/roles/<uuid:grant_id>/revoke")
@require_roles(Role.CENTER_ADMIN)
def admin_revoke_role(user_id: uuid.UUID, grant_id: uuid.UUID) -> Any:
    actor = _actor()
    user = _managed_user(actor, user_id)

    def act() -> str:
        services.revoke_role(actor, services.grant_by_id(user, grant_id))
        return str(_("已撤销 %(name)s 的角色。", name=user.username))

    return _admin_action(act)


@bp.post("/admin/users/<uuid:user_id>/active")
@require_roles(Role.CENTER_ADMIN)
def admin_set_active(user_id: uuid.UUID) -> Any:
    actor = _actor()
    user = _managed_user(actor, user_id)
    active = request.form.get("active") == "1"

    def act() -> str:
        services.set_user_active(actor, user, active)
        if active:
            return str(_("已启用用户 %(name)s。", name=user.username))
        return str(_("已停用用户 %(name)s。", name=user.username))

    return _admin_action(act)


# --------------------------------------------------------------------------- my tokens


@bp.get("/account/tokens")
@require_login
def tokens() -> Any:
    actor = _actor()
    user: User = load(User, actor.id)
    return render_template(
        "accounts/tokens.html",
        tokens=services.tokens_of(user),
        roles=sorted(user.roles),
        new_secret=None,
    )


@bp.post("/account/tokens")
@require_login
def create_token() -> Any:
    actor = _actor()
    user: User = load(User, actor.id)
    scopes = request.form.getlist("scopes") or None
    try:
        issued = services.issue_token(actor, user, scopes=scopes, name=request.form.get("name", ""))
    except DomainError as err:
        db.get_session().rollback()
        flash(err.message, "danger")
        return redirect(url_for("accounts.tokens"))
    # Shown once, on this response only; never stored in clear.
    response = render_template(
        "accounts/tokens.html",
        tokens=services.tokens_of(user),
        roles=sorted(user.roles),
        new_secret=issued.secret,
    )
    return response, 201, {"Cache-Control": "no-store"}


@bp.post("/account/tokens/<uuid:token_id>/revoke")
@require_login
def revoke_token(token_id: uuid.UUID) -> Any:
    actor = _actor()
    token: ApiToken = load(ApiToken, token_id)
    if token.user_id != actor.id:
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    services.revoke_token(actor, token)
    flash(_("令牌已吊销。"), "success")
    return redirect(url_for("accounts.tokens"))
