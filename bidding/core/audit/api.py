"""The transparency-log API (``/api/v1/audit``).

Public (anyone may audit the log): the latest signed tree head, the platform public key,
leaf hashes, inclusion and consistency proofs. Leaf hashes reveal nothing of an event.
Event details: center staff, center admins and supervisors only.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import UUID, Dict, Integer, List, String
from flask_babel import gettext as _

from bidding.core import db
from bidding.core.audit import services
from bidding.core.audit.models import AuditEvent
from bidding.core.auth import require_roles, token_auth
from bidding.core.clock import isoformat_z
from bidding.core.errors import ErrorCode, NotFound, RuleViolation
from bidding.core.roles import Role
from bidding.core.signing_key import platform_key

bp = APIBlueprint("audit_api", __name__, url_prefix="/api/v1/audit", tag="Audit log")

_RANGE = {422: "audit_range_invalid: sizes or indices outside the signed log"}
MAX_LEAVES = 1000


class TreeHeadOut(Schema):
    tree_size = Integer(required=True, metadata={"description": "number of leaves"})
    root_hash = String(required=True, metadata={"description": "hex SHA-256 Merkle root"})
    timestamp = String(
        required=True, metadata={"description": "signed time, ISO 8601 UTC (ms precision)"}
    )
    timestamp_ms = Integer(required=True, metadata={"description": "ms since the epoch"})
    algorithm = String(required=True, metadata={"example": "Ed25519"})
    key_id = String(required=True, metadata={"description": "hex SHA-256 of the key's DER SPKI"})
    signature = String(required=True, metadata={"description": "base64 signature"})
    signed_payload = String(
        required=True,
        metadata={
            "description": "base64 of the signed bytes: 'sunbid/tree-head/v1\\0' ‖ "
            "uint64 BE timestamp_ms ‖ uint64 BE tree_size ‖ root hash"
        },
    )


class PublicKeyOut(Schema):
    algorithm = String(required=True, metadata={"example": "Ed25519"})
    key_id = String(required=True)
    public_key_pem = String(required=True, metadata={"description": "SubjectPublicKeyInfo PEM"})
    public_key = String(required=True, metadata={"description": "base64 raw 32-byte key"})


class InclusionQuery(Schema):
    leaf_index = Integer(metadata={"description": "leaf index (or give event_id)"})
    event_id = UUID(metadata={"description": "audit event id (or give leaf_index)"})
    tree_size = Integer(metadata={"description": "default: the latest signed tree head"})


class InclusionOut(Schema):
    leaf_index = Integer(required=True)
    tree_size = Integer(required=True)
    leaf_hash = String(required=True, metadata={"description": "hex"})
    audit_path = List(String(), required=True, metadata={"description": "hex hashes"})


class ConsistencyQuery(Schema):
    first = Integer(required=True)
    second = Integer(required=True)


class ConsistencyOut(Schema):
    first = Integer(required=True)
    second = Integer(required=True)
    consistency_path = List(String(), required=True, metadata={"description": "hex hashes"})


class LeavesQuery(Schema):
    start = Integer(required=True)
    end = Integer(required=True, metadata={"description": f"exclusive; at most {MAX_LEAVES}"})


class LeavesOut(Schema):
    start = Integer(required=True)
    leaf_hashes = List(String(), required=True)


class EventOut(Schema):
    id = UUID(required=True)
    created_at = String(required=True, metadata={"description": "ISO 8601 UTC"})
    actor_id = UUID(allow_none=True)
    actor_label = String(required=True)
    action = String(required=True)
    object_type = String(required=True)
    object_id = String(allow_none=True)
    data = Dict(required=True)
    leaf_index = Integer(allow_none=True)
    leaf_hash = String(allow_none=True)
    prev_id = UUID(allow_none=True)
    leaf = String(
        allow_none=True,
        metadata={"description": "the exact log entry (canonical JSON) whose hash is the leaf"},
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@bp.get("/tree-head")
@bp.output(TreeHeadOut)
@bp.doc(
    summary="The latest signed tree head (STH)",
    responses={404: "not_found: nothing has been logged yet"},
)
def tree_head() -> Any:
    row = services.latest_tree_head(db.get_session())
    if row is None:
        raise NotFound(_("日志中尚无已签名的树头。"))
    head = services.tree_head_of(row)
    return {
        "tree_size": row.tree_size,
        "root_hash": row.root_hash.hex(),
        "timestamp": isoformat_z(row.timestamp),
        "timestamp_ms": head.timestamp_ms,
        "algorithm": row.algorithm,
        "key_id": row.key_id,
        "signature": _b64(row.signature),
        "signed_payload": _b64(head.signing_payload()),
    }


@bp.get("/public-key")
@bp.output(PublicKeyOut)
@bp.doc(summary="The platform's Ed25519 public key that signs tree heads")
def public_key() -> Any:
    key = platform_key()
    return {
        "algorithm": "Ed25519",
        "key_id": key.fingerprint,
        "public_key_pem": key.public_pem,
        "public_key": _b64(key.public_raw),
    }


@bp.get("/proofs/inclusion")
@bp.input(InclusionQuery, location="query", arg_name="query")
@bp.output(InclusionOut)
@bp.doc(
    summary="Inclusion proof (audit path) of one leaf in a tree size",
    responses={
        **_RANGE,
        404: "not_found: unknown event id",
        409: "audit_event_pending: the event is not sequenced yet",
    },
)
def inclusion(query: dict[str, Any]) -> Any:
    index, size, leaf, path = services.inclusion_proof_for(
        db.get_session(),
        leaf_index=query.get("leaf_index"),
        event_id=query.get("event_id"),
        tree_size=query.get("tree_size"),
    )
    return {
        "leaf_index": index,
        "tree_size": size,
        "leaf_hash": leaf.hex(),
        "audit_path": [p.hex() for p in path],
    }


@bp.get("/proofs/consistency")
@bp.input(ConsistencyQuery, location="query", arg_name="query")
@bp.output(ConsistencyOut)
@bp.doc(summary="Consistency proof between two tree sizes", responses=_RANGE)
def consistency(query: dict[str, Any]) -> Any:
    first, second = query["first"], query["second"]
    path = services.consistency_proof_between(db.get_session(), first, second)
    return {"first": first, "second": second, "consistency_path": [p.hex() for p in path]}


@bp.get("/leaf-hashes")
@bp.input(LeavesQuery, location="query", arg_name="query")
@bp.output(LeavesOut)
@bp.doc(summary=f"Leaf hashes start..end-1 (at most {MAX_LEAVES}), for monitors", responses=_RANGE)
def leaf_hashes(query: dict[str, Any]) -> Any:
    start, end = query["start"], query["end"]
    session = db.get_session()
    signed = services.latest_tree_head(session)
    size = signed.tree_size if signed is not None else 0
    if not 0 <= start < end <= size or end - start > MAX_LEAVES:
        raise RuleViolation(
            _("请求的叶子范围无效。"),
            code=ErrorCode.AUDIT_RANGE_INVALID,
            details={"start": start, "end": end, "signed_tree_size": size, "max": MAX_LEAVES},
        )
    hashes = services.DbLeafSource(session).leaf_hashes(start, end)
    return {"start": start, "leaf_hashes": [h.hex() for h in hashes]}


@bp.get("/events/<uuid:event_id>")
@bp.auth_required(token_auth)
@require_roles(Role.CENTER_ADMIN, Role.CENTER_STAFF, Role.SUPERVISOR)
@bp.output(EventOut)
@bp.doc(
    summary="One audit event with its leaf (center staff and supervisors)",
    responses={403: "forbidden", 404: "not_found"},
)
def event_detail(event_id: uuid.UUID) -> Any:
    event: AuditEvent = services.event_by_id(db.get_session(), event_id)
    return {
        "id": event.id,
        "created_at": isoformat_z(event.created_at),
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "data": event.data,
        "leaf_index": event.leaf_index,
        "leaf_hash": event.leaf_hash.hex() if event.leaf_hash is not None else None,
        "prev_id": event.prev_id,
        "leaf": services.leaf_bytes(event).decode("utf-8")
        if event.leaf_index is not None
        else None,
    }
