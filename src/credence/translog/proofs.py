"""Inclusion and consistency proofs (RFC 9162), served from the log's tree.

An inclusion proof shows that a journal entry is a leaf of the tree a checkpoint signed;
a consistency proof that a later checkpoint's tree extends an earlier one's. Both are
computed from :func:`~credence.translog.tree.tree_at` and carry what is needed to check
them (:meth:`InclusionProof.verify`, :meth:`ConsistencyProof.verify`): whoever kept a
checkpoint compares its root with the proof's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from credence.errors import InvalidInput, NotFound
from credence.translog import merkle
from credence.translog.checkpoints import latest_checkpoint
from credence.translog.tree import tree_at


@dataclass(frozen=True)
class InclusionProof:
    """That the entry ``seq`` is leaf ``leaf_index`` of the tree of ``tree_size`` leaves."""

    seq: int
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    root_hash: bytes
    path: tuple[bytes, ...]

    def verify(self) -> bool:
        """Check the proof against its own root (compare the root with a checkpoint's)."""
        return merkle.verify_inclusion(
            self.leaf_hash, self.leaf_index, self.tree_size, self.path, self.root_hash
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """That the tree of ``first`` leaves is a prefix of the tree of ``second`` leaves."""

    first: int
    second: int
    first_root: bytes
    second_root: bytes
    path: tuple[bytes, ...]

    def verify(self) -> bool:
        """Check the proof against its own roots (compare those with checkpoints')."""
        return merkle.verify_consistency(
            self.first, self.second, self.first_root, self.second_root, self.path
        )


def prove_inclusion(session: Session, seq: int, size: int | None = None) -> InclusionProof:
    """The inclusion proof of journal entry ``seq`` in the tree of ``size`` leaves
    (default: the latest checkpoint's)."""
    if size is None:
        latest = latest_checkpoint(session)
        if latest is None:
            raise NotFound("the log has no checkpoint yet", code="no_checkpoint")
        size = latest.tree_size
    view = tree_at(session, size)
    index = view.index_of(seq)
    return InclusionProof(
        seq=seq,
        leaf_index=index,
        tree_size=size,
        leaf_hash=view.leaf_hash(index),
        root_hash=view.root,
        path=tuple(view.inclusion_proof(index)),
    )


def prove_consistency(session: Session, first: int, second: int) -> ConsistencyProof:
    """The proof that the tree of ``first`` leaves is a prefix of the tree of ``second``."""
    if not 0 < first <= second:
        raise InvalidInput(
            f"a consistency proof needs 0 < first ≤ second (got {first} and {second}): "
            "RFC 9162 has none from the empty tree",
            code="bad_tree_sizes",
        )
    view = tree_at(session, second)
    return ConsistencyProof(
        first=first,
        second=second,
        first_root=view.root_at(first),
        second_root=view.root,
        path=tuple(view.consistency_proof(first)),
    )


__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "prove_consistency",
    "prove_inclusion",
]
