"""Merkle tree hashing for the transparency log (透明日志 / 见证零死角).

This is the tree of RFC 6962 §2.1, restated in RFC 9162 §2.1, with SHA-256:

* ``leaf_hash(d) = SHA-256(0x00 ‖ d)`` and ``node_hash(l, r) = SHA-256(0x01 ‖ l ‖ r)``;
* ``MTH({}) = SHA-256("")``; ``MTH({d0}) = leaf_hash(d0)``; for ``n > 1`` with ``k`` the
  largest power of two smaller than ``n``, ``MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``.

It offers:

* :func:`root`, :func:`inclusion_proof`, :func:`consistency_proof` over a list of leaf
  hashes held in memory;
* the same proofs over a :class:`LeafSource` (:func:`inclusion_proof_from`,
  :func:`consistency_proof_from`, :func:`subtree_hash`), for logs too large to hold: the
  source hands out leaf hashes by range and, optionally, stored hashes of perfect subtrees,
  so a proof costs ``O(log n)`` look-ups plus at most a few chunks of leaves;
* :func:`verify_inclusion` and :func:`verify_consistency`, which follow the verification
  algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 step by step and raise
  :class:`MerkleProofError` (code ``merkle_proof_invalid``) on any failure;
* :class:`CompactTree`, the "frontier" of perfect-subtree hashes (one per set bit of the
  tree size) that lets a log append a leaf and recompute the root in ``O(log n)`` without
  the earlier leaves, serialisable as a short list of hashes;
* :class:`TreeHead`, a tree size, root hash and timestamp with the exact bytes a log signs.

Pure functions: no Flask, no database, no clock.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from crypto.errors import CryptoError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactTree",
    "LeafSource",
    "ListLeafSource",
    "MerkleError",
    "MerkleProofError",
    "MerkleRangeError",
    "TreeHead",
    "consistency_proof",
    "consistency_proof_from",
    "inclusion_proof",
    "inclusion_proof_from",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_range",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""``MTH({})``: the root of the empty tree."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class MerkleError(CryptoError):
    """Base class of the Merkle tree errors."""

    code = "merkle_error"


class MerkleProofError(MerkleError):
    """A proof, root or tree head does not verify."""

    code = "merkle_proof_invalid"


class MerkleRangeError(MerkleError):
    """A leaf index or tree size is out of range for the request (nothing to prove)."""

    code = "merkle_range_invalid"


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 ‖ data)``: the hash of one log entry."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 ‖ left ‖ right)``: the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise MerkleProofError(f"{what} must be {HASH_SIZE} bytes", what=what)


# --------------------------------------------------------------------------- in memory


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """``MTH`` of the leaves whose hashes are given (``SHA-256("")`` for none)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    tree = CompactTree()
    for h in leaf_hashes:
        tree.append(h)
    return tree.root()


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path ``PATH(index, D[n])`` for the leaf at ``index`` in a tree of all leaves."""
    return inclusion_proof_from(index, len(leaf_hashes), ListLeafSource(leaf_hashes))


def consistency_proof(m: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """``PROOF(m, D[n])`` that the first ``m`` leaves are a prefix of all ``n`` leaves."""
    return consistency_proof_from(m, len(leaf_hashes), ListLeafSource(leaf_hashes))


# --------------------------------------------------------------------------- from a source


class LeafSource(Protocol):
    """Where proof generation reads the log from (e.g. a database table by range)."""

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        """Leaf hashes ``start .. end-1`` in order (exactly ``end - start`` of them)."""
        ...

    def perfect_subtree(self, level: int, index: int) -> bytes | None:
        """The stored hash of leaves ``[index·2^level, (index+1)·2^level)``, or None."""
        ...


class ListLeafSource:
    """A :class:`LeafSource` over leaf hashes held in memory."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self._leaves = leaf_hashes

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        return self._leaves[start:end]

    def perfect_subtree(self, level: int, index: int) -> bytes | None:
        return None


#: Ranges at most this long are hashed from one fetch of their leaves.
CHUNK = 256


def root_from_range(leaf_hashes: Iterable[bytes]) -> bytes:
    """``MTH`` of the given leaf hashes, consumed once in order."""
    tree = CompactTree()
    for h in leaf_hashes:
        tree.append(h)
    return tree.root()


def subtree_hash(source: LeafSource, start: int, end: int) -> bytes:
    """``MTH(D[start:end])`` read from ``source`` (``start < end``)."""
    size = end - start
    if size <= 0:
        raise MerkleRangeError("empty subtree range", start=start, end=end)
    if size & (size - 1) == 0 and start % size == 0 and size > 1:
        stored = source.perfect_subtree(size.bit_length() - 1, start // size)
        if stored is not None:
            return stored
    if size <= CHUNK:
        leaves = source.leaf_hashes(start, end)
        if len(leaves) != size:
            raise MerkleRangeError(
                "the leaf source returned the wrong number of leaves",
                start=start,
                end=end,
                got=len(leaves),
            )
        return root_from_range(leaves)
    k = _largest_power_of_two_below(size)
    return node_hash(subtree_hash(source, start, start + k), subtree_hash(source, start + k, end))


def inclusion_proof_from(index: int, tree_size: int, source: LeafSource) -> list[bytes]:
    """``PATH(index, D[tree_size])`` with subtree hashes read from ``source``."""
    if not 0 <= index < tree_size:
        raise MerkleRangeError(
            "leaf index must be below the tree size", leaf_index=index, tree_size=tree_size
        )
    top_down: list[bytes] = []
    start, end = 0, tree_size
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if index < start + k:
            top_down.append(subtree_hash(source, start + k, end))
            end = start + k
        else:
            top_down.append(subtree_hash(source, start, start + k))
            start += k
    top_down.reverse()
    return top_down


def consistency_proof_from(m: int, n: int, source: LeafSource) -> list[bytes]:
    """``PROOF(m, D[n])`` (RFC 6962 §2.1.2) with subtree hashes read from ``source``.

    ``m == 0`` and ``m == n`` give the empty proof.
    """
    if not 0 <= m <= n:
        raise MerkleRangeError("need 0 <= first <= second", first=m, second=n)
    if m == 0 or m == n:
        return []
    top_down: list[bytes] = []
    start, end, rel, complete = 0, n, m, True
    while True:
        size = end - start
        if rel == size:
            if not complete:
                top_down.append(subtree_hash(source, start, end))
            break
        k = _largest_power_of_two_below(size)
        if rel <= k:
            top_down.append(subtree_hash(source, start + k, end))
            end = start + k
        else:
            top_down.append(subtree_hash(source, start, start + k))
            start += k
            rel -= k
            complete = False
    top_down.reverse()
    return top_down


# --------------------------------------------------------------------------- verification


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """Check that ``leaf`` (a leaf *hash*) sits at ``index`` of the tree with ``root_hash``.

    RFC 9162 §2.1.3.2. Returns None on success, raises :class:`MerkleProofError` otherwise.
    """
    _check_hash(leaf, "leaf hash")
    _check_hash(root_hash, "root hash")
    for p in proof:
        _check_hash(p, "proof element")
    # 1. leaf_index must be below tree_size.
    if index < 0 or index >= tree_size:
        raise MerkleProofError(
            "leaf index is not below the tree size", leaf_index=index, tree_size=tree_size
        )
    # 2. fn = leaf_index, sn = tree_size - 1; 3. r = hash.
    fn, sn = index, tree_size - 1
    r = bytes(leaf)
    # 4. for each p in the inclusion path
    for p in proof:
        if sn == 0:  # a. too many proof elements
            raise MerkleProofError("inclusion proof is too long", proof_length=len(proof))
        if fn & 1 or fn == sn:  # b.
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # c.
        sn >>= 1
    # 5. sn must be 0 and r the root.
    if sn != 0:
        raise MerkleProofError("inclusion proof is too short", proof_length=len(proof))
    if r != root_hash:
        raise MerkleProofError(
            "inclusion proof does not lead to the root", leaf_index=index, tree_size=tree_size
        )


def verify_consistency(
    m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of size ``m`` and root ``root_m`` is a prefix of the tree of
    size ``n`` and root ``root_n``.

    RFC 9162 §2.1.4.2 for ``0 < m < n``; ``m == n`` needs an empty proof and equal roots;
    ``m == 0`` needs an empty proof and ``root_m`` the empty-tree root. Raises
    :class:`MerkleProofError` on any failure.
    """
    _check_hash(root_m, "first root hash")
    _check_hash(root_n, "second root hash")
    for p in proof:
        _check_hash(p, "proof element")
    if m < 0 or n < 0 or m > n:
        raise MerkleProofError("need 0 <= first <= second", first=m, second=n)
    if m == n:
        if proof:
            raise MerkleProofError("a proof between equal sizes must be empty")
        if root_m != root_n:
            raise MerkleProofError("roots of equal-size trees differ", tree_size=m)
        return
    if m == 0:
        if proof:
            raise MerkleProofError("a proof from the empty tree must be empty")
        if root_m != EMPTY_ROOT:
            raise MerkleProofError("the root of the empty tree is not SHA-256('')")
        return
    # 1. An empty path fails.
    if not proof:
        raise MerkleProofError("consistency proof is empty", first=m, second=n)
    path = list(proof)
    # 2. If first is an exact power of 2, prepend first_hash.
    if m & (m - 1) == 0:
        path.insert(0, bytes(root_m))
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = m - 1, n - 1
    # 4. While LSB(fn) is set, shift both right.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = first value.
    fr = sr = path[0]
    # 6. For each subsequent value c.
    for c in path[1:]:
        if sn == 0:  # a.
            raise MerkleProofError("consistency proof is too long", proof_length=len(proof))
        if fn & 1 or fn == sn:  # b.
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # c.
        sn >>= 1
    # 7. fr == first_hash, sr == second_hash, sn == 0.
    if sn != 0:
        raise MerkleProofError("consistency proof is too short", proof_length=len(proof))
    if fr != root_m:
        raise MerkleProofError("consistency proof does not lead to the first root", first=m)
    if sr != root_n:
        raise MerkleProofError("consistency proof does not lead to the second root", second=n)


# --------------------------------------------------------------------------- compact tree


@dataclass(frozen=True)
class PerfectNode:
    """A perfect subtree completed by an append: leaves ``[index·2^level, (index+1)·2^level)``."""

    level: int
    index: int
    hash: bytes


class CompactTree:
    """An append-only Merkle tree kept as its frontier (compact range ``[0, size)``).

    The frontier holds one perfect-subtree hash per set bit of ``size``, largest (leftmost)
    first, so a tree of ``n`` leaves is stored in ``popcount(n)`` hashes.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise MerkleRangeError("tree size must not be negative", tree_size=size)
        if len(frontier) != size.bit_count():
            raise MerkleRangeError(
                "frontier length must equal the number of set bits of the size",
                tree_size=size,
                frontier_length=len(frontier),
            )
        for h in frontier:
            _check_hash(h, "frontier hash")
        self._size = size
        self._frontier = [bytes(h) for h in frontier]

    @property
    def size(self) -> int:
        return self._size

    @property
    def frontier(self) -> list[bytes]:
        """The perfect-subtree hashes, largest first (a copy)."""
        return list(self._frontier)

    def append(self, leaf: bytes) -> list[PerfectNode]:
        """Append one leaf *hash*; return the perfect subtrees of height ≥ 1 it completed."""
        _check_hash(leaf, "leaf hash")
        completed: list[PerfectNode] = []
        h = bytes(leaf)
        index = self._size
        level = 0
        while index & 1:  # the last subtree at this level is complete: merge
            h = node_hash(self._frontier.pop(), h)
            index >>= 1
            level += 1
            completed.append(PerfectNode(level, index, h))
        self._frontier.append(h)
        self._size += 1
        return completed

    def extend(self, leaves: Iterable[bytes]) -> list[PerfectNode]:
        completed: list[PerfectNode] = []
        for leaf in leaves:
            completed.extend(self.append(leaf))
        return completed

    def root(self) -> bytes:
        """``MTH`` of all leaves appended so far."""
        if not self._frontier:
            return EMPTY_ROOT
        r = self._frontier[-1]
        for h in reversed(self._frontier[:-1]):
            r = node_hash(h, r)
        return r

    def to_bytes(self) -> bytes:
        """The frontier hashes concatenated (``32 × popcount(size)`` bytes)."""
        return b"".join(self._frontier)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactTree:
        if len(data) % HASH_SIZE:
            raise MerkleRangeError("frontier bytes are not a whole number of hashes")
        hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        return cls(size, hashes)

    def copy(self) -> CompactTree:
        return CompactTree(self._size, self._frontier)


# --------------------------------------------------------------------------- tree heads

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEAD_DOMAIN = b"sunbid/tree-head/v1\x00"


@dataclass(frozen=True)
class TreeHead:
    """A log's tree size and root at a moment (the content of a signed tree head, STH).

    ``timestamp`` must be an aware datetime with whole milliseconds (as in RFC 6962, the
    signed time is milliseconds since the epoch).
    """

    tree_size: int
    root_hash: bytes
    timestamp: datetime

    def __post_init__(self) -> None:
        if self.tree_size < 0:
            raise MerkleRangeError("tree size must not be negative", tree_size=self.tree_size)
        _check_hash(self.root_hash, "root hash")
        if self.timestamp.tzinfo is None or self.timestamp.utcoffset() is None:
            raise MerkleError("tree head timestamp must be timezone-aware")
        if self.timestamp.microsecond % 1000:
            raise MerkleError("tree head timestamp must have whole milliseconds")

    @property
    def timestamp_ms(self) -> int:
        return (self.timestamp - _EPOCH) // timedelta(milliseconds=1)

    def signing_payload(self) -> bytes:
        """The bytes a log signs: a domain tag, then big-endian ms timestamp (8 bytes),
        tree size (8 bytes) and the 32-byte root (cf. RFC 6962 §3.5 ``TreeHeadSignature``).
        """
        return (
            _HEAD_DOMAIN
            + struct.pack(">QQ", self.timestamp_ms, self.tree_size)
            + bytes(self.root_hash)
        )

    @staticmethod
    def truncate(moment: datetime) -> datetime:
        """``moment`` in UTC cut to whole milliseconds, as a tree head timestamp must be."""
        moment = moment.astimezone(UTC)
        return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
