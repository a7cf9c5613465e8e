"""RFC 9162 Merkle trees: known answers, the fast tree against the RFC's definitions, and
proofs that stay valid as the log grows."""

from __future__ import annotations

import hashlib

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
        for first in range(size + 1):
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
    # The empty tree is a prefix of every tree, but only with the empty tree's root.
    assert verify_consistency(0, 8, EMPTY_ROOT, root, [])
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
    if size:
        index = picks.draw(st.integers(0, size - 1), label="index")
        assert tree.inclusion_proof(index, size) == reference.path(index, data[:size])
    first = picks.draw(st.integers(0, size), label="first")
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
