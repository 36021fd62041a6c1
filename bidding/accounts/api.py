"""The accounts API (``/api/v1``): tokens, ``me``, users, organisations, centers."""

from __future__ import annotations

import uuid
from typing import Any

from apiflask import APIBlueprint
from flask import request
from flask_babel import gettext as _

from bidding.accounts import services
from bidding.accounts.models import (
    ApiToken,
    Organisation,
    OrganisationKind,
    RoleGrant,
    TradingCenter,
    User,
)
from bidding.accounts.schemas import (
    CenterOut,
    GrantIn,
    GrantOut,
    MeOut,
    OrganisationIn,
    OrganisationOut,
    OrganisationQuery,
    TokenOut,
    TokenRequest,
    UserIn,
    UserOut,
    UserPatch,
)
from bidding.core import db
from bidding.core.auth import authorize, current_actor, require_roles, token_auth
from bidding.core.clock import now
from bidding.core.errors import BadRequest, DomainError, NotFound, RuleViolation
from bidding.core.pagination import PageQuery, page_schema
from bidding.core.roles import CENTER_SIDE, Actor, Role

bp = APIBlueprint("accounts_api", __name__, url_prefix="/api/v1", tag="Accounts")

_FORBIDDEN = {403: "forbidden: the caller lacks the role or scope"}


def client_address() -> str:
    """The caller's address (``ProxyFix`` in the app sets ``remote_addr`` behind proxies)."""
    return request.remote_addr or "unknown"


def load(model: type[Any], object_id: uuid.UUID) -> Any:
    obj = db.get_session().get(model, object_id)
    if obj is None:
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    return obj


def _actor() -> Actor:
    actor = current_actor()
    assert actor is not None  # guaranteed by auth_required
    return actor


# --------------------------------------------------------------------------- serialisers


def grant_dict(g: RoleGrant) -> dict[str, Any]:
    scope = (
        g.center.name if g.center is not None else (g.organisation.name if g.organisation else "")
    )
    return {
        "id": g.id,
        "role": g.role.value,
        "center_id": g.center_id,
        "organisation_id": g.organisation_id,
        "scope_name": scope,
    }


def user_dict(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "email": u.email,
        "phone": u.phone,
        "active": u.active,
        "locale": u.locale,
        "center_id": u.center_id,
        "organisation_id": u.organisation_id,
        "roles": [grant_dict(g) for g in u.grants],
        "created_at": u.created_at,
        "last_login_at": u.last_login_at,
    }


def center_ref(c: TradingCenter) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "region_code": c.region_code}


def center_dict(c: TradingCenter) -> dict[str, Any]:
    today = now().date()
    partners = [
        {
            "id": p.id,
            "center": center_ref(p.other(c.id)),
            "scope": p.scope.value,
            "since": p.since.isoformat(),
            "until": p.until.isoformat() if p.until else None,
            "active": p.active_on(today),
        }
        for p in services.partnerships_of(c)
    ]
    return {**center_ref(c), "partners": partners}


# --------------------------------------------------------------------------- tokens


@bp.post("/auth/token")
@bp.input(TokenRequest, arg_name="body")
@bp.output(TokenOut, status_code=201)
@bp.doc(
    summary="Get an API token with a username and password",
    description="Failures are throttled per account and per address (429 with Retry-After).",
    responses={401: "invalid_credentials", 403: "account_disabled", 429: "too_many_attempts"},
    security=[],
)
def create_token(body: dict[str, Any]) -> Any:
    try:
        user = services.authenticate(body["username"], body["password"], client_address())
    except DomainError:
        # The failure must count even though this request is refused and rolled back.
        db.get_session().commit()
        raise
    issued = services.issue_token(
        services.actor_for_user(user), user, scopes=body.get("scopes"), name=body.get("name", "")
    )
    return {
        "token": issued.secret,
        "token_id": issued.token.id,
        "prefix": issued.token.prefix,
        "expires_at": issued.token.expires_at,
        "roles": issued.token.scopes,
    }


@bp.delete("/auth/token")
@bp.auth_required(token_auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Revoke the token this request carries")
def delete_token() -> Any:
    actor = _actor()
    if actor.token_id is None:
        raise BadRequest(_("此请求未使用访问令牌。"))
    services.revoke_token(actor, load(ApiToken, actor.token_id))
    return ""


# --------------------------------------------------------------------------- me


@bp.get("/me")
@bp.auth_required(token_auth)
@bp.output(MeOut)
@bp.doc(summary="The signed-in user, the roles usable in this request, organisation and center")
def me() -> Any:
    actor = _actor()
    user: User = load(User, actor.id)
    usable = {g.id for g in actor.grants}
    token = None
    if actor.token_id is not None:
        t: ApiToken = load(ApiToken, actor.token_id)
        token = {
            "id": t.id,
            "prefix": t.prefix,
            "name": t.name,
            "scopes": t.scopes,
            "created_at": t.created_at,
            "expires_at": t.expires_at,
            "last_used_at": t.last_used_at,
        }
    org = user.organisation
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "phone": user.phone,
        "locale": user.locale,
        "roles": [grant_dict(g) for g in user.grants if g.id in usable],
        "organisation": org,
        "center": center_ref(user.center) if user.center else None,
        "via": actor.via,
        "token": token,
    }


# --------------------------------------------------------------------------- users


def _admin_center(actor: Actor, center_id: uuid.UUID | None) -> TradingCenter:
    centers = actor.centers_with(Role.CENTER_ADMIN)
    if center_id is None:
        if len(centers) != 1:
            raise RuleViolation(_("您管理多个交易中心，请指定 center_id。"),
                                details={"field": "center_id"})  # fmt: skip
        center_id = next(iter(centers))
    center: TradingCenter = load(TradingCenter, center_id)
    authorize(actor, "center.admin", center)
    return center


@bp.get("/users")
@bp.auth_required(token_auth)
@require_roles(Role.CENTER_ADMIN)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(page_schema(UserOut))
@bp.doc(summary="Users of the centers you administer (center_admin)", responses=_FORBIDDEN)
def list_users(query: dict[str, Any]) -> Any:
    actor = _actor()
    page = services.users_page(
        cursor=query.get("cursor"),
        limit=query["limit"],
        center_ids=actor.centers_with(Role.CENTER_ADMIN),
    )
    return {"items": [user_dict(u) for u in page.items], "next_cursor": page.next_cursor}


def _scope_objects(
    role: str, center_id: uuid.UUID | None, organisation_id: uuid.UUID | None
) -> tuple[TradingCenter | None, Organisation | None]:
    center = load(TradingCenter, center_id) if center_id else None
    org = load(Organisation, organisation_id) if organisation_id else None
    return center, org


@bp.post("/users")
@bp.auth_required(token_auth)
@require_roles(Role.CENTER_ADMIN)
@bp.input(UserIn, arg_name="body")
@bp.output(UserOut, status_code=201)
@bp.doc(
    summary="Create a user in your center, optionally with roles (center_admin)",
    responses={**_FORBIDDEN, 409: "duplicate_username", 422: "weak_password, invalid_role"},
)
def create_user(body: dict[str, Any]) -> Any:
    actor = _actor()
    center = _admin_center(actor, body.get("center_id"))
    org = load(Organisation, body["organisation_id"]) if body.get("organisation_id") else None
    user = services.create_user(
        actor,
        username=body["username"],
        display_name=body["display_name"],
        password=body["password"],
        email=body.get("email"),
        phone=body.get("phone"),
        locale=body.get("locale", "zh_CN"),
        center=center,
        organisation=org,
    )
    for g in body.get("roles") or []:
        _grant(actor, user, g)
    return user_dict(user)


def _grant(actor: Actor, user: User, g: dict[str, Any]) -> RoleGrant:
    role = Role(g["role"])
    center_id = g.get("center_id")
    if role in (Role.CENTER_ADMIN, Role.CENTER_STAFF, Role.SUPERVISOR, Role.EXPERT):
        center_id = center_id or user.center_id
    center, org = _scope_objects(role, center_id, g.get("organisation_id"))
    if center is not None:
        authorize(actor, "center.admin", center)
    return services.grant_role(actor, user, role, center=center, organisation=org)


@bp.patch("/users/<uuid:user_id>")
@bp.auth_required(token_auth)
@require_roles(Role.CENTER_ADMIN)
@bp.input(UserPatch, arg_name="body")
@bp.output(UserOut)
@bp.doc(
    summary="Change a user's profile, password or active flag (center_admin)",
    responses={**_FORBIDDEN, 404: "not_found", 409: "last_center_admin", 422: "weak_password"},
)
def patch_user(user_id: uuid.UUID, body: dict[str, Any]) -> Any:
    actor = _actor()
    user: User = load(User, user_id)
    authorize(actor, "user.manage", user, hide=True)
    profile = {k: body[k] for k in ("display_name", "email", "phone", "locale") if k in body}
    if profile:
        services.update_user(actor, user, **profile)
    if "password" in body:
        services.set_password(actor, user, body["password"])
    if "active" in body:
        services.set_user_active(actor, user, body["active"])
    return user_dict(user)


@bp.post("/users/<uuid:user_id>/roles")
@bp.auth_required(token_auth)
@require_roles(Role.CENTER_ADMIN)
@bp.input(GrantIn, arg_name="body")
@bp.output(GrantOut, status_code=201)
@bp.doc(
    summary="Grant a role within a center or an organisation (center_admin)",
    responses={**_FORBIDDEN, 404: "not_found", 422: "invalid_role"},
)
def grant_role(user_id: uuid.UUID, body: dict[str, Any]) -> Any:
    actor = _actor()
    user: User = load(User, user_id)
    authorize(actor, "user.manage", user, hide=True)
    return grant_dict(_grant(actor, user, body))


@bp.delete("/users/<uuid:user_id>/roles/<uuid:grant_id>")
@bp.auth_required(token_auth)
@require_roles(Role.CENTER_ADMIN)
@bp.output({}, status_code=204)
@bp.doc(
    summary="Revoke a role grant (center_admin)",
    responses={**_FORBIDDEN, 404: "not_found", 409: "last_center_admin"},
)
def revoke_role(user_id: uuid.UUID, grant_id: uuid.UUID) -> Any:
    actor = _actor()
    user: User = load(User, user_id)
    authorize(actor, "user.manage", user, hide=True)
    services.revoke_role(actor, services.grant_by_id(user, grant_id))
    return ""


# --------------------------------------------------------------------------- organisations


@bp.get("/organisations")
@bp.auth_required(token_auth)
@require_roles(*CENTER_SIDE)
@bp.input(OrganisationQuery, location="query", arg_name="query")
@bp.output(page_schema(OrganisationOut))
@bp.doc(
    summary="Registered organisations (center_admin, center_staff, supervisor)",
    responses=_FORBIDDEN,
)
def list_organisations(query: dict[str, Any]) -> Any:
    kind = OrganisationKind(query["kind"]) if query.get("kind") else None
    page = services.organisations_page(cursor=query.get("cursor"), limit=query["limit"], kind=kind)
    return {"items": page.items, "next_cursor": page.next_cursor}


@bp.post("/organisations")
@bp.auth_required(token_auth)
@require_roles(Role.CENTER_ADMIN, Role.CENTER_STAFF)
@bp.input(OrganisationIn, arg_name="body")
@bp.output(OrganisationOut, status_code=201)
@bp.doc(
    summary="Register an organisation by its unified social credit code (center staff)",
    responses={**_FORBIDDEN, 409: "duplicate_organisation", 422: "invalid_credit_code"},
)
def create_organisation(body: dict[str, Any]) -> Any:
    actor = _actor()
    center = load(TradingCenter, body["center_id"]) if body.get("center_id") else None
    authorize(actor, "organisation.create", center)
    return services.create_organisation(
        actor,
        name=body["name"],
        kind=body["kind"],
        credit_code=body["credit_code"],
        center=center,
    )


# --------------------------------------------------------------------------- centers


@bp.get("/centers")
@bp.auth_required(token_auth)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(page_schema(CenterOut))
@bp.doc(summary="Trading centers and their partner centers")
def list_centers(query: dict[str, Any]) -> Any:
    page = services.centers_page(cursor=query.get("cursor"), limit=query["limit"])
    return {"items": [center_dict(c) for c in page.items], "next_cursor": page.next_cursor}


@bp.get("/centers/<uuid:center_id>")
@bp.auth_required(token_auth)
@bp.output(CenterOut)
@bp.doc(summary="One trading center with its partner centers", responses={404: "not_found"})
def get_center(center_id: uuid.UUID) -> Any:
    return center_dict(load(TradingCenter, center_id))
