"""The online opening (不见面开标) services.

Lifecycle (DESIGN.md "Sealed bids — Opening", DOMAIN.md "Bids and opening")::

    section closed with ≥ 3 bids ──start_opening──▶ session waiting_shares (section: opening)
    custodians release_share … k valid ──▶ decrypting: one decrypt task per bid
    quorum window passed (*setting*, 30 min after the deadline) ──▶ self_open_window:
        each bidder hands over its own data key (self_open) for its own bid
    every bid has a result ──complete_opening──▶ completed, signed record published
                                                 (section: opened)

Every function takes the acting party first (``None`` = the platform: sweep or task),
checks its rule, changes state, records an audit event and flushes; it never commits.

Refusals that must leave a trace (a wrong share, a wrong data key) are *recorded*: the
service adds the refusal row and audit event, flushes, and raises a
:class:`RecordedRefusal`; the caller (API view, socket handler) commits before it turns
the error into a response, so the trace survives the refusal (as the login throttle does).

Decryption failures are classified per DZ20 31 by :func:`classify_failure`:
**revoked** (撤销) when the failure is the bidder's fault, **withdrawn** (撤回) otherwise;
the others continue. The evidence (error code, the check that failed, the segment) is kept
on the result and printed in the record.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session, load_only
from sqlalchemy.orm.attributes import set_committed_value

from bidding.accounts.models import Organisation, User
from bidding.bids.package import PRICE_SHEET_NAME
from bidding.core import db
from bidding.core.audit import EventEntry, record_event, record_events
from bidding.core.clock import now
from bidding.core.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    Forbidden,
    NotFound,
    RuleViolation,
)
from bidding.core.roles import Actor, Role
from bidding.core.signing_key import platform_key
from bidding.core.states import transition
from bidding.core.storage import ObjectNotFound, StorageUnavailable, get_storage
from bidding.opening import bids_port, vault
from bidding.opening.bids_port import Bid, PriceSheetUnreadable
from bidding.opening.models import (
    HallSignIn,
    OpeningObjection,
    OpeningResult,
    OpeningSession,
    OpeningState,
    ResultStatus,
    ShareRelease,
    ShareStatus,
)
from bidding.opening.pricesheet import PackageCapture, PlaintextGap, plaintext_size_of
from bidding.projects.models import MIN_BIDS_TO_OPEN, Section, SectionCustodian, SectionState
from bidding.projects.services import fail_section, opening_ceremony
from crypto.canonical import format_utc
from crypto.envelope import (
    OpenResult,
    ReadableStream,
    check_data_key,
    open_envelope,
    read_header,
    unwrap_data_key,
)
from crypto.envelope_errors import CiphertextHashMismatchError, EnvelopeError
from crypto.errors import CryptoError
from crypto.pki import load_x25519_private_key_pem
from crypto.signing import SignedDocument
from crypto.threshold import (
    EncryptedShare,
    OpeningKeyCeremony,
    Share,
    ShareInvalidError,
    combine_shares,
    decrypt_share,
    verify_share,
)

log = logging.getLogger(__name__)

__all__ = [
    "Capacity",
    "Outcome",
    "RecordedRefusal",
    "advance_due_sessions",
    "answer_objection",
    "capacity_of",
    "classify_failure",
    "complete_finished_openings",
    "complete_opening",
    "decrypt_chunks",
    "decrypt_result",
    "get_session_of",
    "hall_state",
    "raise_objection",
    "record_document",
    "release_share",
    "self_open",
    "set_emitter",
    "sign_in",
    "start_due_openings",
    "start_opening",
]

#: Socket.IO namespace of the opening hall and the room of a section.
NAMESPACE = "/opening"
RECORD_TYPE = "sunbid.opening-record"
MIN_TEXT = 5
MAX_TEXT = 2000

# events (server → client), past tense
BIDDER_SIGNED_IN = "bidder_signed_in"
SHARE_RELEASED = "share_released"
BID_DECRYPTED = "bid_decrypted"
OPENING_COMPLETED = "opening_completed"
OPENING_STATE_CHANGED = "opening_state_changed"
OBJECTION_RAISED = "objection_raised"
OBJECTION_ANSWERED = "objection_answered"


def room_of(section_id: uuid.UUID | str) -> str:
    return f"opening:{section_id}"


def _session() -> Session:
    return db.get_session()


# =========================================================================== settings


def _setting_minutes(name: str, default: int) -> timedelta:
    settings = current_app.extensions["sunbid_settings"]
    raw = settings.extra.get(name, str(default))
    try:
        minutes = int(raw)
    except ValueError:
        minutes = default
    return timedelta(minutes=max(0, minutes))


def quorum_window() -> timedelta:
    """*setting* ``SUNBID_OPENING_QUORUM_MINUTES`` (default 30): the custodians' time after
    the bid deadline."""
    return _setting_minutes("opening_quorum_minutes", 30)


def self_open_window() -> timedelta:
    """*setting* ``SUNBID_OPENING_SELF_OPEN_MINUTES`` (default 30): the bidders' time to hand
    over their data keys after the quorum failed."""
    return _setting_minutes("opening_self_open_minutes", 30)


def max_handover_attempts() -> int:
    """*setting* ``SUNBID_OPENING_HANDOVER_ATTEMPTS`` (default 3): wrong data keys a bidder
    may hand in before its bid is revoked."""
    settings = current_app.extensions["sunbid_settings"]
    try:
        return max(1, int(settings.extra.get("opening_handover_attempts", "3")))
    except ValueError:
        return 3


# =========================================================================== hall emits

Emitter = Callable[[str, Mapping[str, Any], str], None]


def _default_emit(event: str, data: Mapping[str, Any], room: str) -> None:
    from bidding.core.realtime import socketio

    try:
        socketio.emit(event, dict(data), namespace=NAMESPACE, to=room)
    except Exception:  # a hall that cannot be reached must not fail the opening
        log.exception("opening hall emit %s failed", event)


_emitter: Emitter = _default_emit


def set_emitter(emitter: Emitter | None) -> Emitter:
    """Replace the hall emitter (tests); returns the previous one."""
    global _emitter
    previous = _emitter
    _emitter = emitter or _default_emit
    return previous


def _emit_after_commit(section_id: uuid.UUID, event: str, data: Mapping[str, Any]) -> None:
    payload = {"section_id": str(section_id), **data}
    room = room_of(section_id)
    db.call_after_commit(lambda: _emitter(event, payload, room))


def _enqueue_decrypt(result_id: uuid.UUID) -> None:
    from bidding.core.tasks import enqueue
    from bidding.opening.tasks import decrypt_bid

    enqueue(decrypt_bid, str(result_id))


#: Most bids one decrypt task opens (read and written together, :func:`decrypt_results`).
DECRYPT_CHUNK = 16
#: The last bids go out in shrinking chunks, so that the workers finish together: each
#: a quarter of what is left (twice the usual 2 workers), down to single bids at the end.
DECRYPT_TAIL = 16
DECRYPT_TAIL_SPLIT = 4


def decrypt_chunks(ids: Sequence[uuid.UUID]) -> list[list[uuid.UUID]]:
    """Split the bids to decrypt into task-sized chunks: ≤ ``DECRYPT_CHUNK`` each, the
    last ``DECRYPT_TAIL`` in chunks of a ``DECRYPT_TAIL_SPLIT``-th of the bids left (16:
    4, 3, 3, 2, 1, 1, 1, 1): a big last chunk would leave the other workers idle at the
    end, and the last single bids let them finish within one bid of each other."""
    ids = list(ids)
    head = max(0, len(ids) - DECRYPT_TAIL)
    chunks = [ids[i : min(i + DECRYPT_CHUNK, head)] for i in range(0, head, DECRYPT_CHUNK)]
    i = head
    while i < len(ids):
        size = min(DECRYPT_CHUNK, max(1, -(-(len(ids) - i) // DECRYPT_TAIL_SPLIT)))
        chunks.append(ids[i : i + size])
        i += size
    return chunks


def _enqueue_decrypt_many(result_ids: Sequence[uuid.UUID]) -> None:
    from bidding.core.tasks import enqueue
    from bidding.opening.tasks import decrypt_bids

    for chunk in decrypt_chunks(result_ids):
        enqueue(decrypt_bids, [str(i) for i in chunk])


# =========================================================================== access


@dataclass(frozen=True)
class Capacity:
    """In which capacity an actor takes part in a section's opening (its main one), and
    whether it is also a custodian or one of the section's managers."""

    kind: str  # center_staff | supervisor | manager | custodian | bidder
    organisation_id: uuid.UUID | None = None
    custodian: SectionCustodian | None = field(default=None, compare=False)
    manager: bool = False

    @property
    def may_answer(self) -> bool:
        return self.manager or self.kind == "center_staff"


def _bidder_orgs_with_bid(actor: Actor, section: Section) -> list[uuid.UUID]:
    orgs = actor.organisations_with(Role.BIDDER_REP)
    if not orgs:
        return []
    rows = _session().scalars(
        select(Bid.bidder_id).where(
            Bid.section_id == section.id, Bid.bidder_id.in_(orgs), Bid.is_current.is_(True)
        )
    )
    return sorted(set(rows))


def _custodian(actor: Actor, section: Section) -> SectionCustodian | None:
    return _session().scalar(
        select(SectionCustodian).where(
            SectionCustodian.section_id == section.id, SectionCustodian.user_id == actor.id
        )
    )


def capacity_of(actor: Actor | None, section: Section) -> Capacity | None:
    """The actor's relation to the section's opening, re-read from the database."""
    if actor is None:
        return None
    project = section.project
    custodian = _custodian(actor, section)
    manager = actor.has_role_at((Role.TENDERER_REP,), organisation_id=project.tenderer_id) or (
        project.agency_id is not None
        and actor.has_role_at((Role.AGENCY_STAFF,), organisation_id=project.agency_id)
    )
    kind: str | None = None
    org: uuid.UUID | None = None
    if actor.has_role_at((Role.CENTER_STAFF,), center_id=project.center_id):
        kind = "center_staff"
    elif actor.has_role_at((Role.SUPERVISOR,), center_id=project.center_id):
        kind = "supervisor"
    elif manager:
        kind = "manager"
    elif custodian is not None:
        kind = "custodian"
    else:
        orgs = _bidder_orgs_with_bid(actor, section)
        if orgs:
            kind, org = "bidder", orgs[0]
    if kind is None:
        return None
    return Capacity(kind, organisation_id=org, custodian=custodian, manager=manager)


def _require_capacity(actor: Actor | None, section: Section) -> Capacity:
    cap = capacity_of(actor, section)
    if cap is None:
        raise Forbidden(
            _("您不是本标段开标的参与方（投标人、密钥保管人、交易中心或监督人员）。"),
            code=ErrorCode.NOT_IN_OPENING,
        )
    return cap


# =========================================================================== helpers


class RecordedRefusal(DomainError):
    """A refusal whose trace (row + audit event) the caller must commit before replying."""

    recorded = True


class ShareRefused(RecordedRefusal):
    code = ErrorCode.SHARE_INVALID
    http_status = 422


class DataKeyRefused(RecordedRefusal):
    code = ErrorCode.DATA_KEY_INVALID
    http_status = 422


def _iso(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value)


def _text(value: str | None, what: str) -> str:
    text = (value or "").strip()
    if len(text) < MIN_TEXT or len(text) > MAX_TEXT:
        raise RuleViolation(
            _("请填写%(what)s（%(min)s至%(max)s个字）。", what=what, min=MIN_TEXT, max=MAX_TEXT),
            code=ErrorCode.REASON_REQUIRED,
            details={"min_length": MIN_TEXT, "max_length": MAX_TEXT},
        )
    return text


def get_session_of(section: Section) -> OpeningSession | None:
    return _session().scalar(select(OpeningSession).where(OpeningSession.section_id == section.id))


def _require_session(section: Section) -> OpeningSession:
    session = get_session_of(section)
    if session is None:
        raise Conflict(
            _("本标段尚未开标（投标截止后由平台自动开始开标）。"),
            code=ErrorCode.OPENING_NOT_STARTED,
            details={"section_state": str(section.state)},
        )
    return session


def _lock_session(session: OpeningSession) -> OpeningSession:
    return db.lock_row(OpeningSession, session.id)


def _lock_section(section: Section) -> Section:
    return db.lock_row(Section, section.id)


def _lock_result(result_id: uuid.UUID) -> OpeningResult:
    return db.lock_row(OpeningResult, result_id)


def _progress(session: OpeningSession) -> dict[str, int]:
    counts: dict[str, int] = {str(s): 0 for s in ResultStatus}
    for status, n in _session().execute(
        select(OpeningResult.status, func.count(OpeningResult.id))
        .where(OpeningResult.session_id == session.id)
        .group_by(OpeningResult.status)
    ):
        counts[str(status)] = int(n)
    counts["total"] = sum(counts[str(s)] for s in ResultStatus)
    return counts


# =========================================================================== start


def start_opening(
    actor: Actor | None, section: Section, at: datetime | None = None
) -> OpeningSession | None:
    """Closed section with ≥ 3 bids → opening: create the session and one pending result
    per current bid (idempotent: an existing session is returned).

    Fewer than 3 current bids → the section fails (流标) and None is returned.
    Refusals: ``invalid_transition`` (not closed).
    """
    at = at or now()
    section = _lock_section(section)
    existing = get_session_of(section)
    if existing is not None:
        return existing
    if section.state is not SectionState.CLOSED:
        raise Conflict(
            _("标段当前状态（%(state)s）下不能开标。", state=str(section.state)),
            code=ErrorCode.INVALID_TRANSITION,
            details={"state": str(section.state), "expected": [str(SectionState.CLOSED)]},
        )
    bids = bids_port.bids_to_open(section)
    if len(bids) < MIN_BIDS_TO_OPEN:
        fail_section(
            actor,
            section,
            _(
                "投标截止时有效投标人少于%(n)s个（%(bids)s个），依法不得开标。",
                n=MIN_BIDS_TO_OPEN,
                bids=len(bids),
            ),
        )
        return None
    ceremony = opening_ceremony(section)
    assert section.bid_deadline is not None
    session = OpeningSession(
        id=uuid.uuid4(),
        section_id=section.id,
        state=OpeningState.WAITING_SHARES,
        k=ceremony.k,
        n=ceremony.n,
        shares_received=0,
        quorum_deadline=section.bid_deadline + quorum_window(),
        started_at=at,
    )
    s = _session()
    s.add(session)
    for position, bid in enumerate(bids, start=1):
        s.add(
            OpeningResult(
                session_id=session.id,
                bid_id=bid.id,
                bidder_id=bid.bidder_id,
                bidder_name=bid.bidder.name,
                position=position,
                status=ResultStatus.PENDING,
                handover_attempts=0,
            )
        )
    previous = transition(section, SectionState.OPENING)
    s.flush()
    record_event(
        actor,
        "opening.started",
        "section",
        section.id,
        {
            "from": str(previous),
            "to": str(section.state),
            "session_id": session.id,
            "bids": [str(b.id) for b in bids],
            "k": session.k,
            "n": session.n,
            "quorum_deadline": _iso(session.quorum_deadline),
        },
    )
    _emit_after_commit(section.id, OPENING_STATE_CHANGED, {"state": str(session.state)})
    return session


def start_due_openings(at: datetime) -> int:
    """Sweep: start the opening of every closed section (idempotent)."""
    s = _session()
    sections = list(
        s.scalars(
            select(Section)
            .where(Section.state == SectionState.CLOSED)
            .order_by(Section.bid_deadline, Section.id)
        )
    )
    started = 0
    for section in sections:
        if get_session_of(section) is not None:
            continue
        if start_opening(None, section, at) is not None:
            started += 1
    return started


# =========================================================================== hall


def sign_in(actor: Actor, section: Section) -> HallSignIn:
    """Sign in to the opening hall (签到): bidders, custodians, center staff, supervisors and
    the tenderer/agency. Idempotent. Refusals: ``not_in_opening``, ``opening_not_started``."""
    cap = _require_capacity(actor, section)
    session = _require_session(section)
    s = _session()
    existing = s.scalar(
        select(HallSignIn).where(
            HallSignIn.session_id == session.id, HallSignIn.user_id == actor.id
        )
    )
    if existing is not None:
        return existing
    org = s.get(Organisation, cap.organisation_id) if cap.organisation_id else None
    row = HallSignIn(
        session_id=session.id,
        user_id=actor.id,
        display_name=actor.display_name or actor.username,
        capacity=cap.kind,
        organisation_id=cap.organisation_id,
        organisation_name=org.name if org is not None else None,
        signed_in_at=now(),
    )
    s.add(row)
    s.flush()
    record_event(
        actor,
        "opening.signed_in",
        "opening_session",
        session.id,
        {"capacity": cap.kind, "organisation_id": cap.organisation_id},
    )
    _emit_after_commit(section.id, BIDDER_SIGNED_IN, sign_in_view(row))
    return row


def sign_in_view(row: HallSignIn) -> dict[str, Any]:
    return {
        "display_name": row.display_name,
        "capacity": row.capacity,
        "organisation_name": row.organisation_name,
        "signed_in_at": _iso(row.signed_in_at),
    }


# =========================================================================== shares


def _parse_share(data: bytes, expected_index: int) -> Share:
    text = data.strip()
    try:
        if text.startswith(b"{"):
            return Share.from_dict(json.loads(text.decode("utf-8")))
        return Share.from_bytes(bytes(data))
    except (CryptoError, ValueError, UnicodeDecodeError) as exc:
        raise ShareInvalidError("malformed share", index=expected_index) from exc


def _share_from_passphrase(
    custodian: SectionCustodian, ceremony: OpeningKeyCeremony, pem: bytes, passphrase: str | None
) -> Share:
    try:
        key = load_x25519_private_key_pem(pem, passphrase.encode("utf-8") if passphrase else None)
    except (CryptoError, ValueError, TypeError) as exc:
        raise RuleViolation(
            _("无法读取密钥文件：文件格式不正确或口令错误。"),
            code=ErrorCode.CUSTODIAN_KEY_INVALID,
        ) from exc
    if custodian.encrypted_share is None:
        raise ShareInvalidError("no encrypted share on record", index=custodian.share_index)
    encrypted = EncryptedShare.from_dict(custodian.encrypted_share)
    return decrypt_share(encrypted, key, ceremony)


def release_share(
    actor: Actor,
    section: Section,
    share_bytes: bytes | None = None,
    *,
    private_key_pem: bytes | None = None,
    passphrase: str | None = None,
) -> ShareRelease:
    """A custodian releases its share of the opening key (释放密钥份额).

    Either ``share_bytes`` (decrypted client-side with ``sunbid-crypto decrypt-share``: the
    share JSON or its 35-byte binary form), or ``private_key_pem`` + ``passphrase``: the
    server decrypts the custodian's sealed share in memory (the key is never stored).
    The share is checked against its published commitment at once; a valid one is sealed
    to the opening vault; with k valid shares the decryption of every bid is queued.

    Refusals: ``not_a_custodian`` (403), ``opening_not_started``/``opening_closed`` (409),
    ``share_already_released`` (409), ``custodian_key_invalid`` (422), ``share_invalid``
    (422, ``details.index``; *recorded*: commit before replying).
    """
    custodian = _custodian(actor, section)
    if custodian is None or custodian.share_index is None:
        raise Forbidden(_("您不是本标段的开标密钥保管人。"), code=ErrorCode.NOT_A_CUSTODIAN)
    session = _require_session(section)
    session = _lock_session(session)
    if session.state is OpeningState.COMPLETED:
        raise Conflict(_("开标已结束。"), code=ErrorCode.OPENING_CLOSED)
    s = _session()
    index = custodian.share_index
    already = s.scalar(
        select(ShareRelease).where(
            ShareRelease.session_id == session.id,
            ShareRelease.share_index == index,
            ShareRelease.status == ShareStatus.VALID,
        )
    )
    if already is not None:
        raise Conflict(
            _("您的密钥份额已经提交，无需重复提交。"),
            code=ErrorCode.SHARE_ALREADY_RELEASED,
            details={"index": index},
        )
    ceremony = opening_ceremony(section)
    method = "upload" if share_bytes is not None else "passphrase"
    try:
        if share_bytes is not None:
            share = _parse_share(share_bytes, index)
        elif private_key_pem is not None:
            share = _share_from_passphrase(custodian, ceremony, private_key_pem, passphrase)
        else:
            raise RuleViolation(
                _("请上传解密后的密钥份额，或提供密钥文件及其口令。"),
                code=ErrorCode.VALIDATION_ERROR,
            )
        if share.index != index:
            raise ShareInvalidError("share of another custodian", index=share.index)
        verify_share(share, ceremony)
    except ShareInvalidError as exc:
        refused = ShareRelease(
            session_id=session.id,
            custodian_id=custodian.id,
            user_id=actor.id,
            share_index=index,
            status=ShareStatus.REFUSED,
            method=method,
            error_code=ErrorCode.SHARE_INVALID,
            released_at=now(),
        )
        s.add(refused)
        s.flush()
        record_event(
            actor,
            "opening.share_refused",
            "opening_session",
            session.id,
            {
                "index": index,
                "offered_index": exc.details.get("index"),
                "method": method,
                "reason": exc.message,
            },
        )
        raise ShareRefused(
            _("密钥份额校验失败（与公布的份额承诺不一致），本次提交不计入。"),
            details={"index": index},
        ) from None
    sealed = vault.box(vault.VAULT).seal(
        share.to_bytes(), {"section_id": str(section.id), "index": str(index)}
    )
    row = ShareRelease(
        session_id=session.id,
        custodian_id=custodian.id,
        user_id=actor.id,
        share_index=index,
        status=ShareStatus.VALID,
        method=method,
        sealed_share=sealed,
        released_at=now(),
    )
    s.add(row)
    session.shares_received = int(session.shares_received) + 1
    s.flush()
    record_event(
        actor,
        "opening.share_released",
        "opening_session",
        session.id,
        {"index": index, "method": method, "released": session.shares_received, "k": session.k},
    )
    _emit_after_commit(
        section.id,
        SHARE_RELEASED,
        {"index": index, "released": session.shares_received, "k": session.k, "n": session.n},
    )
    if session.shares_received >= session.k and session.state in (
        OpeningState.WAITING_SHARES,
        OpeningState.SELF_OPEN_WINDOW,
    ):
        _quorum_reached(session, section)
    return row


def _quorum_reached(session: OpeningSession, section: Section) -> None:
    previous = transition(session, OpeningState.DECRYPTING)
    session.quorum_reached_at = now()
    _session().flush()
    record_event(
        None,
        "opening.quorum_reached",
        "opening_session",
        session.id,
        {"from": str(previous), "to": str(session.state), "k": session.k},
    )
    _emit_after_commit(section.id, OPENING_STATE_CHANGED, {"state": str(session.state)})
    _enqueue_decrypt_many(
        [result.id for result in session.results if result.status is ResultStatus.PENDING]
    )


def _load_shares(session: OpeningSession, section: Section) -> list[Share]:
    box = vault.box(vault.VAULT)
    shares = []
    for release in session.releases:
        if release.status is ShareStatus.VALID and release.sealed_share is not None:
            raw = box.open(
                release.sealed_share,
                {"section_id": str(section.id), "index": str(release.share_index)},
            )
            shares.append(Share.from_bytes(raw))
    return shares


# =========================================================================== self-open


def _result_for_bidder(actor: Actor, session: OpeningSession) -> OpeningResult:
    orgs = actor.organisations_with(Role.BIDDER_REP)
    for result in session.results:
        if result.bidder_id in orgs:
            return result
    raise Forbidden(_("您所在单位在本标段没有有效投标。"), code=ErrorCode.NOT_IN_OPENING)


def self_open(actor: Actor, section: Section, data_key: bytes) -> OpeningResult:
    """A bidder hands over its own bid's data key (投标人自行解密, 交出数据密钥) after the
    custodians' quorum failed within the window (``sunbid-crypto unwrap`` with its own key).

    The key is checked against the envelope header's commitment at once; a valid key is
    sealed to the opening vault and the bid's decryption is queued.

    Refusals: ``not_in_opening`` (403), ``opening_not_started`` (409),
    ``self_open_not_allowed`` (409: the quorum window is still open, or the self-open
    window has closed), ``bid_already_opened`` (409), ``data_key_invalid`` (422,
    *recorded*; after ``SUNBID_OPENING_HANDOVER_ATTEMPTS`` wrong keys the bid is revoked),
    ``storage_unavailable`` (503).
    """
    session = _require_session(section)
    result = _result_for_bidder(actor, session)
    session = _lock_session(session)
    at = now()
    if session.state is not OpeningState.SELF_OPEN_WINDOW or (
        session.self_open_deadline is not None and at >= session.self_open_deadline
    ):
        raise Conflict(
            _(
                "当前不能自行解密：仅在密钥保管人未能在规定时间内完成解密后、自行解密期限内可以提交数据密钥。"
            ),
            code=ErrorCode.SELF_OPEN_NOT_ALLOWED,
            details={
                "state": str(session.state),
                "quorum_deadline": _iso(session.quorum_deadline),
                "self_open_deadline": _iso(session.self_open_deadline),
            },
        )
    result = _lock_result(result.id)
    if result.status is not ResultStatus.PENDING or result.sealed_handover_key is not None:
        raise Conflict(
            _("该投标文件已解密或已提交数据密钥。"),
            code=ErrorCode.BID_ALREADY_OPENED,
            details={"status": str(result.status)},
        )
    bid = _session().get(Bid, result.bid_id)
    assert bid is not None
    with get_storage().open(bid.storage_key) as src:
        header = read_header(cast(ReadableStream, src))
    s = _session()
    try:
        if len(data_key) != 32:
            raise ValueError("data key must be 32 bytes")
        if header.key_commitment.hex() != bid.data_key_commitment:
            raise ValueError("envelope commitment differs from the signed manifest")
        check_data_key(header, data_key)
    except (CryptoError, ValueError) as exc:
        result.handover_attempts = int(result.handover_attempts) + 1
        left = max_handover_attempts() - result.handover_attempts
        code = getattr(exc, "code", "data_key_length")
        record_event(
            actor,
            "opening.data_key_refused",
            "bid",
            bid.id,
            {"attempt": result.handover_attempts, "code": code},
        )
        if left <= 0:
            _finish(
                result,
                section,
                ResultStatus.REVOKED,
                evidence={
                    "code": ErrorCode.DATA_KEY_INVALID,
                    "check": "data_key_commitment",
                    "fault": "bidder",
                    "attempts": result.handover_attempts,
                    "message": "the bidder's data key does not match its signed commitment",
                },
            )
        s.flush()
        if left <= 0:
            _maybe_complete(session, section)
        raise DataKeyRefused(
            _("数据密钥与投标文件的密钥承诺不一致。"),
            details={"attempts_left": max(0, left), "revoked": left <= 0},
        ) from None
    result.sealed_handover_key = vault.box(vault.VAULT).seal(
        data_key, {"section_id": str(section.id), "bid_id": str(bid.id)}
    )
    s.flush()
    record_event(actor, "opening.data_key_handed_over", "bid", bid.id, {"result_id": result.id})
    _enqueue_decrypt(result.id)
    return result


# =========================================================================== decryption


@dataclass
class Outcome:
    """What a decryption attempt established for one bid."""

    status: ResultStatus
    evidence: dict[str, Any] | None = None
    price_sheet: dict[str, Any] | None = None
    plaintext_size: int | None = None
    data_key: bytes | None = field(default=None, repr=False)
    opened_via: str | None = None


#: Which check each envelope error code stands for (evidence ``check``).
_CHECKS = {
    "envelope_key_commitment": "key_commitment",
    "envelope_header_auth": "header_mac",
    "envelope_segment_auth": "segment_authentication",
    "envelope_truncated": "segment_structure",
    "envelope_trailing_data": "segment_structure",
    "envelope_format": "header_format",
    "envelope_limit_exceeded": "header_format",
    "envelope_version_unsupported": "header_format",
    "envelope_unwrap_failed": "recipient_stanza",
    "envelope_no_matching_recipient": "recipient_stanza",
    "envelope_context_mismatch": "context",
    "envelope_hash_mismatch": "ciphertext_sha256",
}


def classify_failure(
    error: BaseException, *, stored_matches_signed: bool | None = None
) -> tuple[ResultStatus, dict[str, Any]]:
    """Classify a decryption failure (DZ20 31) → (revoked | withdrawn, evidence).

    * the stored ciphertext is unreadable or differs from what the bidder signed (storage
      failure, ``envelope_hash_mismatch``) → **withdrawn** (撤回), fault ``storage``;
    * the platform's keys fail (vault, reconstructed opening key) → **withdrawn**, fault
      ``platform``;
    * any other envelope failure on bytes equal to the signed ones (bad stanza, commitment
      mismatch of a dishonest two-key envelope, tampered header, bad segment) → **revoked**
      (撤销), fault ``bidder``: the bidder signed those very bytes;
    * a missing or malformed package / price sheet inside a correctly decrypted envelope →
      **revoked**, fault ``bidder``.
    """
    message = str(getattr(error, "message", "") or error)[:500]
    if isinstance(error, PriceSheetUnreadable):
        return ResultStatus.REVOKED, {
            "code": error.code,
            "check": "price_sheet",
            "fault": "bidder",
            "message": message,
            **{k: v for k, v in error.details.items() if isinstance(v, str | int)},
        }
    if isinstance(error, ObjectNotFound | StorageUnavailable):
        return ResultStatus.WITHDRAWN, {
            "code": str(error.code),
            "check": "storage",
            "fault": "storage",
            "message": message,
        }
    if isinstance(error, PlatformKeyFailure):
        return ResultStatus.WITHDRAWN, {
            "code": error.code,
            "check": "platform_key",
            "fault": "platform",
            "message": message,
        }
    if isinstance(error, CiphertextHashMismatchError) or (
        isinstance(error, EnvelopeError) and stored_matches_signed is False
    ):
        return ResultStatus.WITHDRAWN, {
            "code": str(getattr(error, "code", "envelope_hash_mismatch")),
            "check": "ciphertext_sha256",
            "fault": "storage",
            "message": message,
        }
    if isinstance(error, CryptoError):
        evidence: dict[str, Any] = {
            "code": error.code,
            "check": _CHECKS.get(error.code, "envelope"),
            "fault": "bidder",
            "message": message,
        }
        segment = error.details.get("segment")
        if isinstance(segment, int):
            evidence["segment"] = segment
        return ResultStatus.REVOKED, evidence
    return ResultStatus.WITHDRAWN, {
        "code": "internal_error",
        "check": "platform",
        "fault": "platform",
        "message": type(error).__name__,
    }


class PlatformKeyFailure(Exception):
    """The vault or the reconstructed opening key failed (not the bidder's fault)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _key_for(
    result: OpeningResult, session: OpeningSession, section: Section
) -> tuple[str, Any] | None:
    """("quorum", opening private key) or ("self", data key), or None if not openable yet.

    The opening key is rebuilt from the vault-sealed shares once per worker process and
    session and kept in memory only (:func:`bidding.opening.vault.opening_key`)."""
    if session.shares_received >= session.k:

        def rebuild() -> Any:
            return combine_shares(_load_shares(session, section), opening_ceremony(section))

        try:
            return "quorum", vault.opening_key(
                session.id, int(session.shares_received), rebuild, vault.key_cache_seconds()
            )
        except (CryptoError, OSError, ValueError) as exc:
            raise PlatformKeyFailure(
                str(getattr(exc, "code", "platform_key_failed")),
                "the opening key could not be reconstructed from the released shares",
            ) from exc
    if result.sealed_handover_key is not None:
        try:
            key = vault.box(vault.VAULT).open(
                result.sealed_handover_key,
                {"section_id": str(section.id), "bid_id": str(result.bid_id)},
            )
        except (CryptoError, OSError, ValueError) as exc:
            raise PlatformKeyFailure(
                str(getattr(exc, "code", "vault_key_failed")),
                "the handed-over data key could not be read from the opening vault",
            ) from exc
        return "self", key
    return None


def _stored_matches(bid: Bid) -> bool | None:
    try:
        size, digest = get_storage().hash_object(bid.storage_key)
    except DomainError:
        return None
    return size == bid.ciphertext_size and digest == bid.ciphertext_sha256


def _tmp_root() -> Path:
    settings = current_app.extensions["sunbid_settings"]
    root = Path(settings.extra.get("opening_tmp_dir", "") or settings.instance_dir / "tmp")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _hash_thread() -> bool:
    """*setting* ``SUNBID_OPENING_HASH_THREAD`` (default off): compute the ciphertext's
    SHA-256 in a helper thread beside AES-GCM. Off by default because the decrypt workers
    already keep every core busy (one pool process per core), where the helper thread
    only adds hand-offs: ~10 % slower per bid, measured with 2 processes on 2 cores."""
    settings = current_app.extensions["sunbid_settings"]
    value = str(settings.extra.get("opening_hash_thread", "")).strip().lower()
    return value in {"1", "true", "yes", "on"}


def _decrypt(
    bid: Bid, section: Section, via: str, secret: Any, sink: Any | None = None
) -> tuple[OpenResult, bytes, Any]:
    """One streaming pass: GET the ciphertext, recover the data key from its header, open
    the envelope (commitment, header MAC, every segment and the SHA-256 of the stored
    bytes against the signed manifest) into ``sink`` — by default a
    :class:`~bidding.opening.pricesheet.PackageCapture` sized from the signed ciphertext
    size. Returns (open result, data key, sink)."""
    with get_storage().open(bid.storage_key) as raw:
        src = cast(ReadableStream, raw)
        header = read_header(src)
        data_key = unwrap_data_key(header, secret) if via == "quorum" else bytes(secret)
        if sink is None:
            sink = PackageCapture(
                plaintext_size_of(bid.ciphertext_size, header.size, header.segment_size),
                first_entry=PRICE_SHEET_NAME,
            )
        opened = open_envelope(
            src,
            sink,
            data_key=data_key,
            expected_ciphertext_sha256=bytes.fromhex(bid.ciphertext_sha256),
            expected_key_commitment=bytes.fromhex(bid.data_key_commitment),
            expected_context={
                "section_id": str(section.id),
                "opening_key_fingerprint": section.opening_key_fingerprint or "",
            },
            threads=_hash_thread(),
            header=header,  # read once: the data key came from it
        )
    return opened, data_key, sink


def _sheet_from_file(bid: Bid, section: Section, via: str, secret: Any) -> dict[str, Any]:
    """Fallback for a package whose price sheet or central directory lies outside what the
    capture keeps: decrypt again into a private temporary file and read it from there."""
    log.info("bid %s: price sheet not in the captured head/tail, reading a full copy", bid.id)
    workdir = Path(tempfile.mkdtemp(prefix="opening-", dir=_tmp_root()))
    plain = workdir / "bid.zip"
    try:
        with plain.open("wb") as dst:
            _decrypt(bid, section, via, secret, dst)
        return bids_port.read_price_sheet(plain, section=section, bid=bid)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _read_sheet(
    capture: PackageCapture, bid: Bid, section: Section, via: str, secret: Any
) -> dict[str, Any]:
    """The price sheet from the captured plaintext (the bids domain's reader, unchanged),
    or — if that reader needed bytes the capture did not keep — from a full copy."""
    try:
        sheet = bids_port.read_price_sheet(capture.reader(), section=section, bid=bid)
    except (PlaintextGap, PriceSheetUnreadable):
        if not capture.missed:
            raise
    else:
        if not capture.missed:
            return sheet
    return _sheet_from_file(bid, section, via, secret)


def _attempt(
    result: OpeningResult, session: OpeningSession, section: Section, bid: Bid
) -> Outcome | None:
    try:
        key = _key_for(result, session, section)
    except PlatformKeyFailure as exc:
        status, evidence = classify_failure(exc)
        return Outcome(status, evidence)
    if key is None:
        return None
    via, secret = key
    try:
        opened, data_key, capture = _decrypt(bid, section, via, secret)
        try:
            sheet = _read_sheet(capture, bid, section, via, secret)
        except PriceSheetUnreadable as exc:
            status, evidence = classify_failure(exc)
            evidence["via"] = via
            return Outcome(status, evidence, opened_via=via)
    except (CryptoError, DomainError) as exc:
        matches = None
        if isinstance(exc, EnvelopeError) and not isinstance(exc, CiphertextHashMismatchError):
            matches = _stored_matches(bid)
        status, evidence = classify_failure(exc, stored_matches_signed=matches)
        evidence["via"] = via
        return Outcome(status, evidence, opened_via=via)
    return Outcome(
        ResultStatus.OPENED,
        price_sheet=sheet,
        plaintext_size=opened.plaintext_size,
        data_key=data_key,
        opened_via=via,
    )


def _result_values(
    result: OpeningResult,
    status: ResultStatus,
    evidence: dict[str, Any] | None,
    outcome: Outcome | None,
    bid: Bid | None = None,
) -> dict[str, Any]:
    """The columns a finished result gets (the data key of an opened bid archived)."""
    values: dict[str, Any] = {"status": status, "evidence": evidence, "sealed_handover_key": None}
    if outcome is not None:
        values["opened_via"] = outcome.opened_via
        if status is ResultStatus.OPENED:
            bid = bid or _session().get(Bid, result.bid_id)
            assert bid is not None and outcome.data_key is not None
            values.update(
                price_sheet=outcome.price_sheet,
                plaintext_size=outcome.plaintext_size,
                decrypted_at=now(),
                archive_storage_key=bid.storage_key,
                archived_data_key=vault.box(vault.ARCHIVE).seal(
                    outcome.data_key, {"bid_id": str(bid.id)}
                ),
            )
    return values


def _finish(
    result: OpeningResult,
    section: Section,
    status: ResultStatus,
    *,
    evidence: dict[str, Any] | None = None,
    outcome: Outcome | None = None,
) -> None:
    """Record a result the caller holds locked as finished (audit event, hall emit)."""
    for name, value in _result_values(result, status, evidence, outcome).items():
        setattr(result, name, value)
    _session().flush()
    _recorded(result, section)


def _event_of(result: OpeningResult) -> EventEntry:
    """The audit event of a finished result."""
    return (
        f"opening.bid_{result.status.value}",
        "bid",
        result.bid_id,
        {
            "result_id": result.id,
            "status": str(result.status),
            "via": result.opened_via,
            "evidence": result.evidence,
        },
    )


def _recorded(result: OpeningResult, section: Section) -> None:
    record_event(None, *_event_of(result))
    _emit_after_commit(section.id, BID_DECRYPTED, result_view(result))


#: What :func:`decrypt_result` reads of the section, the bid and the bidder (their JSON
#: documents — manifest, receipt, certificates, evaluation method — stay in the database).
_DECRYPT_COLUMNS = (
    load_only(Section.id, Section.opening_key_fingerprint, Section.version),
    load_only(
        Bid.id,
        Bid.section_id,
        Bid.bidder_id,
        Bid.storage_key,
        Bid.ciphertext_size,
        Bid.ciphertext_sha256,
        Bid.data_key_commitment,
    ),
    load_only(Organisation.id, Organisation.credit_code),
)


def _decrypt_rows() -> Select[OpeningResult, OpeningSession, Section, Bid, Organisation]:
    """One round trip for everything an attempt reads (the relationships then resolve from
    the identity map): the result, its session, section, bid and bidder — of the last
    three only the columns the decryption uses (anything else would load on use)."""
    return (
        select(OpeningResult, OpeningSession, Section, Bid, Organisation)
        .join(OpeningSession, OpeningSession.id == OpeningResult.session_id)
        .join(Section, Section.id == OpeningSession.section_id)
        .join(Bid, Bid.id == OpeningResult.bid_id)
        .join(Organisation, Organisation.id == Bid.bidder_id)
        .options(*_DECRYPT_COLUMNS)
    )


def decrypt_result(result_id: uuid.UUID, *, complete: bool = True) -> OpeningResult | None:
    """Decrypt one bid (the decrypt task's service): stream the ciphertext from storage,
    recover the data key (the opening key rebuilt in memory from the vault-sealed shares,
    or the bidder's handed-over key), open the envelope against the signed hash and
    commitment, read the price sheet, archive the data key, record the result, and
    complete the opening when it was the last bid. Idempotent: a finished result is
    returned unchanged; a result that cannot be opened yet is left pending.

    ``complete=False`` (a task decrypting a chunk of bids): leave the completion check to
    the caller, :func:`complete_finished_openings` once after the chunk."""
    s = _session()
    row = s.execute(_decrypt_rows().where(OpeningResult.id == result_id)).one_or_none()
    if row is None:
        return s.get(OpeningResult, result_id)
    result, session, section, bid, _bidder = row
    if result.status is not ResultStatus.PENDING:
        return result
    outcome = _attempt(result, session, section, bid)
    if outcome is None:
        return result
    written, current = _write_outcomes([(result, section, bid, outcome)])
    if written and complete:
        _maybe_complete(session, section)
    return (written or current)[0]


@dataclass
class ChunkResults:
    """What :func:`decrypt_results` did with each bid of a chunk."""

    #: result id → status (None: unknown result, or left pending by an error).
    statuses: dict[uuid.UUID, ResultStatus | None]
    #: the first unexpected error (the bid it hit is left pending), if any.
    error: Exception | None = None


def decrypt_results(result_ids: Sequence[uuid.UUID]) -> ChunkResults:
    """Decrypt a chunk of bids (the chunk task's service) in the caller's transaction.

    One query reads every result of the chunk; each pending bid is then decrypted in turn
    (:func:`_attempt`, as :func:`decrypt_result` does; no row lock is held meanwhile);
    then the outcomes are written together: the results still pending are locked
    (``SELECT … FOR UPDATE``, in id order), written by one statement per kind of outcome,
    and their audit events inserted by one flush. A result another worker finished
    meanwhile is not written again. Should the joint write fail, each result is written
    alone (a savepoint each): a bad one is left pending and logged, the others still
    commit. A bid whose attempt raises is left pending too; the first such error is
    returned for the caller to raise after the commit. The hall hears of each result
    after the commit.

    The completion check is the caller's, after the commit
    (:func:`complete_finished_openings`)."""
    s = _session()
    ids = list(dict.fromkeys(result_ids))
    rows = {row[0].id: row for row in s.execute(_decrypt_rows().where(OpeningResult.id.in_(ids)))}
    out = ChunkResults({})
    done: list[tuple[OpeningResult, Section, Bid, Outcome]] = []
    for rid in ids:
        row = rows.get(rid)
        if row is None:
            out.statuses[rid] = None
            continue
        result, session, section, bid, _bidder = row
        if result.status is not ResultStatus.PENDING:
            out.statuses[rid] = result.status
            continue
        try:
            outcome = _attempt(result, session, section, bid)
        except Exception as exc:
            log.exception("opening: decrypting result %s failed", rid)
            out.statuses[rid] = None
            out.error = out.error or exc
            continue
        if outcome is None:
            out.statuses[rid] = ResultStatus.PENDING
        else:
            done.append((result, section, bid, outcome))
    if not done:
        return out
    try:
        with s.begin_nested():
            mine, theirs = _write_outcomes(done)
            written = mine + theirs
    except Exception as exc:  # one bad row must not cost the others their results
        log.warning("opening: writing %d results at once failed (%s); one by one", len(done), exc)
        written = []
        for item in done:
            try:
                with s.begin_nested():
                    mine, theirs = _write_outcomes([item])
                    written += mine + theirs
            except Exception as one_exc:
                log.exception("opening: writing result %s failed", item[0].id)
                out.statuses[item[0].id] = None
                out.error = out.error or one_exc
    for result in written:
        out.statuses[result.id] = result.status
    return out


def _write_outcomes(
    done: Sequence[tuple[OpeningResult, Section, Bid, Outcome]],
) -> tuple[list[OpeningResult], list[OpeningResult]]:
    """Write the outcomes of :func:`decrypt_results` (see there) or of one bid
    (:func:`decrypt_result`). Returns (the results written here, the results another
    worker finished meanwhile, re-read under their row lock and left as they are)."""
    s = _session()
    mine = set(
        s.scalars(
            select(OpeningResult.id)
            .where(
                OpeningResult.id.in_([result.id for result, *_ in done]),
                OpeningResult.status == ResultStatus.PENDING,
            )
            .order_by(OpeningResult.id)
            .with_for_update()
        )
    )
    table = cast(Any, OpeningResult.__table__)
    stamp = now()
    statements: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    finished: list[tuple[OpeningResult, Section, dict[str, Any]]] = []
    current: list[OpeningResult] = []
    for result, section, bid, outcome in done:
        if result.id not in mine:  # another worker finished it meanwhile
            current.append(_lock_result(result.id))
            continue
        values = _result_values(result, outcome.status, outcome.evidence, outcome, bid)
        values["updated_at"] = stamp
        statements.setdefault(tuple(sorted(values)), []).append({"result_pk": result.id, **values})
        finished.append((result, section, values))
    for params in statements.values():  # an executemany each (opened / failed)
        s.execute(table.update().where(table.c.id == bindparam("result_pk")), params)
    for result, _section, values in finished:
        for name, value in values.items():
            set_committed_value(result, name, value)
    record_events(None, [_event_of(result) for result, _section, _values in finished])
    for result, section, _values in finished:
        _emit_after_commit(section.id, BID_DECRYPTED, result_view(result))
    return [result for result, _section, _values in finished], current


def complete_finished_openings(result_ids: Sequence[uuid.UUID]) -> int:
    """Complete the openings of these results whose every bid is finished (after a chunk,
    :func:`decrypt_results` or :func:`decrypt_result` calls with ``complete=False``,
    committed). Run after the chunk's commit, it sees every committed result, so the last
    chunk of an opening to finish completes it: one unlocked query of three columns skips
    the sessions that still have a pending bid (every chunk but the last); the others are
    loaded, checked again and completed under the session's row lock.
    Returns how many are completed."""
    s = _session()
    pending = (
        select(OpeningResult.id)
        .where(
            OpeningResult.session_id == OpeningSession.id,
            OpeningResult.status == ResultStatus.PENDING,
        )
        .exists()
    )
    rows = s.execute(
        select(OpeningSession.id, OpeningSession.state, pending).where(
            OpeningSession.id.in_(
                select(OpeningResult.session_id).where(OpeningResult.id.in_(list(result_ids)))
            )
        )
    ).all()
    done = 0
    for session_id, state, has_pending in rows:
        # Unlocked first look: a session with a pending bid is not complete (if that bid
        # commits later, its own chunk's check comes after its commit and sees it).
        if not has_pending and state is not OpeningState.COMPLETED:
            session = s.get(OpeningSession, session_id)
            assert session is not None
            _maybe_complete(session, s.get(Section, session.section_id))  # type: ignore[arg-type]
            state = session.state
        done += state is OpeningState.COMPLETED
    return done


def _maybe_complete(session: OpeningSession, section: Section) -> None:
    session = _lock_session(session)
    if session.state is OpeningState.COMPLETED:
        return
    if _progress(session)[ResultStatus.PENDING.value] == 0 and session.state in (
        OpeningState.DECRYPTING,
        OpeningState.SELF_OPEN_WINDOW,
    ):
        complete_opening(None, session)


def advance_due_sessions(at: datetime) -> int:
    """Sweep: quorum window passed → self-open window; self-open window passed → every bid
    still without a handed-over key is revoked (the bidder did not open in time) and the
    opening completes once the queued decryptions are done. Returns sessions moved."""
    s = _session()
    moved = 0
    due = list(
        s.scalars(
            select(OpeningSession).where(
                OpeningSession.state == OpeningState.WAITING_SHARES,
                OpeningSession.quorum_deadline <= at,
            )
        )
    )
    for session in due:
        session = _lock_session(session)
        if session.state is not OpeningState.WAITING_SHARES:
            continue
        previous = transition(session, OpeningState.SELF_OPEN_WINDOW)
        session.self_open_deadline = session.quorum_deadline + self_open_window()
        s.flush()
        record_event(
            None,
            "opening.quorum_failed",
            "opening_session",
            session.id,
            {
                "from": str(previous),
                "to": str(session.state),
                "released": session.shares_received,
                "k": session.k,
                "self_open_deadline": _iso(session.self_open_deadline),
            },
        )
        _emit_after_commit(
            session.section_id,
            OPENING_STATE_CHANGED,
            {"state": str(session.state), "self_open_deadline": _iso(session.self_open_deadline)},
        )
        moved += 1
    expired = list(
        s.scalars(
            select(OpeningSession).where(
                OpeningSession.state == OpeningState.SELF_OPEN_WINDOW,
                OpeningSession.self_open_deadline <= at,
            )
        )
    )
    for session in expired:
        session = _lock_session(session)
        section = s.get(Section, session.section_id)
        assert section is not None
        for result in session.results:
            if result.status is ResultStatus.PENDING and result.sealed_handover_key is None:
                _finish(
                    _lock_result(result.id),
                    section,
                    ResultStatus.REVOKED,
                    evidence={
                        "code": "not_opened_in_window",
                        "check": "self_open_window",
                        "fault": "bidder",
                        "message": "no quorum, and no data key from the bidder in time",
                    },
                )
        _maybe_complete(session, section)
        moved += 1
    return moved


# =========================================================================== completion


def _money_of(sheet: Mapping[str, Any] | None) -> Any:
    if not sheet:
        return None
    for key in ("total_price", "price", "bid_price", "total"):
        if key in sheet:
            return sheet[key]
    return None


def result_view(result: OpeningResult) -> dict[str, Any]:
    return {
        "bid_id": str(result.bid_id),
        "bidder_name": result.bidder_name,
        "position": result.position,
        "status": str(result.status),
        "opened_via": result.opened_via,
        "price": _money_of(result.price_sheet),
        "price_sheet": result.price_sheet,
        "failure": (
            None
            if result.evidence is None
            else {
                "classification": str(result.status),
                **{k: v for k, v in result.evidence.items() if k != "message"},
            }
        ),
    }


def complete_opening(actor: Actor | None, session: OpeningSession) -> OpeningSession:
    """Build, sign (platform key) and publish the opening record (开标记录); section →
    opened; erase the released shares and handed-over keys. Refusals: ``conflict`` while
    a bid is still pending; idempotent once completed."""
    s = _session()
    session = _lock_session(session)
    if session.state is OpeningState.COMPLETED:
        return session
    progress = _progress(session)
    if progress[ResultStatus.PENDING.value]:
        raise Conflict(_("尚有投标文件未完成解密。"), code=ErrorCode.CONFLICT, details=progress)
    section = _lock_section(s.get(Section, session.section_id))  # type: ignore[arg-type]
    at = now()
    bids = {
        b.id: b
        for b in s.scalars(
            select(Bid)
            .where(Bid.section_id == section.id)
            .options(  # what the record lists (the manifests and receipts stay put)
                load_only(Bid.id, Bid.ciphertext_sha256, Bid.data_key_commitment, Bid.committed_at)
            )
        )
    }
    orgs = {
        o.id: o
        for o in s.scalars(
            select(Organisation).where(Organisation.id.in_({r.bidder_id for r in session.results}))
        )
    }
    records = []
    for result in session.results:
        bid = bids[result.bid_id]
        org = orgs.get(result.bidder_id)
        row = result_view(result)
        row.update(
            {
                "bidder_credit_code": org.credit_code if org is not None else None,
                "ciphertext_sha256": bid.ciphertext_sha256,
                "data_key_commitment": bid.data_key_commitment,
                "submitted_at": _iso(bid.committed_at),
                "decrypted_at": _iso(result.decrypted_at),
            }
        )
        records.append(row)
    released = sorted(r.share_index for r in session.releases if r.status is ShareStatus.VALID)
    project = section.project
    document: dict[str, Any] = {
        "type": RECORD_TYPE,
        "version": 1,
        "section": {
            "id": str(section.id),
            "code": section.code,
            "name": section.name,
            "project_code": project.code,
            "project_name": project.name,
        },
        "bid_deadline": _iso(section.bid_deadline),
        "started_at": _iso(session.started_at),
        "completed_at": _iso(at),
        "opening_key_fingerprint": section.opening_key_fingerprint,
        "quorum": {
            "k": session.k,
            "n": session.n,
            "released_indices": released,
            "reached": session.quorum_reached_at is not None,
            "quorum_deadline": _iso(session.quorum_deadline),
            "self_open_deadline": _iso(session.self_open_deadline),
        },
        "bids": records,
        "counts": {k: v for k, v in progress.items()},
        "signed_in": [sign_in_view(r) for r in session.sign_ins],
        "objections": [objection_view(o) for o in session.objections],
    }
    document = json.loads(json.dumps(document, default=str))
    signed = SignedDocument.create(platform_key().private_key, document)
    import hashlib

    raw = signed.to_json()
    session.record = signed.to_dict()
    session.record_sha256 = hashlib.sha256(raw).hexdigest()
    session.completed_at = at
    previous = transition(session, OpeningState.COMPLETED)
    for release in session.releases:
        if release.sealed_share is not None:
            release.sealed_share = None
            release.erased_at = at
    for result in session.results:
        result.sealed_handover_key = None
    section_previous = transition(section, SectionState.OPENED)
    vault.forget_opening_key(session.id)  # this process's copy; the others expire
    s.flush()
    record_event(
        actor,
        "opening.completed",
        "section",
        section.id,
        {
            "from": str(section_previous),
            "to": str(section.state),
            "session_from": str(previous),
            "record_sha256": session.record_sha256,
            "counts": progress,
        },
    )
    _emit_after_commit(
        section.id,
        OPENING_COMPLETED,
        {"record_sha256": session.record_sha256, "bids": records},
    )
    return session


def record_document(section: Section) -> SignedDocument:
    """The published, signed opening record. Refusal: ``opening_record_not_published``."""
    session = get_session_of(section)
    if session is None or session.record is None:
        raise NotFound(_("开标记录尚未发布。"), code=ErrorCode.OPENING_RECORD_NOT_PUBLISHED)
    return SignedDocument.from_dict(session.record)


# =========================================================================== objections


def objection_view(o: OpeningObjection) -> dict[str, Any]:
    return {
        "id": str(o.id),
        "bidder_name": o.bidder_name,
        "text": o.text,
        "raised_at": _iso(o.raised_at),
        "answer": o.answer,
        "answered_by": o.answered_by_name,
        "answered_at": _iso(o.answered_at),
    }


def raise_objection(actor: Actor, section: Section, text: str) -> OpeningObjection:
    """A bidder objects at the opening (开标异议, SSTL 44): recorded and shown in the hall.

    Refusals: ``not_in_opening`` (403, not a bidder of the section), ``opening_not_started``
    / ``opening_closed`` (409, the section has moved past the opening), ``reason_required``.
    """
    cap = capacity_of(actor, section)
    if cap is None or cap.kind != "bidder" or cap.organisation_id is None:
        raise Forbidden(_("只有本标段的投标人可以提出开标异议。"), code=ErrorCode.NOT_IN_OPENING)
    session = _require_session(section)
    if section.state not in (SectionState.OPENING, SectionState.OPENED):
        raise Conflict(_("开标环节已结束，不能再提出开标异议。"), code=ErrorCode.OPENING_CLOSED)
    body = _text(text, _("异议内容"))
    org = _session().get(Organisation, cap.organisation_id)
    row = OpeningObjection(
        session_id=session.id,
        bidder_id=cap.organisation_id,
        bidder_name=org.name if org is not None else "",
        raised_by_id=actor.id,
        text=body,
        raised_at=now(),
    )
    _session().add(row)
    _session().flush()
    record_event(
        actor,
        "opening.objection_raised",
        "opening_objection",
        row.id,
        {"session_id": session.id, "bidder_id": cap.organisation_id},
    )
    _emit_after_commit(section.id, OBJECTION_RAISED, objection_view(row))
    return row


def answer_objection(actor: Actor, objection: OpeningObjection, answer: str) -> OpeningObjection:
    """Answer an objection on the spot (当场答复): the tenderer, the agency or center staff.

    Refusals: ``forbidden`` (403), ``objection_already_answered`` (409), ``reason_required``.
    """
    session = objection.session
    section = _session().get(Section, session.section_id)
    assert section is not None
    cap = capacity_of(actor, section)
    if cap is None or not cap.may_answer:
        raise Forbidden(
            _("只有招标人、招标代理机构或交易中心工作人员可以答复开标异议。"),
            code=ErrorCode.FORBIDDEN,
        )
    row = db.lock_row(OpeningObjection, objection.id)
    if row.answer is not None:
        raise Conflict(_("该异议已答复。"), code=ErrorCode.OBJECTION_ALREADY_ANSWERED)
    body = _text(answer, _("答复内容"))
    user = _session().get(User, actor.id)
    row.answered_by_name = (user.display_name if user is not None else "") or actor.username
    row.answer, row.answered_by_id, row.answered_at = body, actor.id, now()
    _session().flush()
    record_event(
        actor, "opening.objection_answered", "opening_objection", row.id, {"session_id": session.id}
    )
    _emit_after_commit(section.id, OBJECTION_ANSWERED, objection_view(row))
    return row


# =========================================================================== views


def hall_state(actor: Actor | None, section: Section) -> dict[str, Any]:
    """The opening as the caller may see it: everyone sees the state and the published
    record; parties to the opening also see sign-ins, shares, per-bid progress and
    objections live."""
    session = get_session_of(section)
    cap = capacity_of(actor, section)
    state: dict[str, Any] = {
        "section_id": str(section.id),
        "section_state": str(section.state),
        "state": str(session.state) if session is not None else None,
        "capacity": cap.kind if cap is not None else None,
        "record_published": bool(session is not None and session.record is not None),
    }
    if session is None:
        return state
    state.update(
        {
            "k": session.k,
            "n": session.n,
            "shares_released": session.shares_received,
            "quorum_deadline": _iso(session.quorum_deadline),
            "self_open_deadline": _iso(session.self_open_deadline),
            "started_at": _iso(session.started_at),
            "completed_at": _iso(session.completed_at),
            "record_sha256": session.record_sha256,
        }
    )
    if cap is None:
        if session.record is not None:
            state["bids"] = session.record["document"]["bids"]
        return state
    state.update(
        {
            "progress": _progress(session),
            "released_indices": sorted(
                r.share_index for r in session.releases if r.status is ShareStatus.VALID
            ),
            "signed_in": [sign_in_view(r) for r in session.sign_ins],
            "objections": [objection_view(o) for o in session.objections],
            # names and prices are read out as each bid is decrypted (唱标, DZ20 30)
            "bids": [result_view(r) for r in session.results],
        }
    )
    if cap.custodian is not None:
        state["my_share_index"] = cap.custodian.share_index
        state["my_share_released"] = cap.custodian.share_index in state["released_indices"]
    return state


# =========================================================================== documents

DOCUMENT_LINK_SECONDS = 300
_DOCUMENT_SALT = "sunbid-opening-document"


def _document_serializer() -> Any:
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_DOCUMENT_SALT)


def document_link(
    actor: Actor, section: Section, result: OpeningResult, expires: int = DOCUMENT_LINK_SECONDS
) -> tuple[str, int]:
    """A short-lived link to a decrypted bid (解密后的投标文件).

    The decrypted bid is kept encrypted at rest (its ciphertext, with the data key sealed
    to the archive key); the link is signed, expires after ``expires`` seconds and is bound
    to the result and the ciphertext hash; the platform decrypts while it streams. Until
    the committee exists, center staff and supervisors of the section's center may ask.
    Refusals: ``forbidden`` (403), ``opening_record_not_published`` (404: not opened yet,
    or this bid was not decrypted).
    """
    cap = capacity_of(actor, section)
    if cap is None or cap.kind not in {"center_staff", "supervisor"}:
        raise Forbidden(
            _("开标后仅交易中心工作人员和监督人员（及评标委员会）可以查阅解密后的投标文件。"),
        )
    if result.status is not ResultStatus.OPENED or section.state is SectionState.OPENING:
        raise NotFound(
            _("该投标文件尚未解密或开标记录尚未发布。"),
            code=ErrorCode.OPENING_RECORD_NOT_PUBLISHED,
        )
    bid = _session().get(Bid, result.bid_id)
    assert bid is not None
    token = _document_serializer().dumps({"r": str(result.id), "h": bid.ciphertext_sha256})
    record_event(actor, "opening.document_link_issued", "bid", bid.id, {"expires": expires})
    return f"/opening/documents/{token}", expires


def open_document(token: str, dst: Any, max_age: int = DOCUMENT_LINK_SECONDS) -> OpeningResult:
    """Check a document link and write the decrypted bid to ``dst``.
    Refusal: ``not_found`` (expired, forged, or no such result)."""
    from itsdangerous import BadData

    try:
        data = _document_serializer().loads(token, max_age=max_age)
        result = _session().get(OpeningResult, uuid.UUID(str(data["r"])))
    except (BadData, KeyError, ValueError, TypeError):
        result = None
        data = {}
    bid = _session().get(Bid, result.bid_id) if result is not None else None
    if (
        result is None
        or bid is None
        or result.archived_data_key is None
        or data.get("h") != bid.ciphertext_sha256
    ):
        raise NotFound(_("链接无效或已过期。"))
    data_key = vault.box(vault.ARCHIVE).open(result.archived_data_key, {"bid_id": str(bid.id)})
    with get_storage().open(bid.storage_key) as src:
        open_envelope(
            cast(ReadableStream, src),
            dst,
            data_key=data_key,
            expected_ciphertext_sha256=bytes.fromhex(bid.ciphertext_sha256),
        )
    return result
