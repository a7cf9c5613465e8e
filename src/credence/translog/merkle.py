"""RFC 9162 (RFC 6962) Merkle trees: hashes, roots, inclusion and consistency proofs.

Definitions (RFC 9162 §2.1):

* leaf hash ``SHA-256(0x00 || data)``, node hash ``SHA-256(0x01 || left || right)``;
* the Merkle Tree Hash of ``n`` leaves, ``MTH(D[n])``, is ``SHA-256("")`` for the empty
  tree, the leaf hash for one leaf, and otherwise the node hash of ``MTH(D[0:k])`` and
  ``MTH(D[k:n])`` where ``k`` is the largest power of two smaller than ``n``.

Proofs are lists of 32-byte hashes ordered from the leaf (or the old tree) up to the
root, exactly as RFC 9162 §2.1.3.1 (``PATH``) and §2.1.4.1 (``PROOF``) define them, so
any RFC 9162 / RFC 6962 verifier accepts them; :func:`verify_inclusion` and
:func:`verify_consistency` are the verification algorithms of §2.1.3.2 and §2.1.4.2,
step by step, and refuse what those algorithms leave undefined (see their docstrings):
a hash that is not 32 bytes, an inclusion proof in the empty tree, and a consistency
proof from or to the empty tree. There is no consistency proof from size 0 at all: the
empty tree's root is ``SHA-256("")`` whatever follows it, so a caller that holds an
empty checkpoint compares that root itself instead of asking for a proof.

:class:`MerkleTree` is the fast implementation: it keeps the hash of every complete
("perfect", power-of-two sized and aligned) subtree, level by level, in one
``bytearray`` per level (32 bytes a node, about 64 bytes a leaf in all). Every subtree a
root or a proof needs for any tree size up to its length is then either stored or the
fold of at most ``log2 n`` stored ones, so roots and proofs for any past size cost
``O(log² n)`` hashes at worst and appending a leaf costs ``O(1)`` amortised.
:mod:`credence.translog.reference` is the slow, literal transcription of the RFC the
tests compare this module against.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
"""Bytes in a SHA-256 hash."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree: ``SHA-256("")`` (e3b0c442…)."""


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n`` ≥ 2): where MTH splits."""
    if n < 2:
        raise ValueError(f"a tree of {n} leaves does not split")
    return 1 << ((n - 1).bit_length() - 1)


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """``MTH`` of a sequence of leaf hashes, streaming in ``O(log n)`` memory."""
    frontier = Frontier()
    for h in leaf_hashes:
        frontier.append(h)
    return frontier.root()


class Frontier:
    """The roots of the perfect subtrees of a growing tree (sizes strictly decreasing):
    its root at any size reached, in ``O(log n)`` memory. The root is the fold of the
    stack from the right, which is what the recursive definition computes."""

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []
        self.size = 0

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf (its hash)."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash has {HASH_SIZE} bytes, not {len(leaf_hash)}")
        size, acc = 1, leaf_hash
        stack = self._stack
        while stack and stack[-1][0] == size:
            _, left = stack.pop()
            acc = node_hash(left, acc)
            size *= 2
        stack.append((size, acc))
        self.size += 1

    def root(self) -> bytes:
        """``MTH`` of the leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            acc = node_hash(left, acc)
        return acc


class MerkleTree:
    """An append-only Merkle tree that answers for every size up to its length.

    Level ``h`` holds, at position ``i``, the hash of the perfect subtree over leaves
    ``[i·2^h, (i+1)·2^h)``; a node is stored as soon as its subtree is complete and never
    changes after, so a tree of ``n`` leaves also serves every smaller tree's root and
    proofs (which is what checkpoints of earlier sizes need).

    Appends must be serialised by the caller; reads of sizes that were already complete
    are safe while another thread appends (they touch only nodes that never change).
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self.extend(leaf_hashes)

    def __len__(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def copy(self) -> MerkleTree:
        """An independent copy (appending to one does not change the other)."""
        other = MerkleTree()
        other._levels = [bytearray(level) for level in self._levels]
        return other

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf (its hash)."""
        self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add leaves (their hashes) in order, then every subtree they complete."""
        fresh = bytearray()
        for h in leaf_hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"a leaf hash has {HASH_SIZE} bytes, not {len(h)}")
            fresh += h
        if not fresh:
            return
        self._levels[0] += fresh
        sha256 = hashlib.sha256
        level = 0
        while True:
            row = self._levels[level]
            pairs = len(row) // (2 * HASH_SIZE)
            if pairs == 0:
                break
            if level + 1 == len(self._levels):
                self._levels.append(bytearray())
            up = self._levels[level + 1]
            # Children of a node are adjacent, so its hash input is one 64-byte slice.
            for j in range(len(up) // HASH_SIZE, pairs):
                at = 2 * HASH_SIZE * j
                up += sha256(_NODE_PREFIX + row[at : at + 2 * HASH_SIZE]).digest()
            level += 1

    def leaf(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"leaf {index} is not in a tree of {len(self)} leaves")
        return self._node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """``MTH`` of the first ``size`` leaves (default: all of them)."""
        size = len(self) if size is None else size
        self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 ``PATH(index, D[0:size])``: the audit path of leaf ``index``."""
        size = len(self) if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
        path: list[bytes] = []
        start, end = 0, size
        # Walk down from the root; each step's sibling is one element of the path, and
        # the RFC lists them bottom-up, so the walk's order is reversed at the end.
        while end - start > 1:
            k = split_point(end - start)
            if index < start + k:
                path.append(self._hash(start + k, end))
                end = start + k
            else:
                path.append(self._hash(start, start + k))
                start += k
        path.reverse()
        return path

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """RFC 9162 ``PROOF(first, D[0:second])``: that the tree of ``first`` leaves is a
        prefix of the tree of ``second``.

        §2.1.4.1 defines it for ``0 < first < second``; ``first == second`` gives the empty
        proof (``SUBPROOF(m, D[m], true)`` is empty), which :func:`verify_consistency`
        accepts with equal roots. Size 0 has no proof and raises :class:`ValueError`.
        """
        second = len(self) if second is None else second
        self._check_size(second)
        if first == 0:
            raise ValueError("no consistency proof from size 0 (RFC 9162 §2.1.4.1: 0 < m)")
        if not 0 < first <= second:
            raise ValueError(f"no consistency proof from size {first} to size {second}")
        if first == second:
            return []
        proof: list[bytes] = []
        start, end, m = 0, second, first
        # ``whole`` is SUBPROOF's flag b: the old tree is exactly the current subtree, so
        # the verifier already has its hash and it is not part of the proof.
        whole = True
        while m != end - start:
            k = split_point(end - start)
            if m <= k:
                proof.append(self._hash(start + k, end))
                end = start + k
            else:
                proof.append(self._hash(start, start + k))
                start += k
                m -= k
                whole = False
        if not whole:
            proof.append(self._hash(start, end))
        proof.reverse()
        return proof

    # --- internals ----------------------------------------------------------------------

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= len(self):
            raise ValueError(f"tree size {size} is outside 0..{len(self)}")

    def _node(self, level: int, index: int) -> bytes:
        at = index * HASH_SIZE
        return bytes(self._levels[level][at : at + HASH_SIZE])

    def _hash(self, start: int, end: int) -> bytes:
        """``MTH(D[start:end])``. Inside any tree the left part of every split is a stored
        perfect subtree, so this walks the right spine only: at most ``log n`` nodes."""
        lefts: list[bytes] = []
        while True:
            n = end - start
            if _is_power_of_two(n) and start % n == 0:
                acc = self._node(n.bit_length() - 1, start // n)
                break
            k = split_point(n)
            # Recursion happens only for ranges no tree produces (unaligned); kept so
            # the method is correct for any range.
            lefts.append(self._hash(start, start + k))
            start += k
        for left in reversed(lefts):
            acc = node_hash(left, acc)
        return acc


def _tree_of(source: Sequence[bytes] | MerkleTree, size: int) -> MerkleTree:
    if isinstance(source, MerkleTree):
        return source
    if not 0 <= size <= len(source):
        raise ValueError(f"tree size {size} is outside 0..{len(source)}")
    return MerkleTree(source[:size])


def inclusion_proof(
    index: int, size: int, leaf_hashes: Sequence[bytes] | MerkleTree
) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves.

    ``leaf_hashes`` is a list of leaf hashes or a :class:`MerkleTree` (reused, fast).
    """
    return _tree_of(leaf_hashes, size).inclusion_proof(index, size)


def consistency_proof(
    first: int, second: int, leaf_hashes: Sequence[bytes] | MerkleTree
) -> list[bytes]:
    """The proof that the tree of ``first`` leaves is a prefix of the tree of ``second``."""
    return _tree_of(leaf_hashes, second).consistency_proof(first, second)


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _hashes(*hashes: bytes) -> bool:
    """Whether every argument is a SHA-256 hash, i.e. exactly 32 bytes long."""
    return all(len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes
) -> bool:
    """Whether ``proof`` shows the leaf with hash ``leaf`` at ``index`` in the tree of
    ``size`` leaves whose root is ``root_hash``: RFC 9162 §2.1.3.2, step by step.

    Refused before the algorithm runs: a leaf hash, root or proof element that is not 32
    bytes (the algorithm only hashes and compares, so with an empty path it would take
    any two equal strings, empty ones included, for a one-leaf tree), and an ``index``
    outside ``0 ≤ index < size`` (step 1), which leaves no proof in the empty tree. A
    proof longer or shorter than the path to the root fails steps 4a and 5.
    """
    if not _hashes(leaf, root_hash, *proof):
        return False
    # 1. leaf_index ≥ tree_size fails (and a negative index is no uint64).
    if not 0 <= index < size:
        return False
    # 2.–3.
    fn, sn = index, size - 1
    r = leaf
    # 4.
    for p in proof:
        if sn == 0:  # a. the path goes on past the root
            return False
        if fn & 1 or fn == sn:  # b. p is a left sibling, or the node is the right edge
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # c.
        sn >>= 1
    # 5. the path must end at the root, with the root's hash.
    return sn == 0 and _equal(r, root_hash)


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree of ``first`` leaves (root ``first_root``) is a
    prefix of the tree of ``second`` leaves (root ``second_root``): RFC 9162 §2.1.4.2.

    The RFC gives its algorithm for two tree heads with ``0 < first < second``; outside
    that it defines nothing, and this function decides so:

    * ``first`` of 0 (or ``second`` of 0) is refused, whatever the roots and the proof:
      the RFC defines no consistency proof from the empty tree (§2.1.4.1 asks
      ``0 < m < n``), and accepting one let junk roots pass as "consistent";
    * ``first > second`` is refused;
    * ``first == second`` holds exactly when the proof is empty and the two roots are
      the same hash: a tree is a prefix of itself, and ``SUBPROOF(m, D[m], true)`` is
      empty. A non-empty proof or different roots are refused;
    * a root or proof element that is not 32 bytes is refused.

    Otherwise the RFC's steps run as written: an empty proof fails (step 1), and a proof
    too long or too short fails steps 6a and 7.
    """
    if not _hashes(first_root, second_root, *proof):
        return False
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and _equal(first_root, second_root)
    # 1.
    if not proof:
        return False
    # 2. a perfect old tree is a node of the new one: its root starts the path.
    path = [first_root, *proof] if _is_power_of_two(first) else list(proof)
    # 3.–4.
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:  # a. the proof goes on past the new root
            return False
        if fn & 1 or fn == sn:  # b.
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # c.
        sn >>= 1
    # 7.
    return sn == 0 and _equal(fr, first_root) and _equal(sr, second_root)


__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "split_point",
    "verify_consistency",
    "verify_inclusion",
]
