"""Request and response schemas of the opening API (documented in /api/openapi.json)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf

from bidding.opening.models import OpeningState, ResultStatus


class ShareIn(Schema):
    """Either ``share`` (decrypted client-side with ``sunbid-crypto decrypt-share``: the JSON
    ``{"index", "value"}`` it writes) or ``private_key_pem`` (+ ``passphrase``): the server
    then decrypts the custodian's sealed share in memory and forgets the key."""

    share = Dict(metadata={"description": "share JSON {index, value(hex)}"})
    private_key_pem = String(validate=Length(max=20000))
    passphrase = String(validate=Length(max=1024), load_default=None, allow_none=True)


class ShareOut(Schema):
    index = Integer(required=True)
    status = String(required=True)
    method = String(required=True)
    released_at = String(required=True)
    shares_released = Integer(required=True)
    k = Integer(required=True)


class SelfOpenIn(Schema):
    data_key = String(
        required=True,
        validate=Length(equal=64),
        metadata={"description": "the bid's 32-byte data key in hex (sunbid-crypto unwrap)"},
    )


class SignInOut(Schema):
    display_name = String()
    capacity = String()
    organisation_name = String(allow_none=True)
    signed_in_at = String()


class FailureOut(Schema):
    classification = String(validate=OneOf(["revoked", "withdrawn"]))
    code = String()
    check = String()
    fault = String(validate=OneOf(["bidder", "storage", "platform"]))
    segment = Integer()
    via = String()
    attempts = Integer()


class BidResultOut(Schema):
    bid_id = String()
    bidder_name = String()
    position = Integer()
    status = String(validate=OneOf([s.value for s in ResultStatus]))
    opened_via = String(allow_none=True)
    price = String(allow_none=True, metadata={"description": "total price, yuan (CNY)"})
    price_sheet = Dict(allow_none=True)
    failure = Nested(FailureOut, allow_none=True)


# Names unique across the whole API (the projects domain has its own ObjectionIn, AnswerIn,
# ObjectionOut and ObjectionList for objections to the tender documents): the OpenAPI
# components are keyed by class name, and a clash becomes "ObjectionOut1".
class OpeningObjectionIn(Schema):
    text = String(required=True, validate=Length(min=5, max=2000))


class OpeningAnswerIn(Schema):
    answer = String(required=True, validate=Length(min=5, max=2000))


class OpeningObjectionOut(Schema):
    id = String()
    bidder_name = String()
    text = String()
    raised_at = String()
    answer = String(allow_none=True)
    answered_by = String(allow_none=True)
    answered_at = String(allow_none=True)


# APIFlask 3.1 registers a schema class twice (``X`` and ``X1``, with a warning) when it is
# both nested and a top-level body; nested uses get subclasses of their own.
class OpeningObjectionItem(OpeningObjectionOut):
    pass


class SignInItem(SignInOut):
    pass


class BidResultItem(BidResultOut):
    pass


class OpeningObjectionList(Schema):
    items = List(Nested(OpeningObjectionItem))


ObjectionIn, AnswerIn = OpeningObjectionIn, OpeningAnswerIn
ObjectionOut, ObjectionList = OpeningObjectionOut, OpeningObjectionList


class OpeningOut(Schema):
    section_id = String()
    section_state = String()
    state = String(allow_none=True, validate=OneOf([s.value for s in OpeningState]))
    capacity = String(allow_none=True)
    record_published = Boolean()
    k = Integer()
    n = Integer()
    shares_released = Integer()
    quorum_deadline = String(allow_none=True)
    self_open_deadline = String(allow_none=True)
    started_at = String(allow_none=True)
    completed_at = String(allow_none=True)
    record_sha256 = String(allow_none=True)
    progress = Dict()
    released_indices = List(Integer())
    signed_in = List(Nested(SignInItem))
    objections = List(Nested(OpeningObjectionItem))
    bids = List(Nested(BidResultItem))
    my_share_index = Integer()
    my_share_released = Boolean()


class RecordOut(Schema):
    """A ``SignedDocument``: verify ``signature`` over ``document`` with the platform key
    (``GET /api/v1/audit/public-key``; ``key_id`` names it)."""

    version = Integer()
    document = Dict()
    algorithm = String()
    signature = String()
    key_id = String()


class LinkOut(Schema):
    url = String(required=True)
    expires_in = Integer(required=True)
