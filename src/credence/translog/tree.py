"""The log as a Merkle tree over the journal, and each process's cache of it.

**Leaf index.** The tree of size ``n`` is the first ``n`` journal rows in ``seq`` order
(each a leaf, see :mod:`credence.translog.leaves`): a row's leaf index is its rank. On
SQLite ``seq`` is dense from 1 (index = seq − 1); a PostgreSQL sequence skips the
numbers of rolled-back inserts, so there the rank is the index. ``log_leaves`` records
the (index, seq, leaf hash) of every row a checkpoint covered.

**Cache.** Hashing a city's journal takes a second, so each process keeps the leaf
hashes and the tree of every database it serves in memory (keyed by the engine URL) and
extends them with new rows. It caches only rows that are final (all rows on SQLite; on
PostgreSQL those a checkpoint covers, and all rows while
:func:`~credence.translog.checkpoints.checkpoint` holds its lock), and re-hashes its
last row on every use, starting over when that row changed or vanished (a reset
database, a rolled-back checkpoint). It trusts that rows it hashed do not change
afterwards: proofs served after a tampering then still reflect what was committed,
which the tampered data fails to match. Verification never uses it.
"""

from __future__ import annotations

import bisect
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence.errors import InvalidInput, NotFound
from credence.journal import JournalEntry
from credence.translog import merkle
from credence.translog.leaves import ROW_COLUMNS, leaf_hash_of, stream_rows
from credence.translog.tables import LogLeaf

# --- the in-memory tree cache ---------------------------------------------------------


@dataclass
class _Leaves:
    tree: merkle.MerkleTree = field(default_factory=merkle.MerkleTree)
    seqs: array[int] = field(default_factory=lambda: array("q"))
    lock: threading.Lock = field(default_factory=threading.Lock)


_CACHE: OrderedDict[str, _Leaves] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_DATABASES = 8
"""Databases a process keeps trees for (least recently used beyond that are dropped)."""


def clear_cache() -> None:
    """Forget every cached tree (the next call rebuilds from storage)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _cache_for(session: Session) -> _Leaves:
    url = session.get_bind().engine.url.render_as_string(hide_password=True)
    with _CACHE_LOCK:
        entry = _CACHE.get(url)
        if entry is None:
            entry = _CACHE[url] = _Leaves()
            while len(_CACHE) > _CACHE_DATABASES:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(url)
        return entry


def _extend(
    session: Session,
    tree: merkle.MerkleTree,
    seqs: array[int],
    *,
    through_seq: int | None,
) -> None:
    stmt = select(*ROW_COLUMNS).order_by(JournalEntry.seq)
    if seqs:
        stmt = stmt.where(JournalEntry.seq > seqs[-1])
    if through_seq is not None:
        stmt = stmt.where(JournalEntry.seq <= through_seq)
    for partition in stream_rows(session, stmt).partitions():
        tree.extend(leaf_hash_of(row) for row in partition)
        seqs.extend(row[0] for row in partition)


def _still_valid(session: Session, entry: _Leaves) -> bool:
    if not entry.seqs:
        return True
    last = session.execute(
        select(*ROW_COLUMNS).where(JournalEntry.seq == entry.seqs[-1])
    ).one_or_none()
    return last is not None and leaf_hash_of(last) == entry.tree.leaf(len(entry.seqs) - 1)


def committed_leaves(session: Session) -> tuple[int, int | None]:
    """How many leaves the log committed to (``log_leaves``), and the ``seq`` of the
    last one."""
    row = session.execute(
        select(LogLeaf.leaf_index, LogLeaf.seq).order_by(LogLeaf.leaf_index.desc()).limit(1)
    ).one_or_none()
    return (0, None) if row is None else (row[0] + 1, row[1])


def load_tree(session: Session, size: int | None, *, settled_seq: int | None) -> LogTree:
    """The tree of ``size`` leaves (all rows if None), caching rows up to ``settled_seq``
    (all rows if None: what :func:`~credence.translog.checkpoints.checkpoint` asks for,
    holding its lock)."""
    entry = _cache_for(session)
    with entry.lock:
        if not _still_valid(session, entry):
            entry.tree, entry.seqs = merkle.MerkleTree(), array("q")
        if settled_seq is None or not entry.seqs or entry.seqs[-1] < settled_seq:
            _extend(session, entry.tree, entry.seqs, through_seq=settled_seq)
        tree, seqs = entry.tree, entry.seqs
        cached = len(seqs)
        if size is not None and size <= cached:
            return LogTree(size=size, tree=tree, seqs=seqs)
        if settled_seq is not None:
            # Rows past the settled ones: hash them into a private copy, not the cache.
            tree, seqs = tree.copy(), array("q", seqs)
            _extend(session, tree, seqs, through_seq=None)
    available = len(seqs)
    if size is None:
        size = available
    if size > available:
        raise InvalidInput(
            f"the log has {available} entries: there is no tree of size {size}",
            code="tree_size_too_large",
        )
    return LogTree(size=size, tree=tree, seqs=seqs)


def _settled_seq(session: Session) -> int | None:
    # SQLite has one writer and no gaps: every committed row is final. On PostgreSQL only
    # rows a checkpoint covered are (see the module docstring).
    if session.get_bind().dialect.name == "sqlite":
        return None
    _, last = committed_leaves(session)
    return last if last is not None else 0


# --- the tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogTree:
    """The log as a Merkle tree of ``size`` leaves: its root, and proofs in ``O(log n)``."""

    size: int
    tree: merkle.MerkleTree
    """Holds at least ``size`` leaves (maybe more: the views share one cached tree)."""
    seqs: Sequence[int]
    """The journal ``seq`` of each leaf, by leaf index."""

    @property
    def root(self) -> bytes:
        """The RFC 9162 root of this tree."""
        return self.tree.root(self.size)

    def root_at(self, size: int) -> bytes:
        """The root of the tree's first ``size`` leaves (``size`` ≤ this tree's)."""
        if not 0 <= size <= self.size:
            raise InvalidInput(f"tree size {size} is outside 0..{self.size}")
        return self.tree.root(size)

    def seq_of(self, index: int) -> int:
        """The journal ``seq`` of leaf ``index``."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.seqs[index]

    def index_of(self, seq: int) -> int:
        """The leaf index of the journal row ``seq``; :class:`NotFound` if it is not in
        this tree."""
        index = bisect.bisect_left(self.seqs, seq, 0, self.size)
        if index == self.size or self.seqs[index] != seq:
            raise NotFound(
                f"entry {seq} is not in the log's tree of size {self.size}",
                code="entry_not_in_tree",
            )
        return index

    def leaf_hash(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.tree.leaf(index)

    def inclusion_proof(self, index: int) -> list[bytes]:
        """The RFC 9162 audit path of leaf ``index`` in this tree."""
        return self.tree.inclusion_proof(index, self.size)

    def consistency_proof(self, first: int) -> list[bytes]:
        """The RFC 9162 proof that the tree of ``first`` leaves is a prefix of this one."""
        return self.tree.consistency_proof(first, self.size)


def tree_at(session: Session, size: int | None = None) -> LogTree:
    """The log's tree over the first ``size`` journal rows (default: every row now).

    Served from the process's cache where it can be (see the module docstring).
    """
    if size is not None and size < 0:
        raise InvalidInput("a tree size is 0 or more")
    return load_tree(session, size, settled_seq=_settled_seq(session))


__all__ = [
    "LogTree",
    "clear_cache",
    "committed_leaves",
    "load_tree",
    "tree_at",
]
