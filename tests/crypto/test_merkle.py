"""RFC 6962 / RFC 9162 Merkle tree: reference vectors, properties, tampering."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import merkle
from crypto.errors import CryptoError
from crypto.merkle import (
    EMPTY_ROOT,
    CompactTree,
    ListLeafSource,
    MerkleProofError,
    MerkleRangeError,
    TreeHead,
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    inclusion_proof_from,
    leaf_hash,
    node_hash,
    root,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

# The Certificate Transparency reference leaves and roots (certificate-transparency /
# trillian merkle test data). Note leaf 5 is 40 41 42 43 (four bytes).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path) from the same test data.
CT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (first, second, proof)
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

CT_LEAF_HASHES = [leaf_hash(d) for d in CT_LEAVES]


# --------------------------------------------------------------------------- naive model


def naive_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written recursively and independently of crypto.merkle."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [naive_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, leaves[:k], b), naive_mth(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_mth(leaves[:k])]


def distinct_leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


# --------------------------------------------------------------------------- vectors


def test_hash_primitives() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert (
        root([])
        == EMPTY_ROOT
        == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    )


def test_size_eight_root_is_the_published_one() -> None:
    assert root(CT_LEAF_HASHES).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(size: int) -> None:
    assert root(CT_LEAF_HASHES[:size]).hex() == CT_ROOTS[size - 1]
    assert naive_mth(CT_LEAF_HASHES[:size]).hex() == CT_ROOTS[size - 1]
    tree = CompactTree()
    tree.extend(CT_LEAF_HASHES[:size])
    assert tree.root().hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(index, CT_LEAF_HASHES[:size])
    assert [p.hex() for p in proof] == path
    verify_inclusion(CT_LEAF_HASHES[index], index, size, proof, bytes.fromhex(CT_ROOTS[size - 1]))


@pytest.mark.parametrize(("first", "second", "path"), CT_CONSISTENCY)
def test_reference_consistency_proofs(first: int, second: int, path: list[str]) -> None:
    proof = consistency_proof(first, CT_LEAF_HASHES[:second])
    assert [p.hex() for p in proof] == path
    verify_consistency(
        first,
        second,
        bytes.fromhex(CT_ROOTS[first - 1]),
        bytes.fromhex(CT_ROOTS[second - 1]),
        proof,
    )


def test_reference_inclusion_mutations_fail() -> None:
    """The tampering cases of the trillian verifier tests, on every reference proof."""
    for index, size, path in CT_INCLUSION:
        if not path:
            continue
        proof = [bytes.fromhex(p) for p in path]
        good_root = bytes.fromhex(CT_ROOTS[size - 1])
        leaf = CT_LEAF_HASHES[index]
        bad_calls = [
            (leaf, index - 1, size, proof, good_root),
            (leaf, index + 1, size, proof, good_root),
            (leaf, index ^ 2, size, proof, good_root),
            (leaf, index, size * 2, proof, good_root),
            (leaf, index, size // 2, proof, good_root),
            (leaf_hash(b"WrongLeaf"), index, size, proof, good_root),
            (leaf, index, size, proof, EMPTY_ROOT),
            (leaf, index, size, [*proof, good_root], good_root),
            (leaf, index, size, proof[:-1], good_root),
            (leaf, index, size, [good_root, *proof], good_root),
        ]
        for i in range(len(proof)):
            bad_calls.append(
                (leaf, index, size, [*proof[:i], EMPTY_ROOT, *proof[i + 1 :]], good_root)
            )
        for args in bad_calls:
            with pytest.raises(MerkleProofError):
                verify_inclusion(*args)


def test_invalid_inclusion_inputs() -> None:
    for index, size in ((0, 0), (1, 0), (2, 1), (-1, 1)):
        with pytest.raises(MerkleProofError) as info:
            verify_inclusion(leaf_hash(b""), index, size, [], EMPTY_ROOT)
        assert info.value.code == "merkle_proof_invalid"
        assert isinstance(info.value, CryptoError)
    with pytest.raises(MerkleProofError):
        verify_inclusion(b"short", 0, 1, [], EMPTY_ROOT)
    with pytest.raises(MerkleProofError):
        verify_inclusion(leaf_hash(b""), 0, 2, [b""], EMPTY_ROOT)


def test_consistency_edge_cases() -> None:
    r1 = bytes.fromhex(CT_ROOTS[0])
    r2 = bytes.fromhex(CT_ROOTS[1])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, r1, [])
    verify_consistency(1, 1, r1, r1, [])
    bad = [
        (1, 0, r1, r1, []),  # time travel
        (2, 1, r2, r1, []),
        (1, 2, r1, r2, []),  # empty proof
        (1, 1, r1, r2, []),  # equal sizes, different roots
        (1, 1, r1, r1, [r1]),  # equal sizes, non-empty proof
        (0, 1, EMPTY_ROOT, r1, [r1]),
        (0, 1, r1, r1, []),  # the empty tree's root is fixed
    ]
    for args in bad:
        with pytest.raises(MerkleProofError):
            verify_consistency(*args)
    assert consistency_proof(0, CT_LEAF_HASHES) == []
    assert consistency_proof(8, CT_LEAF_HASHES) == []
    with pytest.raises(MerkleRangeError) as info:
        consistency_proof(9, CT_LEAF_HASHES)
    assert info.value.code == "merkle_range_invalid"
    with pytest.raises(MerkleRangeError):
        inclusion_proof(8, CT_LEAF_HASHES)
    with pytest.raises(MerkleRangeError):
        inclusion_proof(-1, CT_LEAF_HASHES)


def test_reference_consistency_mutations_fail() -> None:
    for first, second, path in CT_CONSISTENCY:
        if not path:
            continue
        proof = [bytes.fromhex(p) for p in path]
        r1 = bytes.fromhex(CT_ROOTS[first - 1])
        r2 = bytes.fromhex(CT_ROOTS[second - 1])
        bad_calls = [
            (first - 1, second, r1, r2, proof),
            (first + 1, second, r1, r2, proof),
            (first ^ 2, second, r1, r2, proof),
            (first, second * 2, r1, r2, proof),
            (first, second // 2, r1, r2, proof),
            (first, second, leaf_hash(b"WrongRoot"), r2, proof),
            (first, second, r1, leaf_hash(b"WrongRoot"), proof),
            (first, second, r2, r1, proof),
            (first, second, r1, r2, []),
            (first, second, r1, r2, [*proof, r1]),
            (first, second, r1, r2, proof[:-1]),
            (first, second, r1, r2, [proof[0], *proof]),
        ]
        for i in range(len(proof)):
            bad_calls.append((first, second, r1, r2, [*proof[:i], EMPTY_ROOT, *proof[i + 1 :]]))
        for args in bad_calls:
            with pytest.raises(MerkleProofError):
                verify_consistency(*args)


# --------------------------------------------------------------------------- exhaustive small


def test_every_proof_up_to_33_leaves_matches_the_naive_model() -> None:
    leaves = distinct_leaves(33)
    for n in range(1, 34):
        prefix = leaves[:n]
        r = root(prefix)
        assert r == naive_mth(prefix)
        for i in range(n):
            proof = inclusion_proof(i, prefix)
            assert proof == naive_path(i, prefix)
            verify_inclusion(prefix[i], i, n, proof, r)
        for m in range(1, n + 1):
            proof = consistency_proof(m, prefix)
            assert proof == naive_subproof(m, prefix, True)
            verify_consistency(m, n, naive_mth(leaves[:m]), r, proof)


# --------------------------------------------------------------------------- properties

sizes = st.integers(min_value=1, max_value=300)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=sizes)
def test_property_inclusion_verifies_and_mutations_fail(data: st.DataObject, n: int) -> None:
    leaves = distinct_leaves(n)
    index = data.draw(st.integers(0, n - 1), label="index")
    r = root(leaves)
    proof = inclusion_proof(index, leaves)
    verify_inclusion(leaves[index], index, n, proof, r)

    # another index
    other = data.draw(st.integers(0, 2 * n).filter(lambda j: j != index), label="other")
    with pytest.raises(MerkleProofError):
        verify_inclusion(leaves[index], other, n, proof, r)
    # another root
    with pytest.raises(MerkleProofError):
        verify_inclusion(leaves[index], index, n, proof, leaf_hash(r))
    # another leaf
    with pytest.raises(MerkleProofError):
        verify_inclusion(leaf_hash(b"x" + leaves[index]), index, n, proof, r)
    if proof:
        # flip one bit of one element
        pos = data.draw(st.integers(0, len(proof) - 1), label="pos")
        bit = data.draw(st.integers(0, 255), label="bit")
        element = bytearray(proof[pos])
        element[bit // 8] ^= 1 << (bit % 8)
        mutated = [*proof[:pos], bytes(element), *proof[pos + 1 :]]
        with pytest.raises(MerkleProofError):
            verify_inclusion(leaves[index], index, n, mutated, r)
        # drop one element
        with pytest.raises(MerkleProofError):
            verify_inclusion(leaves[index], index, n, proof[:pos] + proof[pos + 1 :], r)
    # add one element
    with pytest.raises(MerkleProofError):
        verify_inclusion(leaves[index], index, n, [*proof, r], r)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=sizes)
def test_property_consistency_verifies_and_mutations_fail(data: st.DataObject, n: int) -> None:
    leaves = distinct_leaves(n)
    m = data.draw(st.integers(0, n), label="m")
    root_m, root_n = root(leaves[:m]), root(leaves)
    proof = consistency_proof(m, leaves)
    verify_consistency(m, n, root_m, root_n, proof)
    if m == 0 or m == n:
        assert proof == []
        return
    with pytest.raises(MerkleProofError):
        verify_consistency(m, n, leaf_hash(root_m), root_n, proof)
    with pytest.raises(MerkleProofError):
        verify_consistency(m, n, root_m, leaf_hash(root_n), proof)
    other_m = data.draw(st.integers(1, n).filter(lambda j: j != m), label="other_m")
    if root(leaves[:other_m]) != root_m:
        with pytest.raises(MerkleProofError):
            verify_consistency(other_m, n, root_m, root_n, proof)
    # (Changing only the claimed second size can still verify when the tree shapes
    # coincide, as RFC 9162's algorithm allows: tree sizes come from signed heads.)
    pos = data.draw(st.integers(0, len(proof) - 1), label="pos")
    bit = data.draw(st.integers(0, 255), label="bit")
    element = bytearray(proof[pos])
    element[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(MerkleProofError):
        verify_consistency(m, n, root_m, root_n, [*proof[:pos], bytes(element), *proof[pos + 1 :]])
    with pytest.raises(MerkleProofError):
        verify_consistency(m, n, root_m, root_n, proof[:pos] + proof[pos + 1 :])
    with pytest.raises(MerkleProofError):
        verify_consistency(m, n, root_m, root_n, [*proof, root_n])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 2000), cut=st.integers(0, 2000))
def test_property_compact_tree_roundtrip(n: int, cut: int) -> None:
    leaves = distinct_leaves(n)
    cut = min(cut, n)
    tree = CompactTree()
    tree.extend(leaves[:cut])
    restored = CompactTree.from_bytes(cut, tree.to_bytes())
    assert len(restored.frontier) == cut.bit_count()
    assert restored.root() == root(leaves[:cut])
    restored.extend(leaves[cut:])
    assert restored.size == n
    assert restored.root() == naive_mth(leaves)


# --------------------------------------------------------------------------- sources


class CountingSource(ListLeafSource):
    """A source that stores perfect subtrees at level >= 4 and counts leaf fetches."""

    def __init__(self, leaves: list[bytes]) -> None:
        super().__init__(leaves)
        self.fetched = 0
        self.nodes: dict[tuple[int, int], bytes] = {}
        tree = CompactTree()
        for leaf in leaves:
            for node in tree.append(leaf):
                if node.level >= 4:
                    self.nodes[(node.level, node.index)] = node.hash

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        self.fetched += end - start
        return list(super().leaf_hashes(start, end))

    def perfect_subtree(self, level: int, index: int) -> bytes | None:
        return self.nodes.get((level, index))


def test_proofs_from_a_source_with_stored_subtrees() -> None:
    leaves = distinct_leaves(5000)
    source = CountingSource(leaves)
    for index, size in ((0, 5000), (4999, 5000), (1234, 4097), (4096, 4097)):
        assert inclusion_proof_from(index, size, source) == inclusion_proof(index, leaves[:size])
    for m, n in ((1, 5000), (3000, 5000), (4096, 4097), (17, 33)):
        assert consistency_proof_from(m, n, source) == consistency_proof(m, leaves[:n])
    source.fetched = 0
    proof = inclusion_proof_from(2500, 5000, source)
    verify_inclusion(leaves[2500], 2500, 5000, proof, root(leaves))
    assert source.fetched < 200  # not the whole log
    assert subtree_hash(source, 0, 4096) == root(leaves[:4096])


def test_source_returning_too_few_leaves_is_refused() -> None:
    class Short(ListLeafSource):
        def leaf_hashes(self, start: int, end: int) -> list[bytes]:
            return []

    with pytest.raises(MerkleRangeError):
        subtree_hash(Short([]), 0, 3)


def test_compact_tree_reports_completed_subtrees() -> None:
    tree = CompactTree()
    assert tree.append(CT_LEAF_HASHES[0]) == []
    nodes = tree.append(CT_LEAF_HASHES[1])
    assert [(n.level, n.index) for n in nodes] == [(1, 0)]
    assert nodes[0].hash.hex() == CT_ROOTS[1]
    tree.extend(CT_LEAF_HASHES[2:7])
    nodes = tree.append(CT_LEAF_HASHES[7])
    assert [(n.level, n.index) for n in nodes] == [(1, 3), (2, 1), (3, 0)]
    assert nodes[-1].hash.hex() == CT_ROOTS[7]
    assert tree.frontier == [bytes.fromhex(CT_ROOTS[7])]


def test_compact_tree_refuses_bad_state() -> None:
    with pytest.raises(MerkleRangeError):
        CompactTree(3, [EMPTY_ROOT])
    with pytest.raises(MerkleRangeError):
        CompactTree(-1, [])
    with pytest.raises(MerkleRangeError):
        CompactTree.from_bytes(1, b"x" * 31)
    with pytest.raises(MerkleProofError):
        CompactTree().append(b"short")


# --------------------------------------------------------------------------- tree heads


def test_tree_head_payload_is_fixed() -> None:
    at = datetime(2026, 11, 26, 8, 0, 0, 123000, tzinfo=UTC)
    head = TreeHead(8, bytes.fromhex(CT_ROOTS[7]), at)
    payload = head.signing_payload()
    assert payload.startswith(b"sunbid/tree-head/v1\x00")
    assert payload[20:28] == (1795680000123).to_bytes(8, "big")
    assert payload[28:36] == (8).to_bytes(8, "big")
    assert payload[36:] == bytes.fromhex(CT_ROOTS[7])
    assert len(payload) == 68
    assert TreeHead(8, head.root_hash, at).signing_payload() == payload
    assert TreeHead(9, head.root_hash, at).signing_payload() != payload


def test_tree_head_validation() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(merkle.MerkleError):
        TreeHead(1, EMPTY_ROOT, datetime(2026, 1, 1))
    with pytest.raises(merkle.MerkleError):
        TreeHead(1, EMPTY_ROOT, at.replace(microsecond=1))
    with pytest.raises(MerkleProofError):
        TreeHead(1, b"x", at)
    with pytest.raises(MerkleRangeError):
        TreeHead(-1, EMPTY_ROOT, at)
    assert TreeHead.truncate(at.replace(microsecond=123456)).microsecond == 123000
