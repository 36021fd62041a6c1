"""Request and response schemas of the accounts API (OpenAPI documents them all)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import UUID, Boolean, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from bidding.accounts.models import OrganisationKind
from bidding.core.roles import Role

ROLE_VALUES = [r.value for r in Role]
KIND_VALUES = [k.value for k in OrganisationKind]


class UTCDateTime(DateTime):
    """ISO 8601 in UTC with a ``Z``."""

    def _serialize(self, value, attr, obj, **kwargs):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        from bidding.core.clock import isoformat_z

        return isoformat_z(value)


class TokenRequest(Schema):
    username = String(required=True, validate=Length(1, 64))
    password = String(required=True, validate=Length(1, 256), load_only=True)
    name = String(
        load_default="",
        validate=Length(0, 100),
        metadata={"description": "label shown in the token list"},
    )
    scopes = List(
        String(validate=OneOf(ROLE_VALUES)),
        load_default=None,
        metadata={"description": "roles the token may use; default: all you hold"},
    )


class TokenOut(Schema):
    token = String(required=True, metadata={"description": "shown once; send as Bearer token"})
    token_id = UUID(required=True)
    prefix = String(required=True)
    expires_at = UTCDateTime(required=True)
    roles = List(String(), required=True, metadata={"description": "the token's scopes"})


class CenterRef(Schema):
    id = UUID(required=True)
    name = String(required=True)
    region_code = String(required=True)


class OrganisationOut(Schema):
    id = UUID(required=True)
    name = String(required=True)
    kind = String(required=True, metadata={"enum": KIND_VALUES})
    credit_code = String(required=True)
    center_id = UUID(allow_none=True)
    created_at = UTCDateTime()


class OrganisationIn(Schema):
    name = String(required=True, validate=Length(1, 200))
    kind = String(required=True, validate=OneOf(KIND_VALUES))
    credit_code = String(
        required=True,
        validate=Length(1, 40),
        metadata={"description": "统一社会信用代码 (GB 32100-2015)"},
    )
    center_id = UUID(load_default=None)


class OrganisationQuery(Schema):
    cursor = String(load_default=None)
    limit = Integer(load_default=50, validate=Range(min=1, max=100))
    kind = String(load_default=None, validate=OneOf(KIND_VALUES))


class GrantOut(Schema):
    id = UUID(required=True)
    role = String(required=True, metadata={"enum": ROLE_VALUES})
    center_id = UUID(allow_none=True)
    organisation_id = UUID(allow_none=True)
    scope_name = String(metadata={"description": "name of the center or organisation"})


class GrantIn(Schema):
    role = String(required=True, validate=OneOf(ROLE_VALUES))
    center_id = UUID(load_default=None)
    organisation_id = UUID(load_default=None)


# APIFlask 3.1 registers a schema class twice (``X`` and ``X1``, with a warning) when it is
# both nested and a top-level body; nested uses get subclasses of their own.
class UserGrant(GrantOut):
    pass


class NewUserGrant(GrantIn):
    pass


class MyOrganisation(OrganisationOut):
    pass


class UserOut(Schema):
    id = UUID(required=True)
    username = String(required=True)
    display_name = String(required=True)
    email = String(allow_none=True)
    phone = String(allow_none=True)
    active = Boolean(required=True)
    locale = String(required=True)
    center_id = UUID(allow_none=True)
    organisation_id = UUID(allow_none=True)
    roles = List(Nested(UserGrant), required=True)
    created_at = UTCDateTime()
    last_login_at = UTCDateTime(allow_none=True)


class UserIn(Schema):
    username = String(required=True, validate=Length(3, 64))
    display_name = String(required=True, validate=Length(1, 100))
    password = String(required=True, validate=Length(1, 256), load_only=True)
    email = String(load_default=None, validate=Length(0, 254))
    phone = String(load_default=None, validate=Length(0, 32))
    locale = String(load_default="zh_CN", validate=OneOf(["zh_CN", "en"]))
    center_id = UUID(
        load_default=None, metadata={"description": "default: the center you administer"}
    )
    organisation_id = UUID(load_default=None)
    roles = List(Nested(NewUserGrant), load_default=list)


class UserPatch(Schema):
    display_name = String(validate=Length(1, 100))
    email = String(allow_none=True, validate=Length(0, 254))
    phone = String(allow_none=True, validate=Length(0, 32))
    locale = String(validate=OneOf(["zh_CN", "en"]))
    active = Boolean()
    password = String(validate=Length(1, 256), load_only=True)


class TokenInfo(Schema):
    id = UUID(required=True)
    prefix = String(required=True)
    name = String()
    scopes = List(String(), required=True)
    created_at = UTCDateTime()
    expires_at = UTCDateTime(required=True)
    last_used_at = UTCDateTime(allow_none=True)


class MeOut(Schema):
    id = UUID(required=True)
    username = String(required=True)
    display_name = String(required=True)
    email = String(allow_none=True)
    phone = String(allow_none=True)
    locale = String(required=True)
    roles = List(
        Nested(UserGrant),
        required=True,
        metadata={"description": "grants usable in this request (a token's scopes apply)"},
    )
    organisation = Nested(MyOrganisation, allow_none=True)
    center = Nested(CenterRef, allow_none=True)
    via = String(required=True, metadata={"enum": ["session", "token"]})
    token = Nested(TokenInfo, allow_none=True)


class PartnerOut(Schema):
    id = UUID(required=True, metadata={"description": "partnership id"})
    center = Nested(CenterRef, required=True)
    scope = String(required=True)
    since = String(required=True)
    until = String(allow_none=True)
    active = Boolean(required=True)


class CenterOut(Schema):
    id = UUID(required=True)
    name = String(required=True)
    region_code = String(required=True)
    partners = List(Nested(PartnerOut), required=True)
