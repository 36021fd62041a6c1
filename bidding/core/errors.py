"""The one error hierarchy (错误码) of the platform.

Services raise :class:`DomainError` subclasses; the HTTP layer maps them once to
``{"code": ..., "message": ..., "details": {...}}`` with the error's status, and the
Socket.IO layer maps them once to ``{"ok": false, "code": ..., "message": ...}``.
Codes are stable snake_case strings, all listed in :class:`ErrorCode`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every stable error code the platform returns. Never rename a member's value."""

    # generic HTTP-level
    BAD_REQUEST = "bad_request"
    MALFORMED_JSON = "malformed_json"
    VALIDATION_ERROR = "validation_error"
    NOT_SIGNED_IN = "not_signed_in"
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - an error code, not a secret
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - an error code, not a secret
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 - an error code, not a secret
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    PRECONDITION_FAILED = "precondition_failed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    SERVICE_UNAVAILABLE = "service_unavailable"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    INTERNAL_ERROR = "internal_error"
    CSRF_FAILED = "csrf_failed"
    INVALID_TRANSITION = "invalid_transition"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    # accounts
    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_DISABLED = "account_disabled"
    INVALID_CREDIT_CODE = "invalid_credit_code"
    INVALID_REGION_CODE = "invalid_region_code"
    DUPLICATE_USERNAME = "duplicate_username"
    DUPLICATE_ORGANISATION = "duplicate_organisation"
    INVALID_ROLE = "invalid_role"
    WEAK_PASSWORD = "weak_password"  # noqa: S105 - an error code, not a secret
    DUPLICATE_CENTER = "duplicate_center"
    INVALID_PARTNERSHIP = "invalid_partnership"
    DUPLICATE_PARTNERSHIP = "duplicate_partnership"
    INVALID_SCOPE = "invalid_scope"
    LAST_CENTER_ADMIN = "last_center_admin"
    INVALID_CURSOR = "invalid_cursor"
    # storage
    OBJECT_NOT_FOUND = "object_not_found"
    UPLOAD_INCOMPLETE = "upload_incomplete"
    UPLOAD_TOO_LARGE = "upload_too_large"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    INVALID_OBJECT_KEY = "invalid_object_key"
    # audit
    AUDIT_RANGE_INVALID = "audit_range_invalid"
    AUDIT_EVENT_PENDING = "audit_event_pending"  # not yet sequenced into the log
    # projects, sections and their timeline (DOMAIN.md "Time", "Money")
    DEADLINE_TOO_EARLY = "deadline_too_early"  # < 20 days after documents issued
    SALE_PERIOD_TOO_SHORT = "sale_period_too_short"  # < 5 days / 5 working days
    OBJECTION_TOO_LATE = "objection_too_late"  # < 10 days before the deadline
    AMENDMENT_CHANGES_SUBJECT = "amendment_changes_subject"
    DEPOSIT_OVER_CAP = "deposit_over_cap"  # > 2 % or > 800,000 yuan for works
    PERFORMANCE_SECURITY_OVER_CAP = "performance_security_over_cap"  # > 10 %
    MINIMUM_PRICE_FORBIDDEN = "minimum_price_forbidden"
    MAXIMUM_PRICE_INVALID = "maximum_price_invalid"
    BID_VALIDITY_INVALID = "bid_validity_invalid"
    PRICE_WEIGHT_TOO_LOW = "price_weight_too_low"
    EVALUATION_METHOD_INVALID = "evaluation_method_invalid"
    CRITERIA_INVALID = "criteria_invalid"
    COMMITTEE_INVALID = "committee_invalid"
    CUSTODIANS_INVALID = "custodians_invalid"
    INVALID_PROJECT_CODE = "invalid_project_code"
    UNSUPPORTED_DOCUMENT_TYPE = "unsupported_document_type"
    DOCUMENT_UNREADABLE = "document_unreadable"
    REVIEW_FINDINGS_OPEN = "review_findings_open"
    HOLIDAY_CALENDAR_MISSING = "holiday_calendar_missing"
    TIMELINE_INVALID = "timeline_invalid"  # dates out of order (sale ends after the deadline…)
    AMOUNT_INVALID = "amount_invalid"  # a negative or zero amount where a positive one is needed
    # projects and sections: lifecycle services
    IDEMPOTENCY_KEY_IN_PROGRESS = "idempotency_key_in_progress"
    CENTER_MISMATCH = "center_mismatch"  # the project's center is not the organisation's
    ORGANISATION_KIND_INVALID = "organisation_kind_invalid"
    SECTION_NOT_EDITABLE = "section_not_editable"  # only drafts can be edited
    TENDER_DOCUMENTS_MISSING = "tender_documents_missing"
    OVERRIDE_REASON_REQUIRED = "override_reason_required"
    FINDING_NOT_OPEN = "finding_not_open"
    CUSTODIAN_KEY_MISSING = "custodian_key_missing"
    CUSTODIAN_KEY_INVALID = "custodian_key_invalid"
    NOT_A_CUSTODIAN = "not_a_custodian"
    PUBLICATION_NOT_PREPARED = "publication_not_prepared"
    SECTION_NOT_PUBLISHED = "section_not_published"
    BID_DEADLINE_PASSED = "bid_deadline_passed"
    NOT_REGISTERED = "not_registered"  # the bidder has not registered for the section
    ALREADY_REGISTERED = "already_registered"
    OBJECTION_ALREADY_ANSWERED = "objection_already_answered"
    PROCEDURE_PAUSED = "procedure_paused"  # an objection is unanswered (SSTL 22)
    REASON_REQUIRED = "reason_required"
    # opening (开标)
    OPENING_NOT_STARTED = "opening_not_started"  # no opening session (before the deadline)
    OPENING_CLOSED = "opening_closed"  # the opening has completed / moved on
    SHARE_INVALID = "share_invalid"  # a released share fails its commitment (details.index)
    SHARE_ALREADY_RELEASED = "share_already_released"
    SELF_OPEN_NOT_ALLOWED = "self_open_not_allowed"  # quorum window still open, or closed
    DATA_KEY_INVALID = "data_key_invalid"  # a bidder's data key fails the commitment
    BID_ALREADY_OPENED = "bid_already_opened"
    OPENING_RECORD_NOT_PUBLISHED = "opening_record_not_published"
    NOT_IN_OPENING = "not_in_opening"  # no bid / seat in this opening
    # bids (投标): sealed-bid upload and commit
    BID_WRONG_SECTION = "bid_wrong_section"  # envelope/manifest sealed for another section
    BID_STALE_OPENING_KEY = "bid_stale_opening_key"  # sealed to another opening key
    BID_NOT_ENCRYPTED = "bid_not_encrypted"  # not a sunbid envelope (no magic)
    BID_ENVELOPE_INVALID = "bid_envelope_invalid"  # envelope structure broken
    BID_HASH_MISMATCH = "bid_hash_mismatch"  # ciphertext SHA-256/size differ from the manifest
    BID_MANIFEST_INVALID = "bid_manifest_invalid"  # malformed manifest
    BID_MANIFEST_MISMATCH = "bid_manifest_mismatch"  # manifest differs from the envelope header
    BID_WRONG_BIDDER = "bid_wrong_bidder"  # manifest names another bidder than the actor's
    BID_SIGNER_MISMATCH = "bid_signer_mismatch"  # certificate of another organisation
    BID_SIGNATURE_INVALID = "bid_signature_invalid"
    BID_UPLOAD_UNUSABLE = "bid_upload_unusable"  # upload expired, refused or already used
    BID_UPLOAD_INCOMPLETE = "bid_upload_incomplete"  # multipart parts missing
    BID_NOT_CURRENT = "bid_not_current"  # superseded or withdrawn
    CERTIFICATE_UNTRUSTED = "certificate_untrusted"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CERTIFICATE_NOT_YET_VALID = "certificate_not_yet_valid"
    CERTIFICATE_REVOKED = "certificate_revoked"
    CERTIFICATE_INVALID = "certificate_invalid"  # key usage, role, CRL problems, malformed
    BID_PACKAGE_INVALID = "bid_package_invalid"  # the decrypted plaintext is not a bid ZIP
    PRICE_SHEET_MISSING = "price_sheet_missing"  # no price_sheet.json (开标一览表) in the ZIP
    PRICE_SHEET_INVALID = "price_sheet_invalid"  # malformed, or names another section/bidder


class DomainError(Exception):
    """A refusal with a stable code, an HTTP status and a message a person can act on."""

    code: str = ErrorCode.BAD_REQUEST
    http_status: int = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(DomainError):
    code = ErrorCode.BAD_REQUEST
    http_status = 400


class NotSignedIn(DomainError):
    code = ErrorCode.NOT_SIGNED_IN
    http_status = 401


class Forbidden(DomainError):
    code = ErrorCode.FORBIDDEN
    http_status = 403


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND
    http_status = 404


class Conflict(DomainError):
    code = ErrorCode.CONFLICT
    http_status = 409


class InvalidTransition(Conflict):
    code = ErrorCode.INVALID_TRANSITION


class RuleViolation(DomainError):
    """A business rule refused the request (HTTP 422)."""

    code = ErrorCode.VALIDATION_ERROR
    http_status = 422


class PayloadTooLarge(DomainError):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    http_status = 413


class TooManyAttempts(DomainError):
    code = ErrorCode.TOO_MANY_ATTEMPTS
    http_status = 429


class ServiceUnavailable(DomainError):
    code = ErrorCode.SERVICE_UNAVAILABLE
    http_status = 503
