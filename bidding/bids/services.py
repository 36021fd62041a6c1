"""Bids services (投标业务): upload the sealed ciphertext, commit it with the signed
manifest, replace it, withdraw it, and count the bids at the deadline.

Every function takes the acting user first, checks, changes state, records an audit event
and flushes; it never commits. Refusals are :class:`~bidding.core.errors.DomainError`
subclasses with stable codes (``bidding.core.errors.ErrorCode``).

The flow (客户端 ``sunbid bid submit``)::

    start_upload ──► PUT parts to presigned URLs ──┐
    start_upload(method="single") ──► one PUT ─────┤
                                                    ├──► commit_bid ──► receipt
                                                    │    (inclusion proof: bid_inclusion_proof)
    upload_bid_stream (≤ SUNBID_BID_STREAM_MAX_MB) ─┘

    submit_bid_stream = upload_bid_stream + commit_bid in one request and transaction
    (the client's choice up to 64 MiB: one round trip, both stored or neither)

Design decisions
----------------
* **Quarantine without a move.** The ciphertext goes to ``bids/<section>/<upload>`` and
  stays there: "in quarantine" means that only its :class:`BidUpload` row (state
  ``open``/``received``) refers to it. Acceptance flips the upload to ``committed`` and
  inserts the :class:`Bid` in the same transaction. The object store has no atomic rename,
  and a copy would double the I/O of a large bid while opening a new window for orphans.
* **No orphans.** A refused commit deletes the uploaded object once the transaction has
  ended (below); an upload that is never committed expires — at the latest at the bid
  deadline, since an upload not finished before the deadline is a withdrawal (DZ20 26) —
  and the sweep ``bids.expire_uploads`` deletes its object *before* recording the expiry
  (a failed commit there leaves a pending row whose object is already gone; the next sweep
  finishes, deletion being idempotent). A stream upload or a multipart start whose
  transaction rolls back is cleaned the same way (the object or multipart upload is removed
  if its row did not commit). Objects under ``bids/`` that no row knows (a process killed
  between the store and the database) are deleted by the sweep after a grace period.
* **Refusals are audited in a separate transaction.** :func:`commit_bid` records
  ``bid.commit_refused`` (and marks the upload ``refused``, then deletes its object) through
  a hook that runs when the caller's root transaction *ends* — after the request wrapper's
  rollback — in a fresh session. Writing it in a second, concurrent transaction at the
  moment of refusal instead would deadlock on SQLite (the request's transaction may already
  hold the write lock through the idempotency record or the upload row lock), and a hook on
  ``after_rollback`` alone would miss callers that catch the error and commit (pages). The
  hook checks, under a row lock, that the upload is still pending before it touches it.
  Refusals that are not about the bid itself (``idempotency_key_reused``, a multipart
  upload with missing parts, ``bid_upload_unusable``) keep the upload.
* **A streamed envelope is checked on its way in, a multipart one is read back.** For
  :func:`upload_bid_stream` the bytes pass through the platform anyway: an
  :class:`~crypto.envelope.EnvelopeInspector` sees each chunk in the store's own buffer
  before the store hashes and writes it (``_EnvelopeTee``; the inspector only parses,
  the store's intake hashes, once), so one pass stores, hashes
  and checks the keyless envelope structure (header, context fields, record framing,
  truncation, trailing data, SHA-256 and size — the same checks as
  :func:`~crypto.envelope.inspect_envelope`); a bad envelope is refused before the store
  commits the object (``bid_not_encrypted``/``bid_envelope_invalid``, nothing stored).
  The findings are kept on the :class:`BidUpload` row (``envelope_*``) and
  :func:`commit_bid` compares the section and the manifest with them instead of
  streaming the object back. Context and recipients are still judged at the commit,
  against the section as it is then (its opening key may have been replaced).
  Presigned multipart uploads go straight to the store, so the platform never saw their
  bytes: the commit reads the object back and runs the same check (the store's own
  checksum is not trusted as proof of what it holds — it is whatever the uploader or the
  store says). For single presigned PUTs on a real S3/MinIO, ``x-amz-checksum-sha256``
  (verified by the store on receipt, and signed into the presigned URL) could replace
  the hash part of the read-back later; the framing check would still need a pass.
* **Single presigned PUT** (``method="single"``, up to ``SUNBID_BID_SINGLE_PUT_MAX_MB``,
  default 512 MiB, ≤ 5 GiB): the cheapest path to the store (no multipart complete, no
  bytes through the platform). Re-sending the PUT is harmless; the commit reads the
  object back like a multipart one, judging its size from the GET's answer before the
  first byte (absent: ``bid_upload_incomplete``, the upload is kept; wrong size:
  ``upload_incomplete``/``upload_too_large``, deleted). Caveat: the committed bid keeps
  the same key and a presigned PUT URL cannot be revoked, so until it expires its holder
  (the bidder) could overwrite the committed ciphertext. The URL is therefore never
  valid beyond the upload's end, which is at the latest the bid deadline (no change
  after the deadline), and the bid's recorded SHA-256 (receipt, manifest) exposes any
  change at the opening; only a signed ``x-amz-checksum-sha256`` / ``If-None-Match`` or
  a copy on commit would prevent it.
* **The deadline is decided under the section lock**: the section row is locked in
  share mode (``SELECT … FOR SHARE``; the deadline sweep locks it ``FOR UPDATE SKIP
  LOCKED``, and every change of the section updates it, so each waits for the decisions
  in flight and they for it), then the bidder's registration row ``FOR UPDATE`` (one
  bidder's commits and withdrawals take turns), and ``clock.now()`` is read *after* the
  locks are granted, in the transaction that inserts the bid; that time is the bid's
  ``committed_at`` and the receipt's ``server_time``. ``bid_deadline_passed`` is 422 (a
  rule refused it), as for late registrations in the projects domain. The locks are held
  until that transaction ends. Different bidders' commits do not queue on each other
  there, but they do on the audit log's state row from the sequencing (the receipt needs
  the log index and the signed tree head) to the end, so only what needs the decision
  happens under the locks: every check, and the bid row's fields, come before; under
  them, the clock, one query (a retry that won, the current bid), the audit event, the
  sequencing, the receipt signature and the bid insert. The inclusion proof is not
  computed there (see :class:`CommitResult`).
* **Only the latest bid counts.** Committing a new bid supersedes the bidder's current
  one (``is_current`` + the partial unique index ``uq_bids_current``).
* **Superseded and withdrawn ciphertexts are deleted** after the commit that replaced
  them (the sweep retries): the opening key can decrypt everything sealed to it, so keeping
  a withdrawn bid would let the custodians' quorum read a bid the bidder took back
  (DZ20 27–28). The manifest, signature, certificate and receipt stay, and with the log
  they prove what was submitted and when.
* **Nobody reads a ciphertext before the opening.** No service here returns an object,
  a storage key or a download link; the opening domain adds that after the opening.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from flask import current_app, has_app_context
from flask_babel import gettext as _
from sqlalchemy import event, func, or_, select
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.attributes import set_committed_value

from bidding.accounts.models import Organisation
from bidding.config import Settings
from bidding.core import db
from bidding.core.audit import inclusion_proof_for, record_event, sequence_now
from bidding.core.clock import now
from bidding.core.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    Forbidden,
    NotFound,
    RuleViolation,
)
from bidding.core.pagination import Page, paginate
from bidding.core.request_body import read_exactly
from bidding.core.roles import Actor, Role
from bidding.core.signing_key import platform_key
from bidding.core.states import transition
from bidding.core.storage import ObjectNotFound, Storage, UploadedPart, get_storage
from bidding.core.storage.base import (
    CHUNK_SIZE,
    checksum_mismatch,
    normalise_sha256,
    upload_incomplete,
    upload_too_large,
)
from bidding.core.storage.sigv4 import checksum_sha256_header
from bidding.core.tasks import register_sweep
from bidding.projects.models import Registration, Section, SectionState
from bidding.projects.services import registration_of, set_bid_counter
from crypto import pki, recipients
from crypto.canonical import format_utc
from crypto.envelope import (
    MAGIC,
    ContextMismatchError,
    EnvelopeError,
    EnvelopeInfo,
    EnvelopeInspector,
    inspect_envelope,
)
from crypto.errors import CryptoError
from crypto.receipt import issue_receipt
from crypto.signing import (
    BidManifest,
    ManifestError,
    ManifestSignerMismatchError,
    SignatureInvalidError,
    UnsupportedKeyError,
    verify_manifest,
)

from .models import (
    PENDING_UPLOAD_STATES,
    REPLACED_STATES,
    Bid,
    BidState,
    BidUpload,
    UploadMethod,
    UploadState,
)
from .trust import trust_store

log = logging.getLogger(__name__)

__all__ = [
    "CommitResult",
    "InclusionProof",
    "UploadTicket",
    "abort_upload",
    "bid_inclusion_proof",
    "bid_status",
    "bids_of_section",
    "commit_bid",
    "count_current_bids",
    "expire_uploads",
    "get_bid",
    "get_upload",
    "my_bids",
    "my_bids_page",
    "section_bids_page",
    "start_upload",
    "submit_bid_stream",
    "upload_bid_stream",
    "withdraw_bid",
]

#: Default largest ciphertext streamed through the API (MiB; ``SUNBID_BID_STREAM_MAX_MB``).
DEFAULT_STREAM_MAX_MB = 64
#: Default largest ciphertext sent by one presigned PUT (MiB; ``SUNBID_BID_SINGLE_PUT_MAX_MB``).
DEFAULT_SINGLE_PUT_MAX_MB = 512
#: S3's limit for a single PUT.
S3_SINGLE_PUT_LIMIT = 5 * 1024 * 1024 * 1024
#: Content type bound into presigned single-PUT URLs (the client sends it).
ENVELOPE_CONTENT_TYPE = "application/octet-stream"
#: Default largest ciphertext at all (MiB; ``SUNBID_BID_MAX_MB``).
DEFAULT_BID_MAX_MB = 4096
#: An upload session lasts at most this long (and never beyond the bid deadline).
UPLOAD_TTL = timedelta(hours=24)
#: Smallest multipart part (S3 needs ≥ 5 MiB for all parts but the last).
MIN_PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10_000
#: Lifetime of presigned part URLs (seconds).
PART_URL_SECONDS = 3600
#: Objects under ``bids/`` unknown to the database are deleted after this grace period.
ORPHAN_GRACE = timedelta(hours=6)
KEY_PREFIX = "bids"
#: Who sees every bid's metadata (never its content) before the opening.
BID_OVERSEERS = (Role.CENTER_STAFF, Role.SUPERVISOR)

_DEFERRED = "bids_deferred_work"
_COMMITTED = "bids_deferred_committed"


def _session() -> Session:
    return db.get_session()


def _settings() -> Settings:
    settings: Settings = current_app.extensions["sunbid_settings"]
    return settings


def _mb_setting(name: str, default: int) -> int:
    raw = _settings().extra.get(name, "") if has_app_context() else ""
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = default
    return max(1, value) * 1024 * 1024


def stream_max_bytes() -> int:
    """Largest ciphertext accepted through :func:`upload_bid_stream` (bytes)."""
    return min(_mb_setting("bid_stream_max_mb", DEFAULT_STREAM_MAX_MB), bid_max_bytes())


def bid_max_bytes() -> int:
    return _mb_setting("bid_max_mb", DEFAULT_BID_MAX_MB)


def single_put_max_bytes() -> int:
    """Largest ciphertext accepted as one presigned PUT (bytes; ≤ 5 GiB, S3's limit)."""
    return min(
        _mb_setting("bid_single_put_max_mb", DEFAULT_SINGLE_PUT_MAX_MB),
        bid_max_bytes(),
        S3_SINGLE_PUT_LIMIT,
    )


# =========================================================================== deferred work


def _defer(
    work: Callable[[], None], s: Session | None = None, *, unless_committed: bool = False
) -> None:
    """Run ``work`` once the caller's root transaction has ended (committed or rolled
    back), in a fresh session that it commits itself (see the module docstring).
    ``unless_committed``: only if that transaction did not commit (clean-up of what it
    would have owned)."""
    target = s if s is not None else _session()
    target.info.setdefault(_DEFERRED, []).append((work, unless_committed))


@event.listens_for(Session, "after_commit")
def _note_commit(s: Session) -> None:
    # fires once the root transaction's COMMIT succeeded (not for savepoints)
    if _DEFERRED in s.info:
        s.info[_COMMITTED] = True


@event.listens_for(Session, "after_transaction_end")
def _run_deferred(s: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or transaction.nested:
        return
    committed = bool(s.info.pop(_COMMITTED, False))
    work: list[tuple[Callable[[], None], bool]] = s.info.pop(_DEFERRED, [])
    for item, unless_committed in work:
        if not (unless_committed and committed):
            _in_fresh_session(item)


def _in_fresh_session(work: Callable[[], None]) -> None:
    """Run ``work`` with ``db.get_session()`` bound to a new session; commit it."""
    registry = db.session.registry
    previous = registry() if registry.has() else None
    fresh = db.SessionFactory()
    registry.set(fresh)
    try:
        work()
        fresh.commit()
    except Exception:
        fresh.rollback()
        log.exception("bids: deferred work failed (the sweep will finish it)")
    finally:
        fresh.info.pop("ready_callbacks", None)  # the audit sweep sequences these events
        fresh.close()
        if previous is not None:
            registry.set(previous)
        else:
            registry.clear()


# =========================================================================== the bid counter


def count_current_bids(section: Section) -> int:
    """Bidders with a current (latest, not withdrawn) bid for ``section`` (the close sweep
    fails the section with fewer than 3: 流标)."""
    count = _session().scalar(
        select(func.count(Bid.id)).where(Bid.section_id == section.id, Bid.is_current.is_(True))
    )
    return int(count or 0)


set_bid_counter(count_current_bids)


# =========================================================================== access


def _bidder_org(actor: Actor | None, bidder_id: uuid.UUID | None) -> Organisation:
    """The bidder organisation ``actor`` acts for (its only one, or ``bidder_id``)."""
    orgs = actor.organisations_with(Role.BIDDER_REP) if actor is not None else set()
    if bidder_id is not None and bidder_id not in orgs:
        raise Forbidden(_("您不是该投标单位的授权代表。"), details={"bidder_id": str(bidder_id)})
    if bidder_id is None:
        if len(orgs) != 1:
            raise Forbidden(
                _("只有投标单位的授权代表可以递交投标文件；代表多个单位时请指明投标单位。"),
                details={"bidder_organisations": sorted(str(o) for o in orgs)},
            )
        bidder_id = next(iter(orgs))
    org = _session().get(Organisation, bidder_id)
    if org is None:  # pragma: no cover - a grant always names an existing organisation
        raise NotFound(_("投标单位不存在。"))
    return org


def _is_overseer(actor: Actor | None, section: Section) -> bool:
    return actor is not None and actor.has_role_at(
        BID_OVERSEERS, center_id=section.project.center_id
    )


def _not_found() -> NotFound:
    return NotFound(_("请求的资源不存在或您无权查看。"))


def _require_registered(section: Section, org: Organisation) -> None:
    if registration_of(section, org.id) is None:
        raise _not_registered(section)


def _not_registered(section: Section) -> Forbidden:
    return Forbidden(
        _("贵单位未报名本标段，不能递交投标文件。"),
        code=ErrorCode.NOT_REGISTERED,
        details={"section_id": str(section.id)},
    )


def _require_open(section: Section, at: datetime) -> None:
    if section.state is not SectionState.PUBLISHED:
        raise Conflict(
            _("本标段当前不接受投标文件（状态：%(state)s）。", state=str(section.state)),
            code=ErrorCode.SECTION_NOT_PUBLISHED,
            details={"state": str(section.state)},
        )
    assert section.bid_deadline is not None
    if at >= section.bid_deadline:
        raise _deadline_passed(section, at)


def _deadline_passed(section: Section, at: datetime) -> RuleViolation:
    assert section.bid_deadline is not None
    return RuleViolation(
        _("投标截止时间已过，不再接受投标文件。"),
        code=ErrorCode.BID_DEADLINE_PASSED,
        details={
            "bid_deadline": format_utc(section.bid_deadline),
            "server_time": format_utc(at),
        },
    )


def _lock_section(section: Section, org: Organisation) -> Section:
    """The locks of a bid decision (commit, withdrawal), held until its transaction ends.

    The section row in share mode: its state and deadline stay as read — the deadline
    sweep, an amendment or a cancellation (each updating the row) waits for every decision
    in flight, and a decision waits for them — while other bidders' decisions go on beside
    it. Then the bidder's registration row, exclusively: one bidder's own commits and
    withdrawals take turns (only its latest bid counts). Only what the decision reads is
    re-read (state, deadline), into ``section``, which is returned."""
    s = _session()
    state, deadline = s.execute(
        select(Section.state, Section.bid_deadline)
        .where(Section.id == section.id)
        .with_for_update(read=True)
    ).one()
    set_committed_value(section, "state", state)
    set_committed_value(section, "bid_deadline", deadline)
    registration = s.scalar(
        select(Registration.id)
        .where(Registration.section_id == section.id, Registration.bidder_id == org.id)
        .with_for_update()
    )
    if registration is None:  # gone meanwhile: refused as never registered
        raise _not_registered(section)
    return section


def _lock_upload(upload: BidUpload) -> BidUpload:
    return db.lock_row(BidUpload, upload.id)


def _client_key(value: str | None) -> str:
    key = (value or "").strip()
    if not 1 <= len(key) <= 128:
        raise RuleViolation(
            _("请提供 1 到 128 个字符的客户端幂等键（Idempotency-Key）。"),
            code=ErrorCode.VALIDATION_ERROR,
            details={"field": "client_key"},
        )
    return key


def _key_reused(what: str) -> RuleViolation:
    return RuleViolation(
        _("该幂等键已用于另一次不同内容的%(what)s，请为新的请求使用新的幂等键。", what=what),
        code=ErrorCode.IDEMPOTENCY_KEY_REUSED,
    )


# =========================================================================== uploads


@dataclass(frozen=True)
class UploadTicket:
    """What a bidder's client needs to send (the rest of) an upload: the part URLs of a
    multipart upload, or the one ``put_url`` of a single-PUT upload."""

    upload: BidUpload
    part_size: int
    part_urls: list[tuple[int, str]]
    done_parts: list[UploadedPart]
    put_url: str | None = None
    #: headers the single PUT must carry (the checksum header is signed into ``put_url``)
    put_headers: dict[str, str] | None = None


def _new_upload(
    actor: Actor,
    section: Section,
    org: Organisation,
    *,
    method: UploadMethod,
    size: int,
    sha256: str,
    client_key: str,
    at: datetime,
) -> BidUpload:
    assert section.bid_deadline is not None
    upload_id = uuid.uuid4()
    upload = BidUpload(
        id=upload_id,
        section_id=section.id,
        bidder_id=org.id,
        created_by_id=actor.id,
        client_key=client_key,
        method=method,
        state=UploadState.OPEN,
        storage_key=f"{KEY_PREFIX}/{section.id}/{upload_id.hex}",
        expected_size=size,
        expected_sha256=sha256,
        created_at=at,
        expires_at=min(at + UPLOAD_TTL, section.bid_deadline),
    )
    return upload


def _check_size(size: int, limit: int) -> None:
    if size < 0:
        raise RuleViolation(_("文件大小不正确。"), code=ErrorCode.VALIDATION_ERROR)
    if size > limit:
        raise upload_too_large(limit, size)


def _sha(value: str) -> str:
    digest = normalise_sha256(value)
    assert digest is not None
    return digest


def _existing_upload(section: Section, org: Organisation, client_key: str) -> BidUpload | None:
    return (
        _session()
        .scalars(
            select(BidUpload).where(
                BidUpload.section_id == section.id,
                BidUpload.bidder_id == org.id,
                BidUpload.client_key == client_key,
            )
        )
        .first()
    )


def _part_size(size: int) -> int:
    mib = 1024 * 1024
    wanted = max(MIN_PART_SIZE, -(-size // MAX_PARTS))
    return -(-wanted // mib) * mib


def _ticket(storage: Storage, upload: BidUpload) -> UploadTicket:
    if upload.method is UploadMethod.SINGLE:
        # never valid beyond the upload's end (≤ the bid deadline): see the module docstring
        left = int((upload.expires_at - now()).total_seconds())
        url = storage.presigned_put_url(
            upload.storage_key,
            max(1, min(PART_URL_SECONDS, left)),
            content_type=ENVELOPE_CONTENT_TYPE,
            max_size=upload.expected_size,
            sha256=upload.expected_sha256,  # the URL can write only the declared bytes
        )
        return UploadTicket(
            upload=upload,
            part_size=upload.expected_size,
            part_urls=[],
            done_parts=[],
            put_url=url,
            put_headers={
                "Content-Type": ENVELOPE_CONTENT_TYPE,
                **checksum_sha256_header(upload.expected_sha256),
            },
        )
    assert upload.multipart_upload_id is not None and upload.part_size is not None
    done = storage.list_parts(upload.storage_key, upload.multipart_upload_id)
    done_numbers = {p.part_number for p in done}
    urls = [
        (
            n,
            storage.presigned_part_url(
                upload.storage_key, upload.multipart_upload_id, n, PART_URL_SECONDS
            ),
        )
        for n in range(1, upload.part_count + 1)
        if n not in done_numbers
    ]
    return UploadTicket(upload=upload, part_size=upload.part_size, part_urls=urls, done_parts=done)


def _cleanup_if_uncommitted(
    storage: Storage, upload_id: uuid.UUID, key: str, mpu: str | None
) -> None:
    """Deferred: if the upload row did not commit, remove what was stored for it."""

    def work() -> None:
        if _session().get(BidUpload, upload_id) is not None:
            return
        if mpu is not None:
            storage.abort_multipart_upload(key, mpu)
        storage.delete(key)

    # a committed transaction committed the row (it is flushed before the request ends)
    _defer(work, unless_committed=True)


def start_upload(
    actor: Actor,
    section: Section,
    *,
    size: int,
    sha256: str,
    client_key: str,
    bidder_id: uuid.UUID | None = None,
    method: UploadMethod | str = UploadMethod.MULTIPART,
) -> UploadTicket:
    """Open (or resume) a presigned upload of a sealed bid straight to the object store:
    multipart (分片上传, the default) or, with ``method="single"``, one presigned PUT
    (up to ``SUNBID_BID_SINGLE_PUT_MAX_MB``, default 512 MiB, never above 5 GiB).

    ``size`` and ``sha256`` are the envelope's; ``client_key`` identifies the upload for
    the client: starting again with the same key, size, hash and method resumes the same
    session (URLs for the parts not yet received; a fresh PUT URL — re-sending the whole
    object is harmless). Refusals: ``forbidden``, ``not_registered``,
    ``section_not_published``, ``bid_deadline_passed``, ``upload_too_large``,
    ``validation_error`` (unknown method), ``idempotency_key_reused`` (same key, other
    file), ``bid_upload_unusable`` (ended, or started with the other method).
    """
    org = _bidder_org(actor, bidder_id)
    key = _client_key(client_key)
    digest = _sha(sha256)
    try:
        kind = UploadMethod(method)
    except ValueError:
        kind = UploadMethod.STREAM
    if kind is UploadMethod.STREAM:
        raise RuleViolation(
            _("上传方式不正确。"),
            code=ErrorCode.VALIDATION_ERROR,
            details={"method": str(method), "allowed": ["multipart", "single"]},
        )
    _require_registered(section, org)
    at = now()
    _require_open(section, at)
    _check_size(size, single_put_max_bytes() if kind is UploadMethod.SINGLE else bid_max_bytes())
    storage = get_storage()
    existing = _existing_upload(section, org, key)
    if existing is not None:
        if existing.expected_size != size or existing.expected_sha256 != digest:
            raise _key_reused(_("上传"))
        if existing.method is not kind or existing.state not in PENDING_UPLOAD_STATES:
            raise _upload_unusable(existing)
        return _ticket(storage, existing)
    upload = _new_upload(
        actor,
        section,
        org,
        method=kind,
        size=size,
        sha256=digest,
        client_key=key,
        at=at,
    )
    if kind is UploadMethod.MULTIPART:
        upload.part_size = _part_size(size)
        upload.multipart_upload_id = storage.create_multipart_upload(upload.storage_key)
        _cleanup_if_uncommitted(storage, upload.id, upload.storage_key, upload.multipart_upload_id)
    # a single PUT has nothing in the store yet, and its URL reaches the client only once
    # this transaction has committed
    s = _session()
    s.add(upload)
    s.flush()
    record_event(
        actor,
        "bid.upload_started",
        "section",
        section.id,
        {
            "upload_id": upload.id,
            "bidder_id": org.id,
            "method": str(upload.method),
            "size": size,
            "sha256": digest,
            "parts": upload.part_count,
            "expires_at": upload.expires_at,
        },
        sequence_after_commit=False,  # appended by the bid's commit, or by the sweep
    )
    return _ticket(storage, upload)


@dataclass(frozen=True)
class _Findings:
    """What the keyless envelope pass established, as stored on the upload row."""

    section_id: str | None
    opening_key_fingerprint: str | None
    recipient_key_ids: tuple[str, ...]
    key_commitment: str
    segment_size: int
    version: int
    header_sha256: str
    ciphertext_sha256: str
    ciphertext_size: int

    @classmethod
    def of(cls, info: EnvelopeInfo) -> _Findings:
        header = info.header
        return cls(
            section_id=header.context.get("section_id"),
            opening_key_fingerprint=header.context.get("opening_key_fingerprint"),
            recipient_key_ids=tuple(k.hex() for k in header.recipient_key_ids()),
            key_commitment=header.key_commitment.hex(),
            segment_size=header.segment_size,
            version=header.version,
            header_sha256=header.sha256.hex(),
            ciphertext_sha256=info.ciphertext_sha256.hex(),
            ciphertext_size=info.ciphertext_size,
        )

    @classmethod
    def stored_on(cls, upload: BidUpload) -> _Findings:
        assert upload.envelope_verified
        assert upload.envelope_recipient_key_ids is not None
        assert upload.envelope_key_commitment is not None
        assert upload.envelope_segment_size is not None and upload.envelope_version is not None
        assert upload.envelope_header_sha256 is not None
        assert upload.envelope_sha256 is not None and upload.envelope_size is not None
        return cls(
            section_id=upload.envelope_section_id,
            opening_key_fingerprint=upload.envelope_opening_key_fingerprint,
            recipient_key_ids=tuple(upload.envelope_recipient_key_ids),
            key_commitment=upload.envelope_key_commitment,
            segment_size=upload.envelope_segment_size,
            version=upload.envelope_version,
            header_sha256=upload.envelope_header_sha256,
            ciphertext_sha256=upload.envelope_sha256,
            ciphertext_size=upload.envelope_size,
        )

    def record_on(self, upload: BidUpload) -> None:
        upload.envelope_verified = True
        upload.envelope_section_id = self.section_id
        upload.envelope_opening_key_fingerprint = self.opening_key_fingerprint
        upload.envelope_recipient_key_ids = list(self.recipient_key_ids)
        upload.envelope_key_commitment = self.key_commitment
        upload.envelope_segment_size = self.segment_size
        upload.envelope_version = self.version
        upload.envelope_header_sha256 = self.header_sha256
        upload.envelope_sha256 = self.ciphertext_sha256
        upload.envelope_size = self.ciphertext_size


class _EnvelopeTee:
    """The request body as :meth:`Storage.put` reads it, checked on its way through.

    Every byte the store receives passes through ``readinto`` into the store's own buffer,
    and that same buffer is fed to a :class:`~crypto.envelope.EnvelopeInspector` before
    ``readinto`` returns (before the store hashes or writes it). A bad envelope raises
    :class:`DomainError` from inside ``readinto`` — once the last declared byte has arrived
    at the latest, i.e. before the store has committed anything — so ``put`` stores
    nothing (its all-or-nothing contract). After a mid-stream refusal the rest of the
    body is read and discarded first, so the client gets the answer, not a reset
    connection. Bytes beyond ``length`` are passed on unchecked: the store refuses them
    (``upload_too_large``); a body shorter than ``length`` is left to the store too
    (``upload_incomplete``).
    """

    def __init__(self, stream: IO[bytes] | Any, length: int) -> None:
        self._stream = stream
        self._readinto = getattr(stream, "readinto", None)
        self._length = length
        self._seen = 0
        self._prefix = bytearray()
        # structure only: the store hashes what it writes (Intake), once
        self._inspector = EnvelopeInspector(hashing=False)
        self._info: EnvelopeInfo | None = None

    def _read(self, view: memoryview) -> int:
        if self._readinto is not None:
            return int(self._readinto(view) or 0)
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readinto(self, view: memoryview, /) -> int:
        n = self._read(view)
        if n and self._seen < self._length:
            self._feed(view[: min(n, self._length - self._seen)])
        return n

    def _feed(self, chunk: memoryview) -> None:
        if len(self._prefix) < len(MAGIC):
            self._prefix += chunk[: len(MAGIC) - len(self._prefix)]
        self._seen += len(chunk)
        try:
            self._inspector.update(chunk)
            if self._seen == self._length:
                self._info = self._inspector.finish()
        except EnvelopeError as exc:
            self._drain()
            raise self._refusal(exc) from exc

    def _drain(self) -> None:
        sink = memoryview(bytearray(CHUNK_SIZE))
        try:
            while self._seen < self._length:
                n = self._read(sink[: min(len(sink), self._length - self._seen)])
                if not n:
                    return
                self._seen += n
        except Exception:  # the client went away: the refusal stands all the same
            return

    def _refusal(self, exc: EnvelopeError) -> RuleViolation:
        if bytes(self._prefix) != MAGIC:
            return _not_encrypted()
        return _envelope_invalid(exc)

    def check(self) -> _Findings:
        """The findings once every declared byte has passed (refusal if bad)."""
        if self._info is None:
            try:
                self._info = self._inspector.finish()
            except EnvelopeError as exc:
                raise self._refusal(exc) from exc
        return _Findings.of(self._info)


def upload_bid_stream(
    actor: Actor,
    section: Section,
    stream: IO[bytes] | Any,
    length: int,
    *,
    sha256: str,
    client_key: str,
    bidder_id: uuid.UUID | None = None,
) -> BidUpload:
    """Stream a sealed bid through the platform into quarantine (up to
    ``SUNBID_BID_STREAM_MAX_MB``, default 64 MiB). ``length`` is the Content-Length.

    The keyless envelope check runs on the bytes as they pass to the store (one pass:
    what is hashed, checked and stored is the same buffer) and its findings are kept on
    the upload, so the commit does not read the object back.

    A retry with the same ``client_key`` after the first one was stored returns the same
    upload. Refusals: ``forbidden``, ``not_registered``, ``section_not_published``,
    ``bid_deadline_passed``, ``upload_too_large`` (over the limit or longer than
    ``length``), ``upload_incomplete`` (truncated), ``bid_not_encrypted``,
    ``bid_envelope_invalid`` (bad header or record framing, truncated envelope, data
    after the final segment), ``checksum_mismatch``, ``idempotency_key_reused``; none
    leaves an object behind. The envelope's context (section, opening key) is checked at
    the commit, against the section as it is then.
    """
    org = _bidder_org(actor, bidder_id)
    key = _client_key(client_key)
    digest = _sha(sha256)
    _require_registered(section, org)
    at = now()
    _require_open(section, at)
    limit = stream_max_bytes()
    _check_size(length, limit)
    existing = _existing_upload(section, org, key)
    if existing is not None:
        if existing.expected_size != length or existing.expected_sha256 != digest:
            raise _key_reused(_("上传"))
        if existing.state in (UploadState.RECEIVED, UploadState.COMMITTED):
            return existing
        raise _upload_unusable(existing)
    upload = _new_upload(
        actor,
        section,
        org,
        method=UploadMethod.STREAM,
        size=length,
        sha256=digest,
        client_key=key,
        at=at,
    )
    storage = get_storage()
    tee = _EnvelopeTee(stream, length)
    if length == 0:
        tee.check()  # nothing will pass through the tee: refuse before storing anything
    stored = storage.put(
        upload.storage_key, tee, length=length, expected_sha256=digest, max_size=limit
    )
    _cleanup_if_uncommitted(storage, upload.id, upload.storage_key, None)
    findings = tee.check()
    if findings.ciphertext_size != stored.size or stored.sha256 != digest:
        # cannot happen (the store counted and hashed the bytes the tee checked, and
        # refused a hash other than the declared one); refuse rather than trust either
        raise checksum_mismatch(digest, stored.sha256 or "")
    findings = replace(findings, ciphertext_sha256=digest)
    findings.record_on(upload)
    upload.state = UploadState.RECEIVED
    upload.received_at = now()
    s = _session()
    s.add(upload)
    s.flush()
    record_event(
        actor,
        "bid.uploaded",
        "section",
        section.id,
        {
            "upload_id": upload.id,
            "bidder_id": org.id,
            "method": str(upload.method),
            "size": length,
            "sha256": digest,
            "envelope_verified": True,
        },
        sequence_after_commit=False,  # appended by the bid's commit, or by the sweep
    )
    return upload


def get_upload(actor: Actor | None, section: Section, upload_id: uuid.UUID) -> BidUpload:
    """The actor's own upload session (404 for anyone else's)."""
    upload = _session().get(BidUpload, upload_id)
    orgs = actor.organisations_with(Role.BIDDER_REP) if actor is not None else set()
    if upload is None or upload.section_id != section.id or upload.bidder_id not in orgs:
        raise _not_found()
    return upload


def abort_upload(actor: Actor, upload: BidUpload) -> BidUpload:
    """The bidder gives up an upload that was not committed; its object is deleted."""
    org = _bidder_org(actor, upload.bidder_id)
    upload = _lock_upload(upload)
    if upload.state not in PENDING_UPLOAD_STATES:
        raise _upload_unusable(upload)
    storage = get_storage()
    _remove_upload_object(storage, upload)
    upload.state = UploadState.ABORTED
    upload.closed_at = now()
    _session().flush()
    record_event(
        actor,
        "bid.upload_aborted",
        "section",
        upload.section_id,
        {"upload_id": upload.id, "bidder_id": org.id},
    )
    return upload


def _remove_upload_object(storage: Storage, upload: BidUpload) -> None:
    if upload.method is UploadMethod.MULTIPART and upload.multipart_upload_id:
        storage.abort_multipart_upload(upload.storage_key, upload.multipart_upload_id)
    storage.delete(upload.storage_key)


def _upload_unusable(upload: BidUpload) -> Conflict:
    return Conflict(
        _("该上传已失效或已使用（状态：%(state)s），请重新上传投标文件。", state=str(upload.state)),
        code=ErrorCode.BID_UPLOAD_UNUSABLE,
        details={"upload_id": str(upload.id), "state": str(upload.state)},
    )


def _complete_multipart(storage: Storage, upload: BidUpload) -> None:
    """Join the parts of a multipart upload (the hash is checked by the envelope pass)."""
    assert upload.multipart_upload_id is not None
    parts = sorted(
        storage.list_parts(upload.storage_key, upload.multipart_upload_id),
        key=lambda p: p.part_number,
    )
    numbers = [p.part_number for p in parts]
    expected = list(range(1, upload.part_count + 1))
    if numbers != expected:
        raise RuleViolation(
            _("投标文件尚未全部上传（缺少分片），请继续上传后再递交。"),
            code=ErrorCode.BID_UPLOAD_INCOMPLETE,
            details={"missing_parts": sorted(set(expected) - set(numbers))[:100]},
        )
    storage.complete_multipart_upload(upload.storage_key, upload.multipart_upload_id, parts)
    _received(upload, storage.stat(upload.storage_key).size)


def _nothing_uploaded(upload: BidUpload) -> RuleViolation:
    return RuleViolation(
        _("投标文件尚未上传完成，请上传后再递交。"),
        code=ErrorCode.BID_UPLOAD_INCOMPLETE,
        details={"received": 0, "expected": upload.expected_size},
    )


def _received(upload: BidUpload, size: int) -> None:
    """Mark a presigned upload (single PUT or joined parts) received once its object has
    the declared size."""
    if size < upload.expected_size:
        raise upload_incomplete(size, upload.expected_size)
    if size > upload.expected_size:
        raise upload_too_large(upload.expected_size, size)
    upload.state = UploadState.RECEIVED
    upload.received_at = now()


# =========================================================================== commit


@dataclass(frozen=True)
class InclusionProof:
    """An RFC 6962 inclusion proof of the acceptance event in a signed tree head."""

    leaf_index: int
    tree_size: int
    leaf_hash: str
    audit_path: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash,
            "audit_path": self.audit_path,
        }


@dataclass(frozen=True)
class CommitResult:
    """An accepted bid. ``proof`` (the inclusion proof of its acceptance event in the
    receipt's tree head) is computed on first access — a few queries, better not made
    while the section lock is held: the API includes it only in a replay's answer; after
    a fresh commit the client fetches it (``GET …/bids/{id}/proof``) when it wants it."""

    bid: Bid
    replayed: bool

    @cached_property
    def proof(self) -> InclusionProof:
        return _proof(self.bid)


def _refuse(code: ErrorCode, message: str, **details: Any) -> RuleViolation:
    return RuleViolation(message, code=code, details=details)


class _Prefixed:
    """A readable stream that first yields ``prefix``, then ``reader``'s bytes."""

    def __init__(self, prefix: bytes, reader: IO[bytes]) -> None:
        self._prefix = memoryview(prefix)
        self._reader = reader

    def readinto(self, buffer: memoryview, /) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        got = self._reader.readinto(buffer)  # type: ignore[attr-defined]
        return int(got or 0)


def _not_encrypted() -> RuleViolation:
    return _refuse(
        ErrorCode.BID_NOT_ENCRYPTED,
        _("上传的文件不是加密的投标文件（数字信封），平台拒收未加密的投标文件。"),
    )


def _envelope_invalid(exc: EnvelopeError) -> RuleViolation:
    return _refuse(
        ErrorCode.BID_ENVELOPE_INVALID,
        _("投标文件数字信封结构不完整或已损坏：%(message)s", message=exc.message),
        crypto_code=exc.code,
    )


def _expected_context(section: Section) -> dict[str, str]:
    assert section.opening_key_fingerprint is not None
    return {
        "section_id": str(section.id),
        "opening_key_fingerprint": section.opening_key_fingerprint,
    }


def _context_refusal(section: Section, field: object, actual: object) -> RuleViolation:
    expected = _expected_context(section)
    if field == "section_id":
        return _refuse(
            ErrorCode.BID_WRONG_SECTION,
            _("投标文件是为其他标段加密的，请按本标段重新加密。"),
            expected=expected["section_id"],
            actual=actual,
        )
    return _refuse(
        ErrorCode.BID_STALE_OPENING_KEY,
        _("投标文件未使用本标段当前的开标公钥加密，请获取最新开标公钥后重新加密。"),
        expected=expected["opening_key_fingerprint"],
        actual=actual,
    )


def _inspect(storage: Storage, upload: BidUpload, section: Section) -> _Findings:
    """Stream the stored ciphertext once: envelope magic, header context, structure, hash.

    The read-back pass, for uploads whose bytes did not pass through the platform
    (presigned single PUT or multipart): see the module docstring. A single-PUT upload not
    yet received is received here, its size taken from the same GET (no separate stat).

    The hash runs in the request's own thread: the server's parallelism is its concurrent
    requests, and a helper thread per read-back costs a quarter more CPU for the same
    hash (cross-core hand-offs) — CPU a deadline rush does not have to spare."""
    receiving = upload.state is UploadState.OPEN and upload.method is UploadMethod.SINGLE
    try:
        opened, size = storage.open_sized(upload.storage_key)
    except ObjectNotFound:
        if receiving:
            raise _nothing_uploaded(upload) from None
        raise
    with opened as reader:
        if receiving:
            _received(upload, size)
        head = read_exactly(reader, len(MAGIC))
        if head != MAGIC:
            raise _not_encrypted()
        try:
            info = inspect_envelope(
                _Prefixed(head, reader), expected_context=_expected_context(section), threads=False
            )
        except ContextMismatchError as exc:
            raise _context_refusal(
                section, exc.details.get("field"), exc.details.get("actual")
            ) from exc
        except EnvelopeError as exc:
            raise _envelope_invalid(exc) from exc
    return _Findings.of(info)


def _check_envelope(findings: _Findings, upload: BidUpload, section: Section) -> None:
    """The envelope as found (read back, or checked on the way in) against the section as
    it is now and the upload's declared size and SHA-256."""
    expected = _expected_context(section)
    for field, actual in (
        ("section_id", findings.section_id),
        ("opening_key_fingerprint", findings.opening_key_fingerprint),
    ):
        if actual != expected[field]:
            raise _context_refusal(section, field, actual)
    assert section.opening_public_key is not None
    opening_kid = recipients.key_id(
        X25519PublicKey.from_public_bytes(bytes.fromhex(section.opening_public_key))
    ).hex()
    if not any(hmac.compare_digest(opening_kid, k) for k in findings.recipient_key_ids):
        raise _refuse(
            ErrorCode.BID_STALE_OPENING_KEY,
            _("投标文件的数字信封中没有本标段开标公钥的接收方，开标时将无法解密。"),
            expected=section.opening_key_fingerprint,
        )
    digest = findings.ciphertext_sha256
    if digest != upload.expected_sha256 or findings.ciphertext_size != upload.expected_size:
        raise RuleViolation(
            _("文件校验值（SHA-256）与声明的不一致，文件可能已损坏或被篡改，请重新上传。"),
            code=ErrorCode.CHECKSUM_MISMATCH,
            details={"expected_sha256": upload.expected_sha256, "actual_sha256": digest},
        )


def _parse_manifest(manifest: Mapping[str, Any]) -> BidManifest:
    try:
        return BidManifest.from_document(manifest)
    except (ManifestError, TypeError) as exc:
        message = exc.message if isinstance(exc, CryptoError) else str(exc)
        details = dict(exc.details) if isinstance(exc, CryptoError) else {}
        raise _refuse(
            ErrorCode.BID_MANIFEST_INVALID,
            _("投标文件签名清单格式不正确：%(message)s", message=message),
            **{k: v for k, v in details.items() if isinstance(v, str | int | list)},
        ) from exc


def _check_manifest(
    manifest: BidManifest, info: _Findings, section: Section, org: Organisation
) -> None:
    if (
        manifest.ciphertext_sha256 != info.ciphertext_sha256
        or manifest.ciphertext_size != info.ciphertext_size
    ):
        raise _refuse(
            ErrorCode.BID_HASH_MISMATCH,
            _("签名清单中的密文摘要或大小与上传的投标文件不一致。"),
            manifest_sha256=manifest.ciphertext_sha256,
            ciphertext_sha256=info.ciphertext_sha256,
            manifest_size=manifest.ciphertext_size,
            ciphertext_size=info.ciphertext_size,
        )
    if manifest.section_id != str(section.id):
        raise _refuse(
            ErrorCode.BID_WRONG_SECTION,
            _("签名清单中的标段与递交的标段不一致。"),
            expected=str(section.id),
            actual=manifest.section_id,
        )
    if manifest.bidder_id != org.credit_code:
        raise _refuse(
            ErrorCode.BID_WRONG_BIDDER,
            _("签名清单中的投标人与递交的投标单位不一致。"),
            expected=org.credit_code,
            actual=manifest.bidder_id,
        )
    if manifest.opening_key_fingerprint != section.opening_key_fingerprint:
        raise _refuse(
            ErrorCode.BID_STALE_OPENING_KEY,
            _("签名清单中的开标公钥指纹不是本标段的。"),
            expected=section.opening_key_fingerprint,
            actual=manifest.opening_key_fingerprint,
        )
    if (
        manifest.data_key_commitment != info.key_commitment
        or manifest.segment_size != info.segment_size
        or manifest.format_version != info.version
    ):
        raise _refuse(
            ErrorCode.BID_MANIFEST_MISMATCH,
            _("签名清单与投标文件数字信封的密钥承诺或分段参数不一致。"),
            manifest_commitment=manifest.data_key_commitment,
            envelope_commitment=info.key_commitment,
        )


_CERT_CODES: dict[str, ErrorCode] = {
    "certificate_untrusted": ErrorCode.CERTIFICATE_UNTRUSTED,
    "certificate_signature_invalid": ErrorCode.CERTIFICATE_UNTRUSTED,
    "certificate_path_too_long": ErrorCode.CERTIFICATE_UNTRUSTED,
    "certificate_expired": ErrorCode.CERTIFICATE_EXPIRED,
    "certificate_not_yet_valid": ErrorCode.CERTIFICATE_NOT_YET_VALID,
    "certificate_revoked": ErrorCode.CERTIFICATE_REVOKED,
}
_CERT_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.CERTIFICATE_UNTRUSTED: "数字证书不是由交易中心认可的 CA 签发的。",
    ErrorCode.CERTIFICATE_EXPIRED: "数字证书已过期，请更新证书后重新签名。",
    ErrorCode.CERTIFICATE_NOT_YET_VALID: "数字证书尚未生效。",
    ErrorCode.CERTIFICATE_REVOKED: "数字证书已被吊销，请使用有效证书重新签名。",
    ErrorCode.CERTIFICATE_INVALID: "数字证书不可用于投标文件签名：%(message)s",
}


def _certificate_error(exc: CryptoError) -> RuleViolation:
    code = _CERT_CODES.get(exc.code, ErrorCode.CERTIFICATE_INVALID)
    return RuleViolation(
        _(_CERT_MESSAGES[code], message=exc.message),
        code=code,
        details={"crypto_code": exc.code},
    )


def _load_chain(chain: Sequence[str]) -> tuple[x509.Certificate, list[x509.Certificate]]:
    try:
        certs = [c for pem in chain for c in pki.load_certificates_pem(pem.encode("ascii"))]
    except (CryptoError, ValueError, UnicodeEncodeError) as exc:
        raise RuleViolation(
            _("数字证书格式不正确（须为 PEM）。"),
            code=ErrorCode.CERTIFICATE_INVALID,
            details={"crypto_code": getattr(exc, "code", "certificate_invalid")},
        ) from exc
    if not certs:
        raise RuleViolation(_("请提供签名用的数字证书。"), code=ErrorCode.CERTIFICATE_INVALID)
    return certs[0], certs[1:]


def _verify_signature(
    manifest: BidManifest,
    signature: bytes,
    leaf: x509.Certificate,
    extra: list[x509.Certificate],
    at: datetime,
) -> None:
    store = trust_store()
    try:
        verify_manifest(
            manifest,
            signature,
            leaf,
            intermediates=[*extra, *store.intermediates],
            trust_roots=list(store.roots),
            at=at,
            crls=list(store.crls),
        )
    except pki.CertificateError as exc:
        raise _certificate_error(exc) from exc
    except pki.KeyInvalidError as exc:
        raise _certificate_error(exc) from exc
    except UnsupportedKeyError as exc:
        raise _certificate_error(exc) from exc
    except ManifestSignerMismatchError as exc:
        raise _refuse(
            ErrorCode.BID_SIGNER_MISMATCH,
            _("签名所用的数字证书不属于签名清单中的投标人。"),
            certificate_org_code=exc.details.get("certificate_org_code"),
        ) from exc
    except SignatureInvalidError as exc:
        raise _refuse(
            ErrorCode.BID_SIGNATURE_INVALID, _("投标文件签名清单的电子签名验证失败。")
        ) from exc


def _decode_signature(signature: bytes | str) -> bytes:
    if isinstance(signature, bytes):
        return signature
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _refuse(ErrorCode.BID_SIGNATURE_INVALID, _("签名不是有效的 Base64 编码。")) from exc


def _bid_by_key(section: Section, org: Organisation, client_key: str) -> Bid | None:
    return (
        _session()
        .scalars(
            select(Bid).where(
                Bid.section_id == section.id, Bid.bidder_id == org.id, Bid.client_key == client_key
            )
        )
        .first()
    )


def _replay(bid: Bid, upload: BidUpload) -> CommitResult:
    if bid.upload_id != upload.id:
        raise _key_reused(_("递交"))
    return CommitResult(bid=bid, replayed=True)


def _proof(bid: Bid) -> InclusionProof:
    tree_size = bid.receipt.get("tree_size")
    index, size, leaf, path = inclusion_proof_for(
        _session(), leaf_index=bid.log_index, tree_size=tree_size
    )
    return InclusionProof(index, size, leaf.hex(), [p.hex() for p in path])


#: Refusals after which the uploaded ciphertext is kept (the upload may still be used).
_KEEP_UPLOAD = frozenset(
    {
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
        ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
        ErrorCode.BID_UPLOAD_INCOMPLETE,
        ErrorCode.BID_UPLOAD_UNUSABLE,
        ErrorCode.STORAGE_UNAVAILABLE,
    }
)


def _audit_refusal(
    actor: Actor, section: Section, upload: BidUpload, org: Organisation, err: DomainError
) -> None:
    """Deferred: record ``bid.commit_refused`` and (for refusals about the bid) mark the
    upload refused and delete its object — only if the upload is still pending."""
    storage = get_storage()
    upload_id, section_id, org_id = upload.id, section.id, org.id
    code, details = str(err.code), dict(err.details)
    delete = err.code not in _KEEP_UPLOAD

    def work() -> None:
        s = _session()
        at = now()
        row = s.scalars(
            select(BidUpload).where(BidUpload.id == upload_id).with_for_update()
        ).first()
        # no row: the upload was stored by the refused request itself (submit_bid_stream),
        # whose rollback took the row and whose clean-up removes the object
        deleted = row is None
        if delete and row is not None and row.state in PENDING_UPLOAD_STATES:
            _remove_upload_object(storage, row)
            row.state = UploadState.REFUSED
            row.closed_at = at
            row.refusal_code = code[:64]
            deleted = True
        record_event(
            actor,
            "bid.commit_refused",
            "section",
            section_id,
            {
                "upload_id": upload_id,
                "bidder_id": org_id,
                "code": code,
                "details": details,
                "server_time": at,
                "ciphertext_deleted": deleted,
            },
        )

    _defer(work)


def commit_bid(
    actor: Actor,
    section: Section,
    upload: BidUpload,
    *,
    manifest: Mapping[str, Any],
    signature: bytes | str,
    certificate_chain: Sequence[str],
    client_key: str,
    bidder_id: uuid.UUID | None = None,
) -> CommitResult:
    """Accept a sealed bid (递交投标文件): check it, and under the section lock before the
    deadline, store it as the bidder's current bid, log it and sign a receipt (回执).

    ``manifest`` is the signed ``BidManifest`` document, ``signature`` its signature
    (bytes or base64), ``certificate_chain`` the signer's certificate (PEM) followed by
    any intermediates. ``client_key`` (the ``Idempotency-Key``) makes a retry harmless:
    the same key with the same upload returns the first result (``replayed``), even after
    the deadline; with another upload it is refused (``idempotency_key_reused``).

    Checks, in order, each with its code: the bidder and its upload (``forbidden``,
    ``not_found``), ``bid_upload_unusable``, ``not_registered``, ``section_not_published``,
    ``bid_deadline_passed``, ``bid_upload_incomplete`` (multipart), the envelope
    (``bid_not_encrypted``, ``bid_wrong_section``, ``bid_stale_opening_key``,
    ``bid_envelope_invalid``, ``checksum_mismatch``), the manifest
    (``bid_manifest_invalid``, ``bid_hash_mismatch``, ``bid_wrong_section``,
    ``bid_wrong_bidder``, ``bid_stale_opening_key``, ``bid_manifest_mismatch``), the
    certificate at the server time (``certificate_untrusted``, ``certificate_expired``,
    ``certificate_not_yet_valid``, ``certificate_revoked``, ``certificate_invalid``,
    ``bid_signer_mismatch``), the signature (``bid_signature_invalid``); then, under the
    lock, ``section_not_published`` / ``bid_deadline_passed`` again by the server clock.
    Every refusal after the upload is identified is audited (``bid.commit_refused``) in a
    separate transaction and, unless the upload stays usable, deletes the ciphertext.
    """
    org = _bidder_org(actor, bidder_id)
    key = _client_key(client_key)
    if upload.section_id != section.id or upload.bidder_id != org.id:
        raise _not_found()
    upload = _lock_upload(upload)
    previous = _bid_by_key(section, org, key)
    if previous is not None:
        return _replay(previous, upload)
    try:
        return _commit(actor, section, upload, org, key, manifest, signature, certificate_chain)
    except DomainError as err:
        _audit_refusal(actor, section, upload, org, err)
        raise


def submit_bid_stream(
    actor: Actor,
    section: Section,
    stream: IO[bytes] | Any,
    length: int,
    *,
    sha256: str,
    upload_key: str,
    commit_key: str,
    manifest: Mapping[str, Any],
    signature: bytes | str,
    certificate_chain: Sequence[str],
    bidder_id: uuid.UUID | None = None,
) -> CommitResult:
    """Stream a sealed bid through the platform and commit it in one request (一次递交).

    :func:`upload_bid_stream` then :func:`commit_bid`, in the caller's transaction: either
    the upload and the bid are both stored, or neither is — a refused commit leaves no
    upload row and no object (the upload's clean-up removes what was stored), and is
    audited like any refused commit. Saves the bidder a round trip and the platform a
    request near the deadline. ``commit_key`` is the commit's ``Idempotency-Key``: once
    the bid is accepted, a retry returns it (``replayed``) without reading the body, even
    after the deadline; the same key with another envelope is refused
    (``idempotency_key_reused``). Refusals: those of the two services.
    """
    org = _bidder_org(actor, bidder_id)
    previous = _bid_by_key(section, org, _client_key(commit_key))
    if previous is not None:
        if (previous.ciphertext_sha256, previous.ciphertext_size) != (_sha(sha256), length):
            raise _key_reused(_("递交"))
        return CommitResult(bid=previous, replayed=True)
    upload = upload_bid_stream(
        actor,
        section,
        stream,
        length,
        sha256=sha256,
        client_key=upload_key,
        bidder_id=bidder_id,
    )
    return commit_bid(
        actor,
        section,
        upload,
        manifest=manifest,
        signature=signature,
        certificate_chain=certificate_chain,
        client_key=commit_key,
        bidder_id=bidder_id,
    )


def _commit(
    actor: Actor,
    section: Section,
    upload: BidUpload,
    org: Organisation,
    key: str,
    manifest_doc: Mapping[str, Any],
    signature: bytes | str,
    certificate_chain: Sequence[str],
) -> CommitResult:
    if upload.state not in PENDING_UPLOAD_STATES:
        raise _upload_unusable(upload)
    # registration: its upload could not have started without one; the lock re-checks it
    _require_open(section, now())
    storage = get_storage()
    if upload.envelope_verified:  # streamed: checked on its way in, nothing to read back
        info = _Findings.stored_on(upload)
    else:
        if upload.state is UploadState.OPEN and upload.method is UploadMethod.MULTIPART:
            _complete_multipart(storage, upload)
        info = _inspect(storage, upload, section)  # receives a single PUT on the way
    _check_envelope(info, upload, section)
    manifest = _parse_manifest(manifest_doc)
    _check_manifest(manifest, info, section, org)
    leaf, intermediates = _load_chain(certificate_chain)
    signature_bytes = _decode_signature(signature)
    _verify_signature(manifest, signature_bytes, leaf, intermediates, now())

    # Everything that does not depend on the decision is prepared before the lock: the
    # lock is held until the transaction ends, and every commit of the section queues on it.
    bid_id = uuid.uuid4()
    signing_key = platform_key().private_key
    row = {
        "section_id": section.id,
        "bidder_id": org.id,
        "submitted_by_id": actor.id,
        "upload_id": upload.id,
        "state": BidState.COMMITTED,
        "is_current": True,
        "client_key": key,
        "storage_key": upload.storage_key,
        "ciphertext_size": info.ciphertext_size,
        "ciphertext_sha256": info.ciphertext_sha256,
        "envelope_header_sha256": info.header_sha256,
        "data_key_commitment": info.key_commitment,
        "opening_key_fingerprint": manifest.opening_key_fingerprint,
        "segment_size": info.segment_size,
        "manifest": manifest.to_document(),
        "manifest_signature": base64.b64encode(signature_bytes).decode("ascii"),
        "signer_certificate_pem": pki.certificate_to_pem(leaf).decode("ascii"),
        "signer_intermediates_pem": [
            pki.certificate_to_pem(c).decode("ascii") for c in intermediates
        ],
        "signer_key_id": pki.key_id(leaf),
        "signer_certificate_serial": format(leaf.serial_number, "x")[:64],
    }

    # ---- the decision: section locked, server clock read inside this transaction
    s = _session()
    with s.no_autoflush:  # the upload's changes go in one UPDATE, with its commit below
        section = _lock_section(section, org)
        at = now()
        _require_open(section, at)
        again, replaced = None, None
        for existing in s.scalars(  # one query: a concurrent retry that won, the current bid
            select(Bid).where(
                Bid.section_id == section.id,
                Bid.bidder_id == org.id,
                or_(Bid.client_key == key, Bid.is_current.is_(True)),
            )
        ):
            if existing.client_key == key:
                again = existing
            elif existing.is_current:
                replaced = existing
    if again is not None:
        return _replay(again, upload)
    if replaced is not None:
        transition(replaced, BidState.SUPERSEDED)
        replaced.is_current = False
        replaced.superseded_at = at
        s.flush()  # free the current slot before the new bid takes it
    upload.state = UploadState.COMMITTED
    event_row = record_event(  # flushes the upload's new state with the event
        actor,
        "bid.committed",
        "bid",
        bid_id,
        {
            "section_id": section.id,
            "bidder_id": org.id,
            "bidder_credit_code": org.credit_code,
            "upload_id": upload.id,
            "ciphertext_sha256": info.ciphertext_sha256,
            "ciphertext_size": info.ciphertext_size,
            "data_key_commitment": info.key_commitment,
            "signer_key_id": row["signer_key_id"],
            "server_time": at,
            "supersedes": replaced.id if replaced is not None else None,
        },
    )
    head = sequence_now(s)
    assert head is not None and event_row.leaf_index is not None
    receipt = issue_receipt(
        signing_key,
        {
            "bid_id": str(bid_id),
            "section_id": str(section.id),
            "bidder_id": org.credit_code,
            "ciphertext_sha256": info.ciphertext_sha256,
            "server_time": format_utc(at),
            "log_index": event_row.leaf_index,
            "tree_size": head.tree_size,
            "root_hash": head.root_hash.hex(),
        },
    )
    # the bid row is written once, complete (same transaction as the event: all or nothing)
    bid = Bid(
        id=bid_id,
        **row,
        bidder=org,  # the answer names the bidder: no query for it
        committed_at=at,
        audit_event_id=event_row.id,
        log_index=event_row.leaf_index,
        receipt=receipt.to_dict(),
    )
    s.add(bid)
    if replaced is not None:
        s.flush()
        replaced.superseded_by_id = bid.id
    s.flush()
    if replaced is not None:
        _purge_after_commit(replaced.id)
    return CommitResult(bid=bid, replayed=False)


# =========================================================================== withdraw, queries


def withdraw_bid(actor: Actor, bid: Bid) -> Bid:
    """Withdraw the bidder's current bid before the deadline (撤回投标文件, DZ20 27).

    The section is locked and the deadline judged by the server clock as for a commit.
    The ciphertext is deleted after the commit (see the module docstring); the record,
    manifest and receipt stay. Refusals: ``forbidden``/``not_found`` (not the bidder's),
    ``section_not_published``, ``bid_deadline_passed``, ``invalid_transition`` (already
    superseded or withdrawn).
    """
    org = _bidder_org(actor, bid.bidder_id)
    section = _lock_section(bid.section, org)
    at = now()
    _require_open(section, at)
    s = _session()
    bid = s.scalars(
        select(Bid).where(Bid.id == bid.id).execution_options(populate_existing=True)
    ).one()
    previous = transition(
        bid, BidState.WITHDRAWN, message=_("该投标文件已被替换或已撤回，不能再撤回。")
    )
    bid.is_current = False
    bid.withdrawn_at = at
    bid.withdrawn_by_id = actor.id
    s.flush()
    record_event(
        actor,
        "bid.withdrawn",
        "bid",
        bid.id,
        {
            "section_id": section.id,
            "bidder_id": org.id,
            "from": str(previous),
            "ciphertext_sha256": bid.ciphertext_sha256,
            "server_time": at,
        },
    )
    _purge_after_commit(bid.id)
    return bid


def _purge_after_commit(bid_id: uuid.UUID) -> None:
    storage = get_storage()

    def purge() -> None:
        try:
            with db.session_scope():
                _purge_replaced(storage, bid_id)
        except Exception:
            log.exception("bids: deleting a replaced ciphertext failed; the sweep retries")

    db.call_after_commit(purge)


def _purge_replaced(storage: Storage, bid_id: uuid.UUID) -> bool:
    s = _session()
    bid = s.scalars(select(Bid).where(Bid.id == bid_id).with_for_update()).first()
    if bid is None or bid.state not in REPLACED_STATES or bid.ciphertext_deleted_at is not None:
        return False
    storage.delete(bid.storage_key)
    bid.ciphertext_deleted_at = now()
    s.flush()
    return True


def get_bid(actor: Actor | None, section: Section, bid_id: uuid.UUID) -> Bid:
    """A bid of ``section`` as the actor may see it: the bidder its own, the center's staff
    and supervisors every bid's metadata; anyone else 404."""
    bid = _session().get(Bid, bid_id)
    if bid is None or bid.section_id != section.id:
        raise _not_found()
    orgs = actor.organisations_with(Role.BIDDER_REP) if actor is not None else set()
    if bid.bidder_id in orgs or _is_overseer(actor, section):
        return bid
    raise _not_found()


def my_bids(actor: Actor, section: Section | None = None) -> list[Bid]:
    """The actor's organisations' bids (every state), newest first."""
    orgs = actor.organisations_with(Role.BIDDER_REP)
    if not orgs:
        return []
    stmt = select(Bid).where(Bid.bidder_id.in_(orgs))
    if section is not None:
        stmt = stmt.where(Bid.section_id == section.id)
    return list(_session().scalars(stmt.order_by(Bid.committed_at.desc(), Bid.id)))


def my_bids_page(
    actor: Actor, *, cursor: str | None, limit: int, section: Section | None = None
) -> Page[Bid]:
    """:func:`my_bids` one page at a time (newest first)."""
    orgs = actor.organisations_with(Role.BIDDER_REP)
    stmt = select(Bid).where(Bid.bidder_id.in_(orgs))
    if section is not None:
        stmt = stmt.where(Bid.section_id == section.id)
    return paginate(
        _session(), stmt, (Bid.committed_at, Bid.id), cursor=cursor, limit=limit, descending=True
    )


def section_bids_page(
    actor: Actor | None, section: Section, *, cursor: str | None, limit: int
) -> Page[Bid]:
    """The bids of ``section`` the actor may list: overseers every bid's metadata, a
    bidder its own; anyone else ``forbidden`` (who bid is confidential, ZTBF 22)."""
    stmt = select(Bid).where(Bid.section_id == section.id)
    if not _is_overseer(actor, section):
        orgs = actor.organisations_with(Role.BIDDER_REP) if actor is not None else set()
        if not orgs:
            raise Forbidden(_("投标截止前，投标人名单仅交易中心见证人员和监督人员可以查看。"))
        stmt = stmt.where(Bid.bidder_id.in_(orgs))
    return paginate(_session(), stmt, (Bid.committed_at, Bid.id), cursor=cursor, limit=limit)


def bids_of_section(actor: Actor | None, section: Section) -> list[Bid]:
    """Every bid of ``section`` (metadata): center staff and supervisors only before the
    opening — who bid is confidential (ZTBF 22). Others: ``forbidden``."""
    if not _is_overseer(actor, section):
        raise Forbidden(_("投标截止前，投标人名单仅交易中心见证人员和监督人员可以查看。"))
    return list(
        _session().scalars(
            select(Bid).where(Bid.section_id == section.id).order_by(Bid.committed_at, Bid.id)
        )
    )


@dataclass(frozen=True)
class BidStatus:
    """The bidder's view of one section: its current bid, history and open uploads."""

    section: Section
    current: Bid | None
    bids: list[Bid]
    uploads: list[BidUpload]
    accepting: bool


def bid_status(actor: Actor, section: Section, *, bidder_id: uuid.UUID | None = None) -> BidStatus:
    """The bidder's status for ``section`` (``forbidden`` for non-bidders)."""
    org = _bidder_org(actor, bidder_id)
    s = _session()
    bids = list(
        s.scalars(
            select(Bid)
            .where(Bid.section_id == section.id, Bid.bidder_id == org.id)
            .order_by(Bid.committed_at.desc(), Bid.id)
        )
    )
    uploads = list(
        s.scalars(
            select(BidUpload)
            .where(
                BidUpload.section_id == section.id,
                BidUpload.bidder_id == org.id,
                BidUpload.state.in_(list(PENDING_UPLOAD_STATES)),
            )
            .order_by(BidUpload.created_at.desc())
        )
    )
    at = now()
    accepting = (
        section.state is SectionState.PUBLISHED
        and section.bid_deadline is not None
        and at < section.bid_deadline
    )
    current = next((b for b in bids if b.is_current), None)
    return BidStatus(section, current, bids, uploads, accepting)


def bid_inclusion_proof(
    actor: Actor | None, bid: Bid, tree_size: int | None = None
) -> InclusionProof:
    """The inclusion proof of the bid's acceptance event (default: in the receipt's head)."""
    size = tree_size if tree_size is not None else bid.receipt.get("tree_size")
    index, n, leaf, path = inclusion_proof_for(_session(), leaf_index=bid.log_index, tree_size=size)
    return InclusionProof(index, n, leaf.hex(), [p.hex() for p in path])


# =========================================================================== the sweep


def expire_uploads(at: datetime) -> int:
    """Sweep handler ``bids.expire_uploads``: end expired upload sessions (deleting their
    objects first), delete the ciphertexts of replaced bids, and delete objects under
    ``bids/`` that no row refers to (after a grace period). Returns how many changed."""
    s = _session()
    storage = get_storage()
    moved = 0
    expired = s.scalars(
        select(BidUpload)
        .where(BidUpload.state.in_(list(PENDING_UPLOAD_STATES)), BidUpload.expires_at <= at)
        .order_by(BidUpload.expires_at, BidUpload.id)
        .limit(500)
        .with_for_update(skip_locked=True)
    ).all()
    for upload in expired:
        _remove_upload_object(storage, upload)
        upload.state = UploadState.EXPIRED
        upload.closed_at = at
        s.flush()
        record_event(
            None,
            "bid.upload_expired",
            "section",
            upload.section_id,
            {
                "upload_id": upload.id,
                "bidder_id": upload.bidder_id,
                "expires_at": upload.expires_at,
            },
        )
        moved += 1
    replaced = s.scalars(
        select(Bid.id)
        .where(Bid.state.in_(list(REPLACED_STATES)), Bid.ciphertext_deleted_at.is_(None))
        .limit(500)
    ).all()
    for bid_id in replaced:
        moved += int(_purge_replaced(storage, bid_id))
    moved += _delete_orphans(storage, at)
    return moved


def _delete_orphans(storage: Storage, at: datetime) -> int:
    keys = storage.list_keys(KEY_PREFIX + "/")
    if not keys:
        return 0
    known = set(
        _session().scalars(select(BidUpload.storage_key).where(BidUpload.storage_key.in_(keys)))
    )
    deleted = 0
    for key in keys:
        if key in known:
            continue
        try:
            info = storage.stat(key)
        except DomainError:
            continue
        if info.last_modified is not None and at - info.last_modified < ORPHAN_GRACE:
            continue
        storage.delete(key)
        log.warning("bids: deleted orphan object %s", key)
        deleted += 1
    return deleted


def init_app(app: Any) -> None:
    """Register the sweep handler (the bid counter is installed at import)."""
    register_sweep("bids.expire_uploads")(expire_uploads)
