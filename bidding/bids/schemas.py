"""Request and response schemas of the bids API (OpenAPI documents them all).

No schema carries a storage key, a download link or any byte of a ciphertext: before the
opening nobody — center staff included — can fetch a sealed bid.
"""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import UUID, Boolean, DateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp

from bidding.bids.models import BidState, UploadMethod, UploadState
from bidding.core.clock import isoformat_z
from bidding.core.idempotency import HEADER, MAX_KEY_LENGTH

HEX64 = Regexp(r"^[0-9a-fA-F]{64}$", error="须为 64 位十六进制 SHA-256。")


class UTCDateTime(DateTime):
    """ISO 8601 in UTC with a ``Z``."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else isoformat_z(value)


class StartUploadIn(Schema):
    size = Integer(
        required=True,
        validate=Range(min=1),
        metadata={"description": "envelope size in bytes"},
    )
    sha256 = String(required=True, validate=HEX64, metadata={"description": "envelope SHA-256"})
    client_key = String(
        required=True,
        validate=Length(min=1, max=128),
        metadata={"description": "the client's id for this upload; repeat it to resume"},
    )
    method = String(
        load_default="multipart",
        validate=OneOf(["multipart", "single"]),
        metadata={
            "description": "multipart (presigned parts, resumable) or single (one presigned"
            " PUT to put_url, up to SUNBID_BID_SINGLE_PUT_MAX_MB); default multipart"
        },
    )


class StreamUploadQuery(Schema):
    sha256 = String(required=True, validate=HEX64, metadata={"description": "envelope SHA-256"})


class UploadOut(Schema):
    id = UUID()
    section_id = UUID()
    bidder_id = UUID()
    client_key = String()
    method = String(metadata={"enum": [m.value for m in UploadMethod]})
    state = String(metadata={"enum": [s.value for s in UploadState]})
    size = Integer()
    sha256 = String()
    part_size = Integer(allow_none=True)
    part_count = Integer()
    created_at = UTCDateTime()
    expires_at = UTCDateTime()
    received_at = UTCDateTime(allow_none=True)
    refusal_code = String(allow_none=True)


class PartUrl(Schema):
    part_number = Integer()
    url = String(metadata={"description": "PUT the part's bytes here; keep the ETag"})


class DonePart(Schema):
    part_number = Integer()
    etag = String()
    size = Integer()


class UploadItem(UploadOut):
    """UploadOut nested in another schema (a distinct class keeps OpenAPI components unique)."""


class UploadTicketOut(Schema):
    upload = Nested(UploadItem)
    part_size = Integer()
    parts = List(Nested(PartUrl), metadata={"description": "parts still to send"})
    done_parts = List(Nested(DonePart))
    put_url = String(
        allow_none=True,
        metadata={
            "description": "single: PUT the whole envelope here (Content-Type:"
            " application/octet-stream); null for multipart"
        },
    )
    put_headers = Dict(
        keys=String(),
        values=String(),
        allow_none=True,
        metadata={
            "description": "single: headers the PUT must carry — Content-Type and"
            " x-amz-checksum-sha256 (base64 SHA-256 of the envelope, signed into put_url:"
            " the store accepts only the declared bytes); null for multipart"
        },
    )
    url_expires_in = Integer()


class CommitHeaders(Schema):
    idempotency_key = String(
        data_key=HEADER,
        required=True,
        validate=Length(min=1, max=MAX_KEY_LENGTH),
        metadata={"description": "the client's key for this bid: a retry returns the first result"},
    )


class CommitIn(Schema):
    upload_id = UUID(required=True)
    manifest = Dict(
        required=True, metadata={"description": "the signed BidManifest document (投标清单)"}
    )
    signature = String(required=True, metadata={"description": "base64 signature of the manifest"})
    certificate_chain = List(
        String(),
        required=True,
        validate=Length(min=1, max=5),
        metadata={"description": "the signer's certificate (PEM) first, then intermediates"},
    )


class SubmitDocument(Schema):
    """The commit document in front of the envelope in ``PUT …/bids/submit/{key}``."""

    manifest = Dict(required=True)
    signature = String(required=True)
    certificate_chain = List(String(), required=True, validate=Length(min=1, max=5))


class BidOut(Schema):
    id = UUID()
    section_id = UUID()
    bidder_id = UUID()
    bidder_name = String()
    bidder_credit_code = String()
    submitted_by_id = UUID()
    state = String(metadata={"enum": [s.value for s in BidState]})
    is_current = Boolean()
    ciphertext_sha256 = String()
    ciphertext_size = Integer()
    ciphertext_deleted = Boolean()
    data_key_commitment = String()
    opening_key_fingerprint = String()
    signer_key_id = String()
    committed_at = UTCDateTime()
    log_index = Integer()
    superseded_at = UTCDateTime(allow_none=True)
    superseded_by_id = UUID(allow_none=True)
    withdrawn_at = UTCDateTime(allow_none=True)


class ProofOut(Schema):
    leaf_index = Integer()
    tree_size = Integer()
    leaf_hash = String()
    audit_path = List(String())


class BidItem(BidOut):
    """BidOut nested in another schema (a distinct class keeps OpenAPI components unique)."""


class ProofItem(ProofOut):
    """ProofOut nested in another schema."""


class ProofQuery(Schema):
    tree_size = Integer(load_default=None, validate=Range(min=1))


class CommitOut(Schema):
    bid = Nested(BidItem)
    receipt = Dict(metadata={"description": "the platform-signed receipt (回执), crypto.receipt"})
    proof = Nested(
        ProofItem,
        allow_none=True,
        metadata={
            "description": "inclusion proof of the acceptance in the receipt's tree head; "
            "null in a fresh commit's answer (GET …/bids/{id}/proof), set in a replay's"
        },
    )
    replayed = Boolean()


class StatusOut(Schema):
    section_id = UUID()
    accepting = Boolean()
    bid_deadline = UTCDateTime(allow_none=True)
    current = Nested(BidItem, allow_none=True)
    bids = List(Nested(BidItem))
    uploads = List(Nested(UploadItem))
