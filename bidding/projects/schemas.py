"""Request and response schemas of the projects API (OpenAPI documents them all).

Money is a string with two decimals plus ``"currency": "CNY"`` on the owning object; times
are ISO 8601 UTC with ``Z``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apiflask import Schema
from apiflask.fields import (
    UUID,
    Boolean,
    DateTime,
    Dict,
    File,
    Integer,
    List,
    Nested,
    String,
)
from apiflask.validators import Length, OneOf, Range
from flask_babel import gettext as _
from marshmallow import ValidationError, fields

from bidding.core.clock import isoformat_z
from bidding.core.roles import Role
from bidding.projects.models import (
    DocumentKind,
    FindingStatus,
    ObjectionStatus,
    ProjectKind,
    SectionState,
    Subject,
)

KIND_VALUES = [k.value for k in ProjectKind]
SUBJECT_VALUES = [s.value for s in Subject]
STATE_VALUES = [s.value for s in SectionState]
DOCUMENT_KIND_VALUES = [k.value for k in DocumentKind]
CUSTODIAN_ROLE_VALUES = [Role.CENTER_STAFF.value, Role.SUPERVISOR.value, Role.AGENCY_STAFF.value]


class UTCDateTime(DateTime):
    """ISO 8601 in UTC with a ``Z``; input must carry a timezone."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return isoformat_z(value)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        result = super()._deserialize(value, attr, data, **kwargs)
        if result.tzinfo is None:
            raise ValidationError(_("时间须带时区，例如 2026-12-20T09:30:00+08:00 或 …Z。"))
        return result


class MoneyField(fields.Field):  # type: ignore[type-arg]
    """Yuan as a string with exactly two decimals ("1234.50"); numbers are refused."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = kwargs.pop("metadata", {})
        metadata.setdefault("type", "string")
        metadata.setdefault("pattern", r"^\d{1,16}(\.\d{1,2})?$")
        metadata.setdefault("example", "50000.00")
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return f"{Decimal(value):.2f}"

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Decimal:
        if not isinstance(value, str):
            raise ValidationError(_('金额须为字符串，例如 "50000.00"（单位：元）。'))
        try:
            amount = Decimal(value.strip())
        except ArithmeticError:
            raise ValidationError(_("金额格式不正确。")) from None
        if not amount.is_finite() or amount.as_tuple().exponent < -2:  # type: ignore[operator]
            raise ValidationError(_("金额最多保留两位小数。"))
        return amount.quantize(Decimal("0.01"))


# --------------------------------------------------------------------------- projects


class OrgRef(Schema):
    id = UUID(required=True)
    name = String(required=True)


class ProjectIn(Schema):
    name = String(required=True, validate=Length(1, 200))
    kind = String(required=True, validate=OneOf(KIND_VALUES), metadata={"enum": KIND_VALUES})
    subject = String(
        required=True, validate=OneOf(SUBJECT_VALUES), metadata={"enum": SUBJECT_VALUES}
    )
    tenderer_id = UUID(required=True)
    agency_id = UUID(load_default=None, allow_none=True)
    center_id = UUID(required=True)
    region_code = String(required=True, validate=Length(6, 6))
    amount = MoneyField(
        load_default=None,
        allow_none=True,
        metadata={"description": "total investment (works) or budget (procurement), yuan"},
    )
    funding_source = String(load_default="", validate=Length(0, 200))


class ProjectOut(Schema):
    id = UUID(required=True)
    transaction_code = String(required=True, metadata={"description": "统一交易标识码"})
    code = String(required=True)
    name = String(required=True)
    kind = String(required=True, metadata={"enum": KIND_VALUES})
    subject = String(required=True, metadata={"enum": SUBJECT_VALUES})
    tenderer = Nested(OrgRef, required=True)
    agency = Nested(OrgRef, allow_none=True)
    center_id = UUID(required=True)
    region_code = String(required=True)
    amount = MoneyField(allow_none=True)
    currency = String(required=True, metadata={"example": "CNY"})
    funding_source = String(required=True)
    created_at = UTCDateTime(required=True)


# --------------------------------------------------------------------------- sections


class CustodianIn(Schema):
    user_id = UUID(required=True)
    role = String(
        required=True,
        validate=OneOf(CUSTODIAN_ROLE_VALUES),
        metadata={"enum": CUSTODIAN_ROLE_VALUES},
    )


class TimelineFields(Schema):
    documents_issued_at = UTCDateTime(allow_none=True)
    sale_start = UTCDateTime(allow_none=True)
    sale_end = UTCDateTime(allow_none=True)
    objection_cutoff = UTCDateTime(allow_none=True)
    bid_deadline = UTCDateTime(allow_none=True, metadata={"description": "投标截止 = 开标时间"})


class SectionIn(TimelineFields):
    name = String(required=True, validate=Length(1, 200))
    estimated_price = MoneyField(required=True, metadata={"description": "估算价 / 预算金额"})
    maximum_price = MoneyField(load_default=None, allow_none=True)
    minimum_price = MoneyField(
        load_default=None,
        allow_none=True,
        metadata={"description": "never allowed (SSTL 27): any value is refused"},
    )
    bid_deposit = MoneyField(required=True)
    bid_validity_days = Integer(load_default=90, validate=Range(1, 3650))
    evaluation_method = Dict(load_default=None, allow_none=True)
    committee_size = Integer(load_default=5, validate=Range(1, 99))
    committee_experts = Integer(load_default=4, validate=Range(0, 99))
    complex_project = Boolean(load_default=False)
    custodians = List(Nested(CustodianIn), load_default=list)
    custodian_threshold = Integer(load_default=2, validate=Range(1, 255))


class SectionPatch(TimelineFields):
    name = String(validate=Length(1, 200))
    estimated_price = MoneyField()
    maximum_price = MoneyField(allow_none=True)
    minimum_price = MoneyField(allow_none=True)
    bid_deposit = MoneyField()
    bid_validity_days = Integer(validate=Range(1, 3650))
    evaluation_method = Dict(allow_none=True)
    committee_size = Integer(validate=Range(1, 99))
    committee_experts = Integer(validate=Range(0, 99))
    complex_project = Boolean()
    custodians = List(Nested(CustodianIn))
    custodian_threshold = Integer(validate=Range(1, 255))


class IfMatchHeader(Schema):
    if_match = String(
        data_key="If-Match",
        load_default=None,
        metadata={"description": "the section's ETag from the last GET (412 if stale)"},
    )


class CustodianOut(Schema):
    user_id = UUID(required=True)
    display_name = String(required=True)
    role = String(required=True)
    position = Integer(required=True)
    key_submitted = Boolean(required=True)
    share_index = Integer(allow_none=True)
    share_commitment = String(allow_none=True)
    encrypted_share = Dict(allow_none=True, metadata={"description": "HPKE-sealed share"})


class SectionOut(TimelineFields):
    id = UUID(required=True)
    project_id = UUID(required=True)
    serial = Integer(required=True)
    code = String(required=True)
    name = String(required=True)
    state = String(required=True, metadata={"enum": STATE_VALUES})
    paused = Boolean(required=True, metadata={"description": "an objection is unanswered"})
    estimated_price = MoneyField(required=True)
    maximum_price = MoneyField(allow_none=True)
    bid_deposit = MoneyField(required=True)
    currency = String(required=True)
    bid_validity_days = Integer(required=True)
    evaluation_method = Dict(required=True)
    committee_size = Integer(required=True)
    committee_experts = Integer(required=True)
    complex_project = Boolean(required=True)
    custodian_threshold = Integer(required=True)
    custodians = List(Nested(CustodianOut), required=True)
    review_round = Integer(required=True)
    opening_public_key = String(allow_none=True, metadata={"description": "raw X25519, hex"})
    opening_key_fingerprint = String(allow_none=True)
    published_at = UTCDateTime(allow_none=True)
    closed_at = UTCDateTime(allow_none=True)
    failure_reason = String(allow_none=True)
    cancel_reason = String(allow_none=True)
    version = Integer(required=True)
    etag = String(required=True)


class PublicationOut(Schema):
    section_id = UUID(required=True)
    state = String(required=True)
    ceremony_id = String(required=True)
    k = Integer(required=True)
    n = Integer(required=True)
    opening_public_key = String(required=True)
    fingerprint = String(required=True)
    share_commitments = List(String(), required=True)
    prepared_at = UTCDateTime(required=True)


class PublishIn(Schema):
    fingerprint = String(
        load_default=None,
        allow_none=True,
        validate=Length(64, 64),
        metadata={"description": "the fingerprint shown by prepare-publication (412 if not)"},
    )


class CustodianKeyIn(Schema):
    public_key_pem = String(required=True, validate=Length(1, 2000))


class SectionQuery(Schema):
    cursor = String(load_default=None)
    limit = Integer(load_default=50, validate=Range(1, 100))
    state = List(
        String(validate=OneOf(STATE_VALUES)),
        load_default=None,
        metadata={"description": "only sections in these states"},
    )
    center_id = UUID(load_default=None)


# --------------------------------------------------------------------------- documents


class DocumentUpload(Schema):
    file = File(  # type: ignore[no-untyped-call]
        required=True, metadata={"description": ".docx, .pdf, .txt or .md"}
    )
    kind = String(
        load_default=DocumentKind.TENDER_DOCUMENTS.value,
        validate=OneOf(DOCUMENT_KIND_VALUES),
        metadata={"enum": DOCUMENT_KIND_VALUES},
    )
    sha256 = String(
        load_default=None, validate=Length(64, 64), metadata={"description": "expected SHA-256"}
    )


class DocumentOut(Schema):
    id = UUID(required=True)
    section_id = UUID(required=True)
    kind = String(required=True, metadata={"enum": DOCUMENT_KIND_VALUES})
    filename = String(required=True)
    content_type = String(required=True)
    size = Integer(required=True)
    sha256 = String(required=True)
    uploaded_at = UTCDateTime(required=True)


class DocumentItem(DocumentOut):
    """DocumentOut nested in a list (a distinct class keeps the OpenAPI components unique)."""


class DocumentList(Schema):
    items = List(Nested(DocumentItem), required=True)


class DownloadOut(Schema):
    url = String(required=True)
    expires_in = Integer(required=True)
    sha256 = String(required=True)


# --------------------------------------------------------------------------- review


class FindingOut(Schema):
    id = UUID(required=True)
    document_id = UUID(allow_none=True)
    review_round = Integer(required=True)
    rule_id = String(required=True)
    title = String(required=True)
    severity = String(required=True)
    clause = String(required=True)
    location = String(required=True)
    legal_basis = String(required=True)
    suggestion = String(required=True)
    status = String(required=True, metadata={"enum": [s.value for s in FindingStatus]})
    override_reason = String(allow_none=True)
    overridden_by_id = UUID(allow_none=True)
    overridden_at = UTCDateTime(allow_none=True)


class FindingItem(FindingOut):
    """FindingOut nested in a list (a distinct class keeps the OpenAPI components unique)."""


class FindingList(Schema):
    items = List(Nested(FindingItem), required=True)


class ReviewedSection(SectionOut):
    pass


class ReviewOut(Schema):
    section = Nested(ReviewedSection, required=True)
    findings = List(Nested(FindingItem), required=True)


class ReasonIn(Schema):
    reason = String(required=True, validate=Length(1, 2000))


# --------------------------------------------------------------------------- after publication


class ClarificationIn(Schema):
    text = String(required=True, validate=Length(1, 20000))
    affects_bids = Boolean(load_default=True)
    document_id = UUID(load_default=None, allow_none=True)
    changes_subject = Boolean(load_default=False)
    changes_qualifications = Boolean(load_default=False)


class ClarificationOut(Schema):
    id = UUID(required=True)
    section_id = UUID(required=True)
    text = String(required=True)
    document_id = UUID(allow_none=True)
    affects_bids = Boolean(required=True)
    issued_at = UTCDateTime(required=True)
    previous_deadline = UTCDateTime(required=True)
    new_deadline = UTCDateTime(required=True)
    deadline_moved = Boolean(required=True)


class ClarificationItem(ClarificationOut):
    """ClarificationOut nested in a list (a distinct class keeps the OpenAPI components unique)."""


class ClarificationList(Schema):
    items = List(Nested(ClarificationItem), required=True)


class RegistrationIn(Schema):
    bidder_id = UUID(
        load_default=None,
        allow_none=True,
        metadata={"description": "needed only when you represent several bidders"},
    )


class RegistrationOut(Schema):
    id = UUID(required=True)
    section_id = UUID(required=True)
    bidder = Nested(OrgRef, required=True)
    registered_at = UTCDateTime(required=True)


class RegistrationItem(RegistrationOut):
    """RegistrationOut nested in a list (a distinct class keeps the OpenAPI components unique)."""


class RegistrationList(Schema):
    items = List(Nested(RegistrationItem), required=True)


class ObjectionIn(Schema):
    text = String(required=True, validate=Length(1, 20000))
    bidder_id = UUID(load_default=None, allow_none=True)


class AnswerIn(Schema):
    answer = String(required=True, validate=Length(1, 20000))


class ObjectionOut(Schema):
    id = UUID(required=True)
    section_id = UUID(required=True)
    bidder = Nested(OrgRef, required=True)
    text = String(required=True)
    raised_at = UTCDateTime(required=True)
    answer_due_at = UTCDateTime(required=True)
    status = String(required=True, metadata={"enum": [s.value for s in ObjectionStatus]})
    answer = String(allow_none=True)
    answered_at = UTCDateTime(allow_none=True)


class ObjectionItem(ObjectionOut):
    """ObjectionOut nested in a list (a distinct class keeps the OpenAPI components unique)."""


class ObjectionList(Schema):
    items = List(Nested(ObjectionItem), required=True)
