"""RFC 9162 Merkle trees: known answers, independently published test vectors (accepted
and refused), the fast tree against the RFC's definitions, the verifiers' edge cases
(RFC 9162 §2.1.3.2 and §2.1.4.2 exactly), and proofs that stay valid as the log grows."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from credence.translog import merkle, reference
from credence.translog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

# The leaves and roots of the Certificate Transparency reference implementations' tests
# (RFC 6962 test vectors): leaf inputs, then MTH of the first n leaves for n = 0..8.
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
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path) from the same suites.
CT_PATHS = [
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
# (first size, second size, consistency proof) from the same suites.
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

CT_TREE = MerkleTree(leaf_hash(d) for d in CT_LEAVES)

# Independently published vectors, stored as data: tests/data/README.md says where from.
VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "rfc6962_vectors.json").read_text()
)
TD: dict[str, Any] = VECTORS["transparency_dev_merkle"]
CCTV: dict[str, Any] = VECTORS["cctv_merkle"]


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def b64s(texts: list[str] | None) -> list[bytes]:
    return [b64(t) for t in texts or []]


CCTV_TREE = MerkleTree(b64(e["leaf_hash"]) for e in CCTV["merkle_tree"])


def hexes(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


# --- known answers -------------------------------------------------------------------


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    assert MerkleTree().root() == EMPTY_ROOT
    assert merkle.root([]) == EMPTY_ROOT
    assert reference.mth([]) == EMPTY_ROOT


def test_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"ab") == hashlib.sha256(b"\x00ab").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_rfc6962_vectors(size: int) -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES[:size]]
    assert CT_TREE.root(size).hex() == CT_ROOTS[size]
    assert merkle.root(hashes).hex() == CT_ROOTS[size]
    assert MerkleTree(hashes).root().hex() == CT_ROOTS[size]
    assert reference.mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), CT_PATHS)
def test_inclusion_proofs_match_the_vectors(index: int, size: int, path: list[str]) -> None:
    assert hexes(CT_TREE.inclusion_proof(index, size)) == path
    assert hexes(merkle.inclusion_proof(index, size, [leaf_hash(d) for d in CT_LEAVES])) == path
    assert hexes(reference.path(index, CT_LEAVES[:size])) == path
    proof = [bytes.fromhex(h) for h in path]
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, proof, root)


@pytest.mark.parametrize(("first", "second", "proof"), CT_CONSISTENCY)
def test_consistency_proofs_match_the_vectors(first: int, second: int, proof: list[str]) -> None:
    assert hexes(CT_TREE.consistency_proof(first, second)) == proof
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    assert hexes(merkle.consistency_proof(first, second, hashes)) == proof
    assert hexes(reference.proof(first, CT_LEAVES[:second])) == proof
    first_root, second_root = bytes.fromhex(CT_ROOTS[first]), bytes.fromhex(CT_ROOTS[second])
    assert verify_consistency(
        first, second, first_root, second_root, [bytes.fromhex(h) for h in proof]
    )


def test_every_leaf_of_every_vector_tree_verifies() -> None:
    for size in range(1, 9):
        root = bytes.fromhex(CT_ROOTS[size])
        for index in range(size):
            proof = CT_TREE.inclusion_proof(index, size)
            assert verify_inclusion(CT_TREE.leaf(index), index, size, proof, root)
        for first in range(1, size + 1):
            proof = CT_TREE.consistency_proof(first, size)
            first_root = bytes.fromhex(CT_ROOTS[first])
            assert verify_consistency(first, size, first_root, root, proof)


# --- edge cases --------------------------------------------------------------------------


def test_out_of_range_requests_are_refused() -> None:
    tree = MerkleTree(leaf_hash(d) for d in CT_LEAVES[:3])
    with pytest.raises(ValueError, match="outside"):
        tree.root(4)
    with pytest.raises(ValueError, match="not in a tree"):
        tree.inclusion_proof(3, 3)
    with pytest.raises(ValueError, match="no consistency proof"):
        tree.consistency_proof(3, 2)
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")
    assert len(tree) == 3  # a refused append changes nothing
    with pytest.raises(ValueError, match="does not split"):
        merkle.split_point(1)


def test_verifiers_refuse_impossible_sizes() -> None:
    root = CT_TREE.root(8)
    leaf = CT_TREE.leaf(0)
    assert not verify_inclusion(leaf, 8, 8, CT_TREE.inclusion_proof(0, 8), root)
    assert not verify_inclusion(leaf, -1, 8, CT_TREE.inclusion_proof(0, 8), root)
    assert not verify_inclusion(leaf, 0, 0, [], root)
    assert not verify_consistency(5, 4, root, root, [])
    assert not verify_consistency(3, 8, CT_TREE.root(3), root, [])
    # RFC 9162 has no consistency proof from the empty tree, not even an empty one.
    assert not verify_consistency(0, 8, EMPTY_ROOT, root, [])
    assert not verify_consistency(0, 8, root, root, [])
    assert not verify_consistency(0, 8, EMPTY_ROOT, root, [root])
    # Equal sizes: empty proof and equal roots.
    assert verify_consistency(8, 8, root, root, [])
    assert not verify_consistency(8, 8, root, CT_TREE.root(7), [])
    assert not verify_consistency(8, 8, root, root, [root])


def test_incremental_appends_equal_a_bulk_build() -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(300)]
    one_by_one = MerkleTree()
    in_chunks = MerkleTree()
    for h in hashes:
        one_by_one.append(h)
    for start in range(0, 300, 37):
        in_chunks.extend(hashes[start : start + 37])
    bulk = MerkleTree(hashes)
    copy = bulk.copy()
    copy.append(hashes[0])
    for size in range(301):
        assert one_by_one.root(size) == in_chunks.root(size) == bulk.root(size)
    assert len(bulk) == 300
    assert len(copy) == 301


# --- RFC 9162 §2.1.3.2 and §2.1.4.2 exactly: the degenerate inputs ------------------------

WRONG_LENGTHS = [b"", b"\x00" * 31, b"\x00" * 33, bytes(64)]


def test_an_empty_leaf_hash_with_an_empty_root_does_not_verify() -> None:
    # With no path, the §2.1.3.2 algorithm compares the leaf hash with the root: any two
    # equal byte strings would "verify" a one-leaf tree if their length were not checked.
    assert not verify_inclusion(b"", 0, 1, [], b"")


@pytest.mark.parametrize("bad", WRONG_LENGTHS, ids=lambda b: f"{len(b)}-bytes")
def test_inclusion_refuses_hashes_of_the_wrong_length(bad: bytes) -> None:
    assert not verify_inclusion(bad, 0, 1, [], bad)
    leaf, proof, root = CT_TREE.leaf(2), CT_TREE.inclusion_proof(2, 3), CT_TREE.root(3)
    assert verify_inclusion(leaf, 2, 3, proof, root)
    assert not verify_inclusion(bad, 2, 3, proof, root)
    assert not verify_inclusion(leaf, 2, 3, proof, bad)
    assert not verify_inclusion(leaf, 2, 3, [bad], root)
    # A proof element of the wrong length where the path is otherwise complete.
    assert not verify_inclusion(leaf, 2, 3, [proof[0] + b"\x00"], root)
    assert not verify_inclusion(leaf, 2, 3, [proof[0][:-1]], root)


def test_inclusion_needs_an_index_inside_a_non_empty_tree() -> None:
    # In a one-leaf tree the root is the leaf hash and the path is empty, so only step 1
    # (leaf_index < tree_size) stops the same leaf from being shown at any other index.
    leaf = CT_TREE.leaf(0)
    assert CT_TREE.root(1) == leaf
    assert verify_inclusion(leaf, 0, 1, [], leaf)
    for index in (1, 2, -1, 2**64 - 1):
        assert not verify_inclusion(leaf, index, 1, [], leaf)
    for index in (8, 9, -1):
        assert not verify_inclusion(leaf, index, 8, CT_TREE.inclusion_proof(0, 8), CT_TREE.root(8))
    for index in (0, 1, -1):
        assert not verify_inclusion(EMPTY_ROOT, index, 0, [], EMPTY_ROOT)
        assert not verify_inclusion(leaf, index, 0, [], leaf)


def test_consistency_from_or_to_size_zero_is_refused() -> None:
    root8 = CT_TREE.root(8)
    # RFC 9162 §2.1.4.2 verifies tree heads of sizes 0 < first < second only.
    assert not verify_consistency(0, 8, EMPTY_ROOT, root8, [])
    assert not verify_consistency(0, 1, EMPTY_ROOT, CT_TREE.root(1), [])
    assert not verify_consistency(0, 8, EMPTY_ROOT, root8, CT_TREE.consistency_proof(1, 8))
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 0, b"junk", b"junk", [])
    assert not verify_consistency(1, 0, CT_TREE.root(1), EMPTY_ROOT, [])
    # The generators make no such proof either (§2.1.4.1 defines PROOF for 0 < m).
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    for second in (0, 1, 8):
        with pytest.raises(ValueError, match="size 0"):
            CT_TREE.consistency_proof(0, second)
        with pytest.raises(ValueError, match="size 0"):
            merkle.consistency_proof(0, second, hashes)
        with pytest.raises(ValueError, match="0 < m"):
            reference.proof(0, CT_LEAVES[:second])


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    for size in range(1, 9):
        root = CT_TREE.root(size)
        assert CT_TREE.consistency_proof(size, size) == []
        assert reference.proof(size, CT_LEAVES[:size]) == []
        assert verify_consistency(size, size, root, root, [])
        assert not verify_consistency(size, size, root, root, [root])
        assert not verify_consistency(size, size, root, root, [EMPTY_ROOT])
        assert not verify_consistency(size, size, root, CT_TREE.root(size - 1), [])
        assert not verify_consistency(size, size, CT_TREE.root(size - 1), root, [])
    # Equal junk that is not a hash is not a root.
    assert not verify_consistency(3, 3, b"junk", b"junk", [])


@pytest.mark.parametrize("bad", WRONG_LENGTHS, ids=lambda b: f"{len(b)}-bytes")
def test_consistency_refuses_hashes_of_the_wrong_length(bad: bytes) -> None:
    root3, root8, proof = CT_TREE.root(3), CT_TREE.root(8), CT_TREE.consistency_proof(3, 8)
    assert verify_consistency(3, 8, root3, root8, proof)
    assert not verify_consistency(3, 3, bad, bad, [])
    assert not verify_consistency(3, 8, bad, root8, proof)
    assert not verify_consistency(3, 8, root3, bad, proof)
    for at in range(len(proof)):
        assert not verify_consistency(3, 8, root3, root8, [*proof[:at], bad, *proof[at + 1 :]])
    # First size a power of two: the old root is the path's first element.
    root4, proof4 = CT_TREE.root(4), CT_TREE.consistency_proof(4, 8)
    assert verify_consistency(4, 8, root4, root8, proof4)
    assert not verify_consistency(4, 8, bad, root8, proof4)


def test_proofs_of_the_wrong_length_are_refused() -> None:
    tree = CCTV_TREE
    hashes = [tree.leaf(i) for i in range(len(tree))]
    extra = hashlib.sha256(b"extra").digest()
    for second in range(1, len(hashes) + 1):
        root = tree.root(second)
        for index in range(second):
            path = tree.inclusion_proof(index, second)
            assert verify_inclusion(hashes[index], index, second, path, root)
            for wrong in _lengthened(path, extra) + _shortened(path):
                assert not verify_inclusion(hashes[index], index, second, wrong, root)
        for first in range(1, second + 1):
            proof, first_root = tree.consistency_proof(first, second), tree.root(first)
            assert verify_consistency(first, second, first_root, root, proof)
            for wrong in _lengthened(proof, extra) + _shortened(proof):
                assert not verify_consistency(first, second, first_root, root, wrong)


def test_every_other_root_or_leaf_is_refused() -> None:
    # A 32-byte hash that is not the right one: a flipped bit, or another size's root.
    # Every leaf of every tree of 1..16 leaves, every pair of sizes between them.
    tree = CCTV_TREE
    n = len(tree)
    for second in range(1, n + 1):
        root = tree.root(second)
        for index in range(second):
            leaf, path = tree.leaf(index), tree.inclusion_proof(index, second)
            for other in (_flipped(root), EMPTY_ROOT, tree.root(second % n + 1)):
                assert not verify_inclusion(leaf, index, second, path, other)
            for other in (_flipped(leaf), tree.leaf((index + 1) % n), root):
                if other != leaf:
                    assert not verify_inclusion(other, index, second, path, root)
        for first in range(1, second + 1):
            proof, first_root = tree.consistency_proof(first, second), tree.root(first)
            others = [
                _flipped(first_root),
                EMPTY_ROOT,
                *(tree.root(m) for m in (first - 1, second)),
            ]
            for other in others:
                if other != first_root:
                    assert not verify_consistency(first, second, other, root, proof)
            for other in (_flipped(root), EMPTY_ROOT, first_root, tree.root(second % n + 1)):
                if other != root:
                    assert not verify_consistency(first, second, first_root, other, proof)


def _flipped(h: bytes) -> bytes:
    return bytes([h[0] ^ 0x01, *h[1:]])


def _lengthened(proof: list[bytes], extra: bytes) -> list[list[bytes]]:
    longer = [[*proof, extra], [extra, *proof]]
    return [*longer, [*proof, proof[-1]], [proof[0], *proof]] if proof else longer


def _shortened(proof: list[bytes]) -> list[list[bytes]]:
    return [proof[:-1], proof[1:]] if proof else []


# --- independently published vectors (tests/data/README.md says where from) -------------


def _case_id(case: dict[str, Any]) -> str:
    return str(case["file"]).removeprefix("testdata/")


@pytest.mark.parametrize("case", TD["inclusion"], ids=_case_id)
def test_transparency_dev_inclusion_vectors(case: dict[str, Any]) -> None:
    verified = verify_inclusion(
        b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        b64s(case["proof"]),
        b64(case["root"]),
    )
    assert verified is not case["wantErr"]


@pytest.mark.parametrize("case", TD["consistency"], ids=_case_id)
def test_transparency_dev_consistency_vectors(case: dict[str, Any]) -> None:
    verified = verify_consistency(
        case["size1"], case["size2"], b64(case["root1"]), b64(case["root2"]), b64s(case["proof"])
    )
    assert verified is not case["wantErr"]


def test_transparency_dev_valid_proofs_are_what_the_trees_generate() -> None:
    # Those suites build their trees from the CT leaves above.
    valid_inclusion = [c for c in TD["inclusion"] if not c["wantErr"]]
    valid_consistency = [c for c in TD["consistency"] if not c["wantErr"]]
    assert len(valid_inclusion) == 5
    assert len(valid_consistency) == 5
    for c in valid_inclusion:
        index, size = c["leafIdx"], c["treeSize"]
        assert CT_TREE.leaf(index) == b64(c["leafHash"])
        assert CT_TREE.root(size) == reference.mth(CT_LEAVES[:size]) == b64(c["root"])
        assert CT_TREE.inclusion_proof(index, size) == b64s(c["proof"])
        assert reference.path(index, CT_LEAVES[:size]) == b64s(c["proof"])
    for c in valid_consistency:
        first, second = c["size1"], c["size2"]
        assert (CT_TREE.root(first), CT_TREE.root(second)) == (b64(c["root1"]), b64(c["root2"]))
        assert CT_TREE.consistency_proof(first, second) == b64s(c["proof"])
        assert reference.proof(first, CT_LEAVES[:second]) == b64s(c["proof"])


def test_transparency_dev_negative_vectors_are_single_mutations() -> None:
    # Each "modified proof[i] bit k" case differs from its valid proof in one bit of one
    # element, so refusing it is refusing exactly one flipped bit.
    for kind, cases in (("inclusion", TD["inclusion"]), ("consistency", TD["consistency"])):
        valid = {c["file"].rsplit("/", 1)[0]: c for c in cases if not c["wantErr"]}
        flips = [c for c in cases if c["desc"].startswith("modified proof")]
        assert flips, kind
        for c in flips:
            good = b64s(valid[c["file"].rsplit("/", 1)[0]]["proof"])
            bad = b64s(c["proof"])
            assert len(bad) == len(good)
            diffs = [
                (i, x ^ y)
                for i, (g, b) in enumerate(zip(good, bad, strict=True))
                for x, y in zip(g, b, strict=True)
                if x != y
            ]
            assert len(diffs) == 1
            assert diffs[0][1] in (8, 16)
            assert f"proof[{diffs[0][0]}]" in c["desc"]


def test_cctv_tree_heads() -> None:
    data = [e["leaf_data"].encode() for e in CCTV["merkle_tree"]]
    hashes = [leaf_hash(d) for d in data]
    assert hashes == [b64(e["leaf_hash"]) for e in CCTV["merkle_tree"]]
    tree = MerkleTree(hashes)
    for size in range(1, len(data) + 1):
        expected = b64(CCTV["merkle_tree"][size - 1]["root_hash"])
        assert tree.root(size) == merkle.root(hashes[:size]) == expected
        assert reference.mth(data[:size]) == expected


@pytest.mark.parametrize("valid", [True, False], ids=["valid", "invalid"])
def test_cctv_inclusion_vectors(valid: bool) -> None:
    cases = CCTV["inclusion_valid" if valid else "inclusion_invalid"]
    assert cases
    for c in cases:
        leaf, index, size = b64(c["leaf_hash"]), c["leaf_index"], c["tree_size"]
        path, root = b64s(c["inclusion_path"]), b64(c["root_hash"])
        assert verify_inclusion(leaf, index, size, path, root) is valid
        if valid:
            assert CCTV_TREE.inclusion_proof(index, size) == path
            assert CCTV_TREE.root(size) == root


# RFC 9162 §2.1.4.2 verifies consistency for 0 < first < second only; the CCTV suite also
# lists the empty tree's "proofs" (0 → 0 and 0 → 1, empty path) as valid. Refused here.
CCTV_FROM_SIZE_ZERO = [(0, 0), (0, 1)]


@pytest.mark.parametrize("valid", [True, False], ids=["valid", "invalid"])
def test_cctv_consistency_vectors(valid: bool) -> None:
    cases = CCTV["consistency_valid" if valid else "consistency_invalid"]
    assert cases
    from_zero = []
    for c in cases:
        first, second = c["old_size"], c["new_size"]
        path = b64s(c["consistency_path"])
        old_root, new_root = b64(c["old_root"]), b64(c["new_root"])
        verified = verify_consistency(first, second, old_root, new_root, path)
        if valid and first == 0:
            from_zero.append((first, second))
            assert not verified
            with pytest.raises(ValueError, match="size 0"):
                CCTV_TREE.consistency_proof(first, second)
            continue
        assert verified is valid
        if valid:
            assert CCTV_TREE.consistency_proof(first, second) == path
            assert (CCTV_TREE.root(first), CCTV_TREE.root(second)) == (old_root, new_root)
    assert from_zero == (CCTV_FROM_SIZE_ZERO if valid else [])


# --- the fast tree against the RFC's definitions ----------------------------------------

leaves_strategy = st.lists(st.binary(max_size=6), max_size=70)


@settings(max_examples=60, deadline=None)
@given(data=leaves_strategy, picks=st.data())
def test_fast_tree_equals_the_reference(data: list[bytes], picks: st.DataObject) -> None:
    hashes = [leaf_hash(d) for d in data]
    tree = MerkleTree(hashes)
    n = len(data)
    size = picks.draw(st.integers(0, n), label="size")
    assert tree.root(size) == reference.mth(data[:size]) == merkle.root(hashes[:size])
    if not size:
        return
    index = picks.draw(st.integers(0, size - 1), label="index")
    assert tree.inclusion_proof(index, size) == reference.path(index, data[:size])
    first = picks.draw(st.integers(1, size), label="first")
    assert tree.consistency_proof(first, size) == reference.proof(first, data[:size])


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 80), picks=st.data())
def test_any_change_to_an_inclusion_proof_fails(size: int, picks: st.DataObject) -> None:
    tree = MerkleTree(leaf_hash(i.to_bytes(2, "big")) for i in range(size))
    index = picks.draw(st.integers(0, size - 1), label="index")
    proof, root, leaf = tree.inclusion_proof(index, size), tree.root(size), tree.leaf(index)
    assert verify_inclusion(leaf, index, size, proof, root)
    for other in {index - 1, index + 1} - {-1, size}:
        assert not verify_inclusion(leaf, other, size, proof, root)
    assert not verify_inclusion(leaf, index, size, [*proof, root], root)
    if proof:
        assert not verify_inclusion(leaf, index, size, proof[:-1], root)
        at = picks.draw(st.integers(0, len(proof) - 1), label="element")
        flipped = bytearray(proof[at])
        flipped[at % 32] ^= 0x01
        bad = [*proof[:at], bytes(flipped), *proof[at + 1 :]]
        assert not verify_inclusion(leaf, index, size, bad, root)
    assert not verify_inclusion(leaf_hash(b"forged"), index, size, proof, root)


@settings(max_examples=60, deadline=None)
@given(second=st.integers(2, 80), picks=st.data())
def test_any_change_to_a_consistency_proof_fails(second: int, picks: st.DataObject) -> None:
    tree = MerkleTree(leaf_hash(i.to_bytes(2, "big")) for i in range(second))
    first = picks.draw(st.integers(1, second - 1), label="first")
    proof = tree.consistency_proof(first, second)
    first_root, second_root = tree.root(first), tree.root(second)
    assert verify_consistency(first, second, first_root, second_root, proof)
    assert not verify_consistency(first, second, second_root, second_root, proof)
    assert not verify_consistency(first, second, first_root, first_root, proof)
    assert not verify_consistency(first, second, first_root, second_root, [*proof, first_root])
    assert not verify_consistency(first, second, first_root, second_root, proof[:-1])
    at = picks.draw(st.integers(0, len(proof) - 1), label="element")
    flipped = bytearray(proof[at])
    flipped[at % 32] ^= 0x80
    bad = [*proof[:at], bytes(flipped), *proof[at + 1 :]]
    assert not verify_consistency(first, second, first_root, second_root, bad)


MUTATIONS = ("flip", "replace", "drop", "insert", "duplicate", "shorten", "lengthen", "swap")


def _mutate(proof: list[bytes], picks: st.DataObject) -> list[bytes]:
    """One change to a proof: a bit flipped, an element replaced, dropped, inserted,
    duplicated, cut or extended by a byte, or two distinct elements swapped."""
    kinds = [k for k in MUTATIONS if proof or k == "insert"]
    if len({*proof}) < 2:
        kinds = [k for k in kinds if k != "swap"]
    kind = picks.draw(st.sampled_from(kinds), label="mutation")
    if kind in ("insert", "duplicate"):
        at = picks.draw(st.integers(0, len(proof) - (kind == "duplicate")), label="at")
        extra = (
            proof[at]
            if kind == "duplicate"
            else picks.draw(st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE), label="new")
        )
        return [*proof[:at], extra, *proof[at:]]
    at = picks.draw(st.integers(0, len(proof) - 1), label="at")
    old = proof[at]
    if kind == "drop":
        return [*proof[:at], *proof[at + 1 :]]
    if kind == "swap":
        other = picks.draw(
            st.sampled_from([i for i, p in enumerate(proof) if p != old]), label="with"
        )
        swapped = list(proof)
        swapped[at], swapped[other] = swapped[other], swapped[at]
        return swapped
    if kind == "flip":
        bit = picks.draw(st.integers(0, 8 * HASH_SIZE - 1), label="bit")
        new = bytearray(old)
        new[bit // 8] ^= 1 << (bit % 8)
        changed = bytes(new)
    elif kind == "replace":
        changed = picks.draw(
            st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE).filter(lambda b: b != old),
            label="new",
        )
    elif kind == "shorten":
        changed = old[:-1]
    else:
        changed = old + b"\x00"
    return [*proof[:at], changed, *proof[at + 1 :]]


def _misshapen(h: bytes, picks: st.DataObject) -> bytes:
    cut = picks.draw(st.integers(0, HASH_SIZE - 1), label="length")
    return picks.draw(st.sampled_from([h[:cut], h + b"\x00", h + h]), label="misshapen")


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 70), picks=st.data())
def test_any_single_mutation_of_an_inclusion_proof_is_refused(
    size: int, picks: st.DataObject
) -> None:
    tree = MerkleTree(leaf_hash(i.to_bytes(2, "big")) for i in range(size))
    index = picks.draw(st.integers(0, size - 1), label="index")
    proof, root, leaf = tree.inclusion_proof(index, size), tree.root(size), tree.leaf(index)
    assert proof == reference.path(index, [i.to_bytes(2, "big") for i in range(size)])
    assert verify_inclusion(leaf, index, size, proof, root)
    assert not verify_inclusion(leaf, index, size, _mutate(proof, picks), root)
    assert not verify_inclusion(_misshapen(leaf, picks), index, size, proof, root)
    assert not verify_inclusion(leaf, index, size, proof, _misshapen(root, picks))


@settings(max_examples=200, deadline=None)
@given(second=st.integers(1, 70), picks=st.data())
def test_any_single_mutation_of_a_consistency_proof_is_refused(
    second: int, picks: st.DataObject
) -> None:
    tree = MerkleTree(leaf_hash(i.to_bytes(2, "big")) for i in range(second))
    first = picks.draw(st.integers(1, second), label="first")
    proof = tree.consistency_proof(first, second)
    first_root, second_root = tree.root(first), tree.root(second)
    assert verify_consistency(first, second, first_root, second_root, proof)
    assert not verify_consistency(first, second, first_root, second_root, _mutate(proof, picks))
    bad_first = _misshapen(first_root, picks)
    assert not verify_consistency(first, second, bad_first, second_root, proof)
    assert not verify_consistency(first, second, first_root, _misshapen(second_root, picks), proof)


# --- a growing log: every proof from any earlier checkpoint stays valid ---------------


class GrowingLog(RuleBasedStateMachine):
    """Append entries, take checkpoints (size, root), and at any point prove any entry
    against any checkpoint and any checkpoint against any later one."""

    checkpoints = Bundle("checkpoints")

    def __init__(self) -> None:
        super().__init__()
        self.tree = MerkleTree()
        self.data: list[bytes] = []

    @initialize(target=checkpoints)
    def empty_checkpoint(self) -> tuple[int, bytes]:
        return (0, self.tree.root())

    @rule(entries=st.lists(st.binary(max_size=8), min_size=1, max_size=9))
    def append(self, entries: list[bytes]) -> None:
        self.data += entries
        self.tree.extend(leaf_hash(d) for d in entries)

    @rule(target=checkpoints)
    def checkpoint(self) -> tuple[int, bytes]:
        return (len(self.tree), self.tree.root())

    @rule(cp=checkpoints, picks=st.data())
    def prove_inclusion_against_a_checkpoint(
        self, cp: tuple[int, bytes], picks: st.DataObject
    ) -> None:
        size, root = cp
        if size == 0:
            return
        index = picks.draw(st.integers(0, size - 1), label="index")
        proof = self.tree.inclusion_proof(index, size)
        assert verify_inclusion(leaf_hash(self.data[index]), index, size, proof, root)

    @rule(a=checkpoints, b=checkpoints)
    def prove_consistency_between_checkpoints(
        self, a: tuple[int, bytes], b: tuple[int, bytes]
    ) -> None:
        (first, first_root), (second, second_root) = sorted([a, b])
        if first == 0:
            # No proof starts at the empty tree (RFC 9162 §2.1.4): the caller compares
            # the empty root itself, and the verifier refuses whatever it is given.
            assert first_root == EMPTY_ROOT
            with pytest.raises(ValueError, match="size 0"):
                self.tree.consistency_proof(first, second)
            assert not verify_consistency(first, second, first_root, second_root, [])
            return
        proof = self.tree.consistency_proof(first, second)
        assert verify_consistency(first, second, first_root, second_root, proof)

    @precondition(lambda self: len(self.data) <= 40)
    @rule(cp=checkpoints)
    def checkpoint_root_is_the_reference_root(self, cp: tuple[int, bytes]) -> None:
        size, root = cp
        assert reference.mth(self.data[:size]) == root

    @rule(target=checkpoints, cp=consumes(checkpoints))
    def forget_a_checkpoint(self, cp: tuple[int, bytes]) -> MultipleResults[tuple[int, bytes]]:
        # Keeps the bundle from growing without bound; the empty tree always stays.
        return multiple(cp) if cp[0] == 0 else multiple()

    @invariant()
    def root_is_the_streaming_root(self) -> None:
        assert self.tree.root() == merkle.root(leaf_hash(d) for d in self.data)


TestGrowingLog = GrowingLog.TestCase
TestGrowingLog.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
