"""The verifiable expert draw (专家抽取): commit, mix public entropy, rank, fill quotas.

Protocol (details and a worked example in ``crypto/PROTOCOLS.md``):

1. Before the draw the platform picks a random secret (:func:`new_draw_secret`) and
   publishes ``commitment = commit_secret(secret)`` together with
   ``parameters_digest(pools, quotas, reserves)`` — the eligible pool snapshot after the
   avoidance rules (回避) — by appending both to the transparency log.
2. The public entropy is fixed only *after* that, from a source the platform cannot steer
   (e.g. a signed tree head at a pre-announced later tree size, or a value a supervisor
   contributes). ``seed = derive_seed(secret, public_entropy)``.
3. ``draw(seed, pools, quotas, reserves)`` ranks each pool by
   ``HMAC-SHA256(seed, utf8(expert_id))`` (ascending; ties, which need a SHA-256
   collision, break by id) and fills quotas in a fixed order (below).
4. When the room convenes the secret is revealed; anyone holding the :class:`DrawRecord`
   re-runs everything with :func:`verify_draw`.

Quota order: quota keys are processed in ascending Unicode code-point order of the key
(Python ``sorted``). Phase 1 fills every quota's *selected* seats, phase 2 every quota's
*reserves* (候补), each time walking the pool's ranking and skipping experts already
taken by any quota in either phase — so an expert eligible in two pools is picked at most
once, and reserve lists never consume an expert another quota needs as a primary.
Selected seats must be filled (else :class:`NotEnoughCandidatesError`); reserve lists may
come out shorter than asked when a pool runs dry.

Replacement (补抽): when a selected expert declines or times out,
:func:`replace_declined` gives the seat to the first remaining reserve of that quota; with
no reserve left, to the next expert in that pool's ranking not yet selected, reserved or
declined anywhere. A reserve who declines is simply removed. Declines are recorded in
order and replayed by :func:`verify_draw`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.canonical import canonical_json
from crypto.errors import CryptoError

__all__ = [
    "CommitmentMismatchError",
    "DrawError",
    "DrawMismatchError",
    "DrawRecord",
    "DrawResult",
    "NotEnoughCandidatesError",
    "QuotaResult",
    "commit_secret",
    "derive_seed",
    "draw",
    "new_draw_secret",
    "parameters_digest",
    "rank",
    "replace_declined",
    "verify_commitment",
    "verify_draw",
]

COMMITMENT_LABEL = b"sunbid/draw/commitment/v1\x00"
SEED_INFO = b"sunbid/draw/seed/v1"
MIN_SECRET_SIZE = 16
RECORD_VERSION = 1


class DrawError(CryptoError):
    """Draw parameters or a record are malformed (code ``draw_invalid``)."""

    code = "draw_invalid"


class NotEnoughCandidatesError(DrawError):
    """A pool cannot fill its quota (or replace a declined expert).

    ``details``: ``quota``, ``needed``, ``available``."""

    code = "draw_pool_too_small"


class DrawMismatchError(CryptoError):
    """Re-running the draw does not reproduce the record.

    ``details["where"]`` names the first difference (e.g. ``result["B"].selected[1]``),
    with ``expected`` (recomputed) and ``recorded`` values."""

    code = "draw_mismatch"


class CommitmentMismatchError(DrawMismatchError):
    """The revealed secret does not match the published commitment."""

    code = "commitment_mismatch"


# --------------------------------------------------------------------------- primitives


def new_draw_secret() -> bytes:
    """32 random bytes from the OS CSPRNG."""
    return secrets.token_bytes(32)


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_SIZE:
        raise DrawError(f"draw secret must be at least {MIN_SECRET_SIZE} bytes")


def commit_secret(secret: bytes) -> str:
    """``hex(SHA-256(b"sunbid/draw/commitment/v1\\x00" ‖ secret))``."""
    _check_secret(secret)
    return hashlib.sha256(COMMITMENT_LABEL + secret).hexdigest()


def verify_commitment(secret: bytes, commitment: str) -> None:
    """Raise :class:`CommitmentMismatchError` unless ``commit_secret(secret) == commitment``."""
    if not hmac.compare_digest(commit_secret(secret), commitment):
        raise CommitmentMismatchError(
            "revealed secret does not match the commitment", where="commitment"
        )


def derive_seed(secret: bytes, public_entropy: bytes) -> bytes:
    """``HKDF-SHA256(IKM=secret, salt=public_entropy, info=b"sunbid/draw/seed/v1", L=32)``."""
    _check_secret(secret)
    if not isinstance(public_entropy, bytes) or not public_entropy:
        raise DrawError("public entropy must be non-empty bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=public_entropy, info=SEED_INFO).derive(
        secret
    )


def _check_ids(ids: Iterable[str], what: str) -> list[str]:
    result = list(ids)
    for item in result:
        if not isinstance(item, str) or not item or len(item) > 200:
            raise DrawError(f"{what} must be non-empty strings of ≤ 200 characters", value=item)
    if len(set(result)) != len(result):
        dupes = sorted({x for x in result if result.count(x) > 1})
        raise DrawError(f"duplicate {what}", duplicates=dupes)
    return result


def rank(seed: bytes, candidate_ids: Iterable[str]) -> list[tuple[str, str]]:
    """Rank candidates: ``[(id, score_hex), ...]`` ascending by
    ``HMAC-SHA256(key=seed, msg=utf8(id))``, ties broken by the id's UTF-8 bytes."""
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise DrawError("seed must be 32 bytes")
    ids = _check_ids(candidate_ids, "candidate ids")
    scored = [(hmac.new(seed, i.encode("utf-8"), hashlib.sha256).digest(), i) for i in ids]
    scored.sort(key=lambda pair: (pair[0], pair[1].encode("utf-8")))
    return [(i, score.hex()) for score, i in scored]


def parameters_digest(
    pools: Mapping[str, Sequence[str]],
    quotas: Mapping[str, int],
    reserves: Mapping[str, int] | None = None,
) -> str:
    """Hex SHA-256 of ``canonical_json({"pools", "quotas", "reserves"})`` with each pool
    sorted — publish it with the commitment so the snapshot cannot change afterwards."""
    pools_, quotas_, reserves_ = _check_parameters(pools, quotas, reserves)
    document = {
        "pools": {k: sorted(v) for k, v in pools_.items()},
        "quotas": quotas_,
        "reserves": reserves_,
    }
    return hashlib.sha256(canonical_json(document)).hexdigest()


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class QuotaResult:
    """One quota's outcome: ``selected`` seats in rank order (a replacement takes the
    declined expert's position), remaining ``reserves`` in rank order, ``declined`` in the
    order declines happened."""

    selected: tuple[str, ...]
    reserves: tuple[str, ...]
    declined: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "selected": list(self.selected),
            "reserves": list(self.reserves),
            "declined": list(self.declined),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuotaResult:
        try:
            return cls(
                selected=tuple(str(x) for x in data["selected"]),
                reserves=tuple(str(x) for x in data["reserves"]),
                declined=tuple(str(x) for x in data.get("declined", ())),
            )
        except (KeyError, TypeError) as exc:
            raise DrawError(f"malformed quota result: {exc}") from exc


@dataclass(frozen=True)
class DrawResult:
    """Outcome per quota key."""

    quotas: Mapping[str, QuotaResult]

    def selected(self) -> list[str]:
        """All selected experts, quota keys in processing order."""
        return [e for k in sorted(self.quotas) for e in self.quotas[k].selected]

    def to_dict(self) -> dict[str, Any]:
        return {k: self.quotas[k].to_dict() for k in sorted(self.quotas)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DrawResult:
        if not isinstance(data, Mapping):
            raise DrawError("draw result must be an object")
        return cls({str(k): QuotaResult.from_dict(v) for k, v in data.items()})


def _check_parameters(
    pools: Mapping[str, Sequence[str]],
    quotas: Mapping[str, int],
    reserves: Mapping[str, int] | None,
) -> tuple[dict[str, list[str]], dict[str, int], dict[str, int]]:
    reserves = reserves or {}
    keys = _check_ids(quotas, "quota keys")
    if set(pools) != set(keys):
        raise DrawError(
            "pools and quotas must have the same keys",
            missing_pools=sorted(set(keys) - set(pools)),
            extra_pools=sorted(set(pools) - set(keys)),
        )
    if not set(reserves) <= set(keys):
        raise DrawError("reserves for unknown quotas", unknown=sorted(set(reserves) - set(keys)))
    for name, table in (("quota", quotas), ("reserve", reserves)):
        for key, count in table.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise DrawError(f"{name} counts must be integers ≥ 0", key=key)
    pools_ = {k: _check_ids(pools[k], f"candidate ids in pool {k!r}") for k in keys}
    return pools_, {k: quotas[k] for k in keys}, {k: reserves.get(k, 0) for k in keys}


def draw(
    seed: bytes,
    pools: Mapping[str, Sequence[str]],
    quotas: Mapping[str, int],
    reserves: Mapping[str, int] | None = None,
) -> DrawResult:
    """Draw experts (抽取): for each quota key, ``quotas[key]`` selected and up to
    ``reserves[key]`` reserves from ``pools[key]`` (see the module docstring for the
    order). Deterministic in its inputs; pool order does not matter."""
    pools_, quotas_, reserves_ = _check_parameters(pools, quotas, reserves)
    rankings = {k: [i for i, _ in rank(seed, pools_[k])] for k in pools_}
    order = sorted(quotas_)
    taken: set[str] = set()
    selected: dict[str, list[str]] = {}
    for key in order:
        chosen = [i for i in rankings[key] if i not in taken][: quotas_[key]]
        if len(chosen) < quotas_[key]:
            raise NotEnoughCandidatesError(
                "pool too small for its quota",
                quota=key,
                needed=quotas_[key],
                available=len(chosen),
            )
        selected[key] = chosen
        taken.update(chosen)
    result: dict[str, QuotaResult] = {}
    for key in order:
        spare = [i for i in rankings[key] if i not in taken][: reserves_[key]]
        taken.update(spare)
        result[key] = QuotaResult(selected=tuple(selected[key]), reserves=tuple(spare))
    return DrawResult(result)


def replace_declined(
    seed: bytes,
    pools: Mapping[str, Sequence[str]],
    result: DrawResult,
    expert_id: str,
) -> tuple[DrawResult, str | None]:
    """Record that ``expert_id`` declined (or timed out) and fill the seat (补抽).

    Returns the new result and the replacement's id (``None`` when a reserve declined:
    reserves are not replenished). Raises :class:`DrawError` if the expert holds no seat
    or reserve, :class:`NotEnoughCandidatesError` if the pool is exhausted.
    """
    key = next(
        (
            k
            for k in sorted(result.quotas)
            if expert_id in result.quotas[k].selected or expert_id in result.quotas[k].reserves
        ),
        None,
    )
    if key is None:
        raise DrawError("expert holds no seat or reserve in this draw", expert_id=expert_id)
    quota = result.quotas[key]
    declined = (*quota.declined, expert_id)
    if expert_id in quota.reserves:
        new_quota = QuotaResult(
            selected=quota.selected,
            reserves=tuple(r for r in quota.reserves if r != expert_id),
            declined=declined,
        )
        return DrawResult({**result.quotas, key: new_quota}), None
    reserves = list(quota.reserves)
    if reserves:
        replacement = reserves.pop(0)
    else:
        used = {e for q in result.quotas.values() for e in (*q.selected, *q.reserves, *q.declined)}
        if key not in pools:
            raise DrawError("no pool for this quota", quota=key)
        replacement_or_none = next(
            (i for i, _ in rank(seed, pools[key]) if i not in used and i != expert_id), None
        )
        if replacement_or_none is None:
            raise NotEnoughCandidatesError(
                "no candidate left to replace the declined expert",
                quota=key,
                needed=1,
                available=0,
            )
        replacement = replacement_or_none
    selected = tuple(replacement if e == expert_id else e for e in quota.selected)
    new_quota = QuotaResult(selected=selected, reserves=tuple(reserves), declined=declined)
    return DrawResult({**result.quotas, key: new_quota}), replacement


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class DrawRecord:
    """Everything needed to re-run a draw: publish it once the secret may be revealed.

    ``result`` is the draw as first made; ``declined`` lists declines in order and
    ``final`` is the result after replaying them through :func:`replace_declined`.
    ``entropy_source`` says where ``public_entropy`` came from (free text, e.g.
    ``"sth tree_size=1234"``), for the human reader.
    """

    draw_id: str
    commitment: str
    parameters_digest: str
    secret: bytes
    public_entropy: bytes
    pools: Mapping[str, tuple[str, ...]]
    quotas: Mapping[str, int]
    reserves: Mapping[str, int]
    result: DrawResult
    declined: tuple[str, ...] = ()
    final: DrawResult | None = None
    entropy_source: str = ""
    version: int = field(default=RECORD_VERSION)

    @classmethod
    def create(
        cls,
        *,
        draw_id: str,
        secret: bytes,
        public_entropy: bytes,
        pools: Mapping[str, Sequence[str]],
        quotas: Mapping[str, int],
        reserves: Mapping[str, int] | None = None,
        declined: Sequence[str] = (),
        entropy_source: str = "",
    ) -> DrawRecord:
        """Run the draw (and replay ``declined``) and return the complete record."""
        reserves = dict(reserves or {})
        seed = derive_seed(secret, public_entropy)
        result = draw(seed, pools, quotas, reserves)
        final = result
        for expert in declined:
            final, _ = replace_declined(seed, pools, final, expert)
        return cls(
            draw_id=draw_id,
            commitment=commit_secret(secret),
            parameters_digest=parameters_digest(pools, quotas, reserves),
            secret=secret,
            public_entropy=public_entropy,
            pools={k: tuple(v) for k, v in pools.items()},
            quotas=dict(quotas),
            reserves={k: reserves.get(k, 0) for k in quotas},
            result=result,
            declined=tuple(declined),
            final=final,
            entropy_source=entropy_source,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "draw_id": self.draw_id,
            "commitment": self.commitment,
            "parameters_digest": self.parameters_digest,
            "secret": self.secret.hex(),
            "public_entropy": self.public_entropy.hex(),
            "entropy_source": self.entropy_source,
            "pools": {k: list(v) for k, v in self.pools.items()},
            "quotas": dict(self.quotas),
            "reserves": dict(self.reserves),
            "result": self.result.to_dict(),
            "declined": list(self.declined),
            "final": (self.final or self.result).to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DrawRecord:
        try:
            if data["version"] != RECORD_VERSION:
                raise DrawError("unsupported draw record version", version=data["version"])
            return cls(
                draw_id=str(data["draw_id"]),
                commitment=str(data["commitment"]),
                parameters_digest=str(data["parameters_digest"]),
                secret=bytes.fromhex(str(data["secret"])),
                public_entropy=bytes.fromhex(str(data["public_entropy"])),
                entropy_source=str(data.get("entropy_source", "")),
                pools={str(k): tuple(v) for k, v in data["pools"].items()},
                quotas=dict(data["quotas"]),
                reserves=dict(data["reserves"]),
                result=DrawResult.from_dict(data["result"]),
                declined=tuple(str(x) for x in data.get("declined", ())),
                final=DrawResult.from_dict(data["final"]) if "final" in data else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DrawError(f"malformed draw record: {exc}") from exc


def _first_difference(prefix: str, expected: DrawResult, recorded: DrawResult) -> None:
    keys = sorted(set(expected.quotas) | set(recorded.quotas))
    for key in keys:
        if key not in recorded.quotas or key not in expected.quotas:
            raise DrawMismatchError(
                "quota keys differ",
                where=f"{prefix}[{key!r}]",
                expected=key in expected.quotas,
                recorded=key in recorded.quotas,
            )
        exp, rec = expected.quotas[key], recorded.quotas[key]
        for part in ("selected", "reserves", "declined"):
            exp_list: tuple[str, ...] = getattr(exp, part)
            rec_list: tuple[str, ...] = getattr(rec, part)
            for i in range(max(len(exp_list), len(rec_list))):
                e = exp_list[i] if i < len(exp_list) else None
                r = rec_list[i] if i < len(rec_list) else None
                if e != r:
                    raise DrawMismatchError(
                        f"draw does not reproduce at {prefix}[{key!r}].{part}[{i}]",
                        where=f"{prefix}[{key!r}].{part}[{i}]",
                        expected=e,
                        recorded=r,
                    )


def verify_draw(record: DrawRecord) -> None:
    """Re-run a recorded draw; raise :class:`DrawMismatchError` at the first difference.

    Checks, in order: the commitment (:class:`CommitmentMismatchError`), the parameters
    digest, the initial result, then the replayed declines and the final result.
    """
    verify_commitment(record.secret, record.commitment)
    digest = parameters_digest(record.pools, record.quotas, record.reserves)
    if not hmac.compare_digest(digest, record.parameters_digest):
        raise DrawMismatchError(
            "pool snapshot does not match the published parameters digest",
            where="parameters_digest",
            expected=digest,
            recorded=record.parameters_digest,
        )
    seed = derive_seed(record.secret, record.public_entropy)
    expected = draw(seed, record.pools, record.quotas, record.reserves)
    _first_difference("result", expected, record.result)
    final = expected
    for expert in record.declined:
        try:
            final, _ = replace_declined(seed, record.pools, final, expert)
        except DrawError as exc:
            raise DrawMismatchError(
                "a recorded decline cannot be replayed",
                where="declined",
                expected=None,
                recorded=expert,
            ) from exc
    _first_difference("final", final, record.final or record.result)
