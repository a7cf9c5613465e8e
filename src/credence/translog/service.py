"""The transparency log over the ledger's journal: checkpoints, proofs, verification.

**Leaves.** Every journal row (one per ledger append, written in the append's
transaction) is a leaf of an RFC 9162 Merkle tree. The leaf bytes are the canonical JSON
of the whole row, ``{"at":…,"data":…,"kind":…,"seq":…,"subject_id":…}`` with ``data``
(already canonical JSON) embedded byte for byte (:func:`leaf_data`): binding ``seq``,
``kind``, ``at`` and ``subject_id`` as well as ``data`` means a row cannot be moved,
re-dated or attributed to another subject without changing its leaf.

**Leaf index.** The tree of size ``n`` is the first ``n`` journal rows in ``seq`` order:
a row's leaf index is its rank. On SQLite ``seq`` is dense from 1 (index = seq − 1); a
PostgreSQL sequence skips the numbers of rolled-back inserts, so there the rank is the
index. ``log_leaves`` records the (index, seq, leaf hash) of every row a checkpoint
covered.

**Checkpoints** are signed notes (C2SP ``tlog-checkpoint``, see
:mod:`credence.translog.keys`)::

    <origin>
    <tree size>
    <base64 root hash>

    — <origin> <base64(key id || Ed25519 signature)>

:func:`checkpoint` refuses to sign a tree that is not an extension of the latest stored
checkpoint (it verifies a consistency proof first). On PostgreSQL a row can commit
after one with a higher ``seq``; so that a checkpoint covers only final rows,
:func:`checkpoint` takes ``journal`` in SHARE mode (waiting for in-flight appends and
holding new ones for the few milliseconds it takes). SQLite's single writer gives the
same guarantee.

**Threat model.** The log protects against anyone with write access to the database (an
operator, a database administrator, an intruder) changing, removing, inserting or
reordering ledger entries *after a checkpoint covered them*:

* whoever kept a checkpoint (a subject, a relying party, an auditor, a witness) can ask
  for an inclusion proof of an entry and a consistency proof to any later checkpoint; a
  rewritten history fails one or the other;
* :func:`verify_log` is the log's own audit: it recomputes every leaf from the journal
  and compares it with ``log_leaves`` (naming the first ``seq`` changed, removed,
  inserted or moved), recomputes every checkpoint's root from ``log_leaves`` (so
  doctoring ``log_leaves`` to match a doctored journal is caught too, to the range
  between two checkpoints), and checks every checkpoint's signature and text (so
  rewriting checkpoint rows is caught unless the signing key was stolen as well).

It does not protect against: an attacker holding both the database and the signing
key (who can rewrite everything consistently; only parties holding older checkpoints
notice, through a failing consistency proof: publish checkpoints widely and keep the key
off the database host); forged appends after the latest checkpoint (the log makes every
append permanent and visible, it cannot tell a legitimate append from a forged one:
that is the access policy's job); showing different checkpoints to different people
(detecting a split view needs witnesses gossiping checkpoints). Leaf hashes are public;
leaf data is personal and shown only to its subject and to operators.

**Cache.** Hashing a city's journal takes a second, so each process keeps the leaf
hashes and the tree of every database it serves in memory (keyed by the engine URL) and
extends them with new rows. It caches only rows that are final (all rows on SQLite; on
PostgreSQL those a checkpoint covers, and all rows while :func:`checkpoint` holds its
lock), and re-hashes its last row on every use, starting over when that row changed or
vanished (a reset database, a rolled-back checkpoint). It trusts that rows it hashed do
not change afterwards: proofs served after a tampering then still reflect what was
committed, which the tampered data fails to match. :func:`verify_log` never uses it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import logging
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import BigInteger, Engine, Executable, Table, func, select, text, type_coerce
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import Clock, from_micros
from credence.db import write_lock
from credence.errors import Conflict, InvalidInput, NotFound
from credence.journal import EventKind, JournalEntry, canonical, record_data
from credence.ledger.tables import Record, Source, Subject
from credence.rulebook.loader import content_hash
from credence.rulebook.tables import PublishedRulebook
from credence.translog import merkle
from credence.translog.keys import LogKey, LogSigner, NoteError, open_note, sign_note
from credence.translog.tables import LogLeaf, StoredCheckpoint

#: Rows fetched per round trip when streaming the journal.
_BATCH = 10_000


class LogInconsistent(Conflict):
    """The stored log does not extend its own latest checkpoint: nothing is signed."""

    code = "log_inconsistent"


# --- leaves ------------------------------------------------------------------------------


def leaf_data(*, seq: int, kind: str, subject_id: int | None, at_micros: int, data: str) -> bytes:
    """The leaf bytes of one journal row: canonical JSON (sorted keys, no spaces) of its
    columns, with ``data`` (canonical JSON itself) embedded byte for byte."""
    subject = b"null" if subject_id is None else b"%d" % subject_id
    return b'{"at":%d,"data":%s,"kind":%s,"seq":%d,"subject_id":%s}' % (
        at_micros,
        data.encode(),
        orjson.dumps(kind),
        seq,
        subject,
    )


# The columns a leaf is made of; ``at`` read as stored (microseconds), not as a datetime.
_ROW_COLUMNS = (
    JournalEntry.seq,
    JournalEntry.kind,
    JournalEntry.subject_id,
    type_coerce(JournalEntry.at, BigInteger).label("at"),
    JournalEntry.data,
)


def _leaf_hash_of(row: Any) -> bytes:
    seq, kind, subject_id, at, data = row
    return merkle.leaf_hash(
        leaf_data(seq=seq, kind=kind, subject_id=subject_id, at_micros=int(at), data=data)
    )


def _rows(session: Session, stmt: Executable) -> Iterable[Any]:
    return session.execute(stmt.execution_options(yield_per=_BATCH))


# --- domain objects ----------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head as stored and published."""

    id: int
    origin: str
    tree_size: int
    root_hash: bytes
    signed_note: str
    key_id: str
    """Hex of the signing key's 4-byte signed-note key id."""
    created_at: datetime


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


@dataclass(frozen=True)
class LogEntry:
    """One journal row as a log leaf."""

    seq: int
    kind: str
    subject_id: int | None
    at: datetime
    data: str
    leaf_data: bytes
    leaf_hash: bytes
    leaf_index: int | None
    """Its index in the log, once a checkpoint covers it; ``None`` before."""


@dataclass(frozen=True)
class Problem:
    """One thing :func:`verify_log` found wrong; ``seq`` is the entry it concerns."""

    kind: str
    """``changed``, ``removed``, ``inserted``, ``log_tampered`` or ``checkpoint``."""
    message: str
    seq: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_log` checked and found."""

    entries: int
    """Journal rows read."""
    committed: int
    """Leaves the log committed to (covered by a checkpoint)."""
    checkpoints: int
    signatures_checked: bool
    problems: tuple[Problem, ...] = field(default=())
    latest_checkpoint: int | None = None
    """The id of the newest checkpoint, if any: entries after it are not yet signed."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def pending(self) -> int:
        """Entries appended after the latest checkpoint (checked, but not yet signed)."""
        return max(self.entries - self.committed, 0)

    @property
    def first_bad_seq(self) -> int | None:
        """The lowest journal ``seq`` a problem names, if any does."""
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None


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
    stmt = select(*_ROW_COLUMNS).order_by(JournalEntry.seq)
    if seqs:
        stmt = stmt.where(JournalEntry.seq > seqs[-1])
    if through_seq is not None:
        stmt = stmt.where(JournalEntry.seq <= through_seq)
    for partition in session.execute(stmt.execution_options(yield_per=_BATCH)).partitions():
        tree.extend(_leaf_hash_of(row) for row in partition)
        seqs.extend(row[0] for row in partition)


def _still_valid(session: Session, entry: _Leaves) -> bool:
    if not entry.seqs:
        return True
    last = session.execute(
        select(*_ROW_COLUMNS).where(JournalEntry.seq == entry.seqs[-1])
    ).one_or_none()
    return last is not None and _leaf_hash_of(last) == entry.tree.leaf(len(entry.seqs) - 1)


def _committed(session: Session) -> tuple[int, int | None]:
    """How many leaves the log committed to, and the ``seq`` of the last one."""
    row = session.execute(
        select(LogLeaf.leaf_index, LogLeaf.seq).order_by(LogLeaf.leaf_index.desc()).limit(1)
    ).one_or_none()
    return (0, None) if row is None else (row[0] + 1, row[1])


def _load(session: Session, size: int | None, *, settled_seq: int | None) -> LogTree:
    """The tree of ``size`` leaves (all rows if None), caching rows up to ``settled_seq``
    (all rows if None)."""
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
    _, last = _committed(session)
    return last if last is not None else 0


# --- trees and proofs ----------------------------------------------------------------


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
    return _load(session, size, settled_seq=_settled_seq(session))


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


# --- checkpoints -----------------------------------------------------------------------


def checkpoint_text(origin: str, size: int, root_hash: bytes) -> str:
    """The body of a checkpoint note: origin, size and base64 root, one per line."""
    return f"{origin}\n{size}\n{base64.b64encode(root_hash).decode()}\n"


def parse_checkpoint_text(text: str) -> tuple[str, int, bytes]:
    """``(origin, size, root hash)`` of a checkpoint body; extension lines are ignored."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint has an origin, a size and a root hash, one per line")
    origin, size_text, root_text = lines[:3]
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise NoteError(f"checkpoint size {size_text!r} is not a decimal number")
    try:
        root_hash = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("the checkpoint's root hash is not valid base64") from None
    if len(root_hash) != merkle.HASH_SIZE:
        raise NoteError(f"the checkpoint's root hash has {len(root_hash)} bytes, not 32")
    return origin, int(size_text), root_hash


def verify_checkpoint(note: str, key: LogKey) -> tuple[str, int, bytes]:
    """``(origin, size, root hash)`` of a signed checkpoint ``key`` signed, else
    :class:`~credence.translog.keys.NoteError`."""
    origin, size, root_hash = parse_checkpoint_text(open_note(note, key))
    if origin != key.name:
        raise NoteError(f"the checkpoint's origin {origin!r} is not the key's {key.name!r}")
    return origin, size, root_hash


def _checkpoint_of(row: StoredCheckpoint) -> Checkpoint:
    return Checkpoint(
        id=row.id,
        origin=row.origin,
        tree_size=row.tree_size,
        root_hash=bytes.fromhex(row.root_hash),
        signed_note=row.signed_note,
        key_id=row.key_id,
        created_at=row.created_at,
    )


def latest_checkpoint(session: Session) -> Checkpoint | None:
    """The checkpoint signed last, if any."""
    row = session.scalar(select(StoredCheckpoint).order_by(StoredCheckpoint.id.desc()).limit(1))
    return None if row is None else _checkpoint_of(row)


def checkpoints(session: Session) -> list[Checkpoint]:
    """Every checkpoint, oldest first."""
    rows = session.scalars(select(StoredCheckpoint).order_by(StoredCheckpoint.id)).all()
    return [_checkpoint_of(row) for row in rows]


def _lock_log(session: Session) -> None:
    """Serialise checkpoints and make every journal row visible now final."""
    if session.get_bind().dialect.name == "postgresql":
        # EXCLUSIVE on log_leaves: one checkpointer at a time (readers still read).
        # SHARE on journal: waits for transactions appending to it and holds new appends
        # until this transaction ends, so no row can later commit below the rows seen.
        session.execute(text("LOCK TABLE log_leaves IN EXCLUSIVE MODE"))
        session.execute(text("LOCK TABLE journal IN SHARE MODE"))
    else:
        # SQLite: a write as the first statement takes the database's write lock before
        # anything is read, so the rows read are those a concurrent writer cannot change.
        session.execute(text("DELETE FROM log_leaves WHERE 0 = 1"))


def _signed_by(cp: Checkpoint, signer: LogSigner) -> bool:
    return cp.key_id == signer.public.key_id.hex() and cp.origin == signer.name


def checkpoint(session: Session, *, signer: LogSigner, at: datetime) -> Checkpoint:
    """Sign and store a checkpoint of every journal row now, in the caller's transaction.

    Returns the latest checkpoint instead when it already covers every row (and was
    signed by ``signer``). Raises :class:`LogInconsistent`, signing nothing, when the
    journal is not an extension of what the latest checkpoint committed to.
    """
    _lock_log(session)
    latest = latest_checkpoint(session)
    committed, _ = _committed(session)
    old_size = latest.tree_size if latest is not None else 0
    if committed != old_size:
        raise LogInconsistent(
            f"the log holds {committed} leaf hashes but its latest checkpoint covers "
            f"{old_size}: run `credence log verify`"
        )
    view = _load(session, None, settled_seq=None)
    size, root_hash = view.size, view.root
    if latest is not None:
        if old_size == 0:
            # RFC 9162 has no consistency proof from the empty tree: every tree extends
            # it, and its root is fixed, so that root is what is checked.
            consistent = latest.root_hash == merkle.EMPTY_ROOT
        else:
            consistent = size >= old_size and merkle.verify_consistency(
                old_size, size, latest.root_hash, root_hash, view.consistency_proof(old_size)
            )
        if not consistent:
            raise LogInconsistent(
                f"the journal no longer extends checkpoint {latest.id} (size {old_size}): "
                "entries it covered were changed or removed; nothing was signed. Run "
                "`credence log verify` to find them."
            )
        if size == old_size and _signed_by(latest, signer):
            return latest
    row = StoredCheckpoint(
        origin=signer.name,
        tree_size=size,
        root_hash=root_hash.hex(),
        signed_note=sign_note(checkpoint_text(signer.name, size, root_hash), signer),
        key_id=signer.public.key_id.hex(),
        created_at=at,
    )
    session.add(row)
    if size > committed:
        # Core insert on the table: the ORM's bulk path costs ~20 µs a row, this ~2.
        session.execute(
            cast(Table, LogLeaf.__table__).insert(),
            [
                {"leaf_index": i, "seq": view.seq_of(i), "leaf_hash": view.leaf_hash(i)}
                for i in range(committed, size)
            ],
        )
    session.flush()
    return _checkpoint_of(row)


def current_checkpoint(session: Session, *, signer: LogSigner, at: datetime) -> Checkpoint:
    """The latest checkpoint if it covers every journal row and ``signer`` signed it;
    otherwise a new one (:func:`checkpoint`)."""
    latest = latest_checkpoint(session)
    if latest is not None and _signed_by(latest, signer):
        head = session.scalar(select(func.max(JournalEntry.seq)))
        _, last_committed = _committed(session)
        if head == last_committed:
            return latest
    return checkpoint(session, signer=signer, at=at)


class CheckpointTimer:
    """Signs a checkpoint every ``every`` seconds while the journal grows: a thread of
    its own, with its own sessions, taking this process's SQLite write lock like every
    writer, so requests never wait on it beyond the few milliseconds of the signing.
    A round that fails is logged (its error class and code only: no entry's content) and
    retried at the next tick; nothing is signed while no entry arrives."""

    def __init__(
        self,
        *,
        engine: Engine,
        sessions: sessionmaker[Session],
        clock: Clock,
        signer: Callable[[], LogSigner],
        every: float,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.clock = clock
        self.signer = signer
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.every > 0 and self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="credence-checkpoints", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.tick()
            except Exception as exc:
                code = getattr(exc, "code", "")
                _log.warning(
                    "signing a checkpoint failed (%s%s); retrying in %s s",
                    type(exc).__name__,
                    f": {code}" if code else "",
                    self.every,
                )

    def tick(self) -> Checkpoint | None:
        """Sign a checkpoint if entries arrived since the latest one; the new
        checkpoint, or None when there was nothing to sign."""
        with self.sessions() as session:
            head = session.scalar(select(func.max(JournalEntry.seq)))
            _, last_committed = _committed(session)
        if head is None or head == last_committed:
            return None
        signer = self.signer()
        with write_lock(self.engine), self.sessions.begin() as session:
            return checkpoint(session, signer=signer, at=self.clock.now())


_log = logging.getLogger("credence.translog")


# --- entries ---------------------------------------------------------------------------


def entry(session: Session, seq: int) -> LogEntry:
    """Journal row ``seq`` as a log leaf; :class:`NotFound` if there is none."""
    row = session.execute(select(*_ROW_COLUMNS).where(JournalEntry.seq == seq)).one_or_none()
    if row is None:
        raise NotFound(f"the log has no entry {seq}", code="unknown_entry")
    _, kind, subject_id, at, data = row
    bytes_ = leaf_data(seq=seq, kind=kind, subject_id=subject_id, at_micros=int(at), data=data)
    index = session.scalar(select(LogLeaf.leaf_index).where(LogLeaf.seq == seq))
    return LogEntry(
        seq=seq,
        kind=kind,
        subject_id=subject_id,
        at=from_micros(int(at)),
        data=data,
        leaf_data=bytes_,
        leaf_hash=merkle.leaf_hash(bytes_),
        leaf_index=index,
    )


def record_entry_seqs(session: Session, subject_id: int) -> dict[str, int]:
    """The journal ``seq`` of every record on a subject's file, by record public id (for
    linking each record of the file to its inclusion proof). One indexed query."""
    rows = session.execute(
        select(JournalEntry.seq, JournalEntry.data).where(
            JournalEntry.subject_id == subject_id, JournalEntry.kind == EventKind.RECORD.value
        )
    )
    found: dict[str, int] = {}
    for seq, data in rows:
        record = orjson.loads(data).get("record")
        if isinstance(record, str):
            found.setdefault(record, seq)
    return found


def record_entry_seq(session: Session, record_public_id: str) -> int:
    """The journal ``seq`` of the entry that appended record ``record_public_id``."""
    subject_id = session.scalar(
        select(Record.subject_id).where(Record.public_id == record_public_id)
    )
    if subject_id is None:
        raise NotFound(f"no record {record_public_id!r}", code="unknown_record")
    seq = record_entry_seqs(session, subject_id).get(record_public_id)
    if seq is None:
        raise NotFound(
            f"record {record_public_id!r} has no journal entry", code="record_not_in_log"
        )
    return seq


# --- verification ----------------------------------------------------------------------


def verify_log(
    session: Session,
    *,
    key: LogKey | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Recompute the log from storage and check it against itself and its checkpoints.

    Reads every journal row (never the cache) and every ``log_leaves`` row, and reports
    each journal row whose leaf differs from the one committed (``changed``), committed
    rows that are gone (``removed``), rows that are not in the log but sit before
    committed ones (``inserted``; a reorder shows as ``changed``), ``log_leaves`` rows that
    do not reproduce a checkpoint's root (``log_tampered``), and checkpoints whose text or
    signature (with ``key``) does not hold (``checkpoint``). ``progress(done, total)`` is
    called as journal rows are read.
    """
    problems: list[Problem] = []
    leaf_seqs: array[int] = array("q")
    leaf_hashes: list[bytes] = []
    leaves = select(LogLeaf.leaf_index, LogLeaf.seq, LogLeaf.leaf_hash).order_by(LogLeaf.leaf_index)
    for expected, (index, seq, digest) in enumerate(_rows(session, leaves)):
        in_order = index == expected and (not leaf_seqs or seq > leaf_seqs[-1])
        if not in_order and not any(pr.kind == "log_tampered" for pr in problems):
            # One report is enough: after a gap every later leaf is out of place too.
            problems.append(
                Problem(
                    "log_tampered",
                    f"the log's leaf table is out of order at leaf {index} (entry {seq})",
                    seq,
                )
            )
        leaf_seqs.append(seq)
        leaf_hashes.append(bytes(digest))

    total = session.scalar(select(func.count()).select_from(JournalEntry)) or 0
    committed = len(leaf_seqs)
    unsigned = _Unsigned(
        dense=session.get_bind().dialect.name == "sqlite",
        after=leaf_seqs[-1] if leaf_seqs else 0,
    )
    read = 0
    p = 0
    for row in _rows(session, select(*_ROW_COLUMNS).order_by(JournalEntry.seq)):
        seq = row[0]
        while p < committed and leaf_seqs[p] < seq:
            problems.append(_removed(leaf_seqs[p], p))
            p += 1
        if p < committed and leaf_seqs[p] == seq:
            if _leaf_hash_of(row) != leaf_hashes[p]:
                problems.append(
                    Problem(
                        "changed",
                        f"entry {seq} (leaf {p}) differs from what the log committed to",
                        seq,
                    )
                )
            p += 1
        elif p < committed:
            problems.append(
                Problem(
                    "inserted",
                    f"entry {seq} is not in the log but comes before committed entry "
                    f"{leaf_seqs[p]}",
                    seq,
                )
            )
        else:
            unsigned.check(row)
        read += 1
        if progress is not None and (read % _BATCH == 0 or read == total):
            progress(read, total)
    while p < committed:
        problems.append(_removed(leaf_seqs[p], p))
        p += 1

    stored = checkpoints(session)
    problems += _check_checkpoints(stored, leaf_seqs, leaf_hashes, key)
    signed_ok = not problems
    problems += unsigned.problems
    problems += _check_unsigned_records(session, unsigned, orphans=signed_ok)
    problems += _check_rulebooks(session)
    problems.sort(key=lambda pr: (pr.seq is None, pr.seq if pr.seq is not None else 0))
    return VerifyReport(
        entries=read,
        committed=committed,
        checkpoints=len(stored),
        signatures_checked=key is not None,
        problems=tuple(problems),
        latest_checkpoint=stored[-1].id if stored else None,
    )


class _Unsigned:
    """Checks of the entries after the last checkpoint, which no leaf commits to yet.

    Each must be a known kind with canonical JSON data; on SQLite (``seq`` dense) none
    may be missing between two; and each record entry must agree with the row it
    appended (:func:`_check_unsigned_records`), so that an entry edited or removed
    before it was signed does not pass unnoticed. Memory grows with the unsigned
    entries only (a checkpoint is signed at least every minute while entries arrive).
    """

    def __init__(self, *, dense: bool, after: int) -> None:
        self.dense = dense
        self.after = after
        self.last = after
        self.problems: list[Problem] = []
        #: (seq, payload) of every unsigned record entry, by record public id.
        self.records: dict[str, tuple[int, dict[str, Any]]] = {}

    def check(self, row: Any) -> None:
        seq, kind, _, _, data = row
        if self.dense and seq != self.last + 1:
            missing = (
                f"entry {self.last + 1} (not yet signed) is"
                if seq == self.last + 2
                else f"entries {self.last + 1} to {seq - 1} (not yet signed) are"
            )
            self.problems.append(Problem("removed", f"{missing} gone", self.last + 1))
        self.last = seq
        if kind not in _KINDS:
            self.problems.append(Problem("changed", f"entry {seq} has an unknown kind", seq))
            return
        try:
            payload = orjson.loads(data)
            well_formed = isinstance(payload, dict) and canonical(payload) == data
        except orjson.JSONDecodeError:
            well_formed = False
        if not well_formed:
            self.problems.append(
                Problem("changed", f"entry {seq} (not yet signed) is not canonical JSON", seq)
            )
            return
        if kind == EventKind.RECORD.value and isinstance(payload.get("record"), str):
            self.records[payload["record"]] = (seq, payload)


_KINDS = frozenset(kind.value for kind in EventKind)
_INSTANTS = ("occurred_at", "received_at")


def _same_record(payload: dict[str, Any], stored: dict[str, Any]) -> bool:
    def norm(d: dict[str, Any]) -> dict[str, Any]:
        out = dict(d)
        for name in _INSTANTS:
            if isinstance(out.get(name), str):
                out[name] = datetime.fromisoformat(out[name])
        return out

    try:
        return norm(payload) == norm(stored)
    except ValueError:
        return False


def _record_rows(session: Session, where: Any) -> Iterable[Any]:
    return session.execute(
        select(
            Record.id,
            Record.public_id,
            Source.code,
            Record.source_ref,
            Subject.public_id,
            Record.subject_id,
            Record.record_type,
            Record.occurred_at,
            Record.received_at,
            Record.quantity,
            Record.decision_ref,
        )
        .join(Source, Source.id == Record.source_id)
        .join(Subject, Subject.id == Record.subject_id)
        .where(where)
        .order_by(Record.id)
    )


def _check_unsigned_records(
    session: Session, unsigned: _Unsigned, *, orphans: bool
) -> list[Problem]:
    """Each unsigned record entry against its row in ``records``, and (with
    ``orphans``) each row appended since the last signed record entry against an entry:
    an entry edited or deleted before a checkpoint signed it fails here. ``orphans`` is
    off when signed entries were already found changed or removed: which rows came after
    the checkpoint is then unknown, and the first bad entry is named already. Messages
    name the record's opaque id, never its content."""
    problems: list[Problem] = []
    found: set[str] = set()
    ids = list(unsigned.records)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for row in _record_rows(session, Record.public_id.in_(chunk)):
            found.add(row[1])
            seq, payload = unsigned.records[row[1]]
            stored = orjson.loads(
                canonical(
                    record_data(
                        record_id=row[1],
                        source=row[2],
                        source_ref=row[3],
                        subject_id=row[4],
                        record_type=row[6],
                        occurred_at=row[7],
                        received_at=row[8],
                        quantity=row[9],
                        decision_ref=row[10],
                    )
                )
            )
            if not _same_record(payload, stored):
                problems.append(
                    Problem(
                        "changed",
                        f"entry {seq} (not yet signed) differs from the row it appended: "
                        f"table records, record {row[1]}",
                        seq,
                    )
                )
    for public_id in ids:
        if public_id not in found:
            seq = unsigned.records[public_id][0]
            problems.append(
                Problem(
                    "changed",
                    f"entry {seq} (not yet signed) names a record that is not in table "
                    f"records ({public_id})",
                    seq,
                )
            )
    if not orphans:
        return problems
    # Rows appended after the last record entry a checkpoint signed must each have an
    # unsigned entry (ids and entries are written in the same transaction, in order).
    last_signed = session.scalar(
        select(JournalEntry.data)
        .where(JournalEntry.kind == EventKind.RECORD.value, JournalEntry.seq <= unsigned.after)
        .order_by(JournalEntry.seq.desc())
        .limit(1)
    )
    floor: int | None = 0
    if last_signed is not None:
        named = orjson.loads(last_signed).get("record")
        floor = session.scalar(select(Record.id).where(Record.public_id == named)) or 0
    for row in _record_rows(session, Record.id > (floor or 0)):
        if row[1] in unsigned.records:
            continue
        # Rare (concurrent appends interleave ids and entries, or a signed entry was
        # tampered with, which the leaves report): is the record named by any entry?
        named = b'"record":' + orjson.dumps(row[1])
        if (
            session.scalar(
                select(JournalEntry.seq).where(JournalEntry.data.contains(named.decode())).limit(1)
            )
            is None
        ):
            problems.append(
                Problem(
                    "removed",
                    f"table records, record {row[1]}: no log entry appended it (its entry "
                    "was removed before a checkpoint signed it, or the row was inserted)",
                )
            )
    return problems


def _check_rulebooks(session: Session) -> list[Problem]:
    """Every stored edition's text against its recorded SHA-256, and that hash against
    the ``rulebook_published`` entry that published it."""
    published: dict[str, tuple[int | None, Any]] = {}
    entries = select(JournalEntry.seq, JournalEntry.data).where(
        JournalEntry.kind == EventKind.RULEBOOK_PUBLISHED.value
    )
    for entry_seq, data in session.execute(entries):
        payload = orjson.loads(data)
        if isinstance(payload, dict) and isinstance(payload.get("version"), str):
            published.setdefault(payload["version"], (entry_seq, payload.get("content_hash")))
    problems: list[Problem] = []
    rows = select(
        PublishedRulebook.id,
        PublishedRulebook.version,
        PublishedRulebook.content_hash,
        PublishedRulebook.text,
    ).order_by(PublishedRulebook.id)
    for row_id, version, digest, body in session.execute(rows):
        seq, logged = published.get(version, (None, None))
        by = f"published by entry {seq}" if seq is not None else "no log entry published it"
        where = f"table rulebooks, row {row_id}: rulebook {version} ({by})"
        if content_hash(body) != digest:
            problems.append(
                Problem(
                    "rulebook",
                    f"{where}: its text does not hash to its recorded SHA-256 (edited after "
                    "publication); it does not load",
                    seq,
                )
            )
        elif seq is not None and logged != digest:
            problems.append(
                Problem("rulebook", f"{where}: its hash differs from the one the entry logged", seq)
            )
    return problems


def _removed(seq: int, index: int) -> Problem:
    return Problem("removed", f"entry {seq} (leaf {index}) was committed but is gone", seq)


def _check_checkpoints(
    stored: Sequence[Checkpoint],
    leaf_seqs: Sequence[int],
    leaf_hashes: Sequence[bytes],
    key: LogKey | None,
) -> list[Problem]:
    problems: list[Problem] = []
    tree = merkle.MerkleTree(leaf_hashes)
    committed = len(leaf_hashes)
    good = 0  # leaves known good: the largest size whose checkpoint root matched
    previous = 0
    for cp in stored:
        label = f"checkpoint {cp.id} (size {cp.tree_size})"
        problems += _check_note(cp, label, key)
        if cp.tree_size < previous:
            problems.append(
                Problem("checkpoint", f"{label} is smaller than the one before ({previous})")
            )
        previous = max(previous, cp.tree_size)
        if cp.tree_size > committed:
            after = leaf_seqs[-1] if leaf_seqs else 0
            problems.append(
                Problem(
                    "log_tampered",
                    f"{label} covers more leaves than the log holds ({committed}): "
                    f"committed entries after {after} were removed",
                    after + 1,
                )
            )
            continue
        if tree.root(cp.tree_size) == cp.root_hash:
            good = max(good, cp.tree_size)
            continue
        if cp.tree_size == 0:
            problems.append(Problem("checkpoint", f"{label}: not the root of the empty tree"))
            continue
        start = min(good, cp.tree_size - 1)
        problems.append(
            Problem(
                "log_tampered",
                f"the log's leaf hashes no longer give the root of {label}: a committed "
                f"entry between {leaf_seqs[start]} and {leaf_seqs[cp.tree_size - 1]} was "
                "altered in the journal and in the log alike",
                leaf_seqs[start],
            )
        )
    return problems


def _check_note(cp: Checkpoint, label: str, key: LogKey | None) -> list[Problem]:
    try:
        if key is not None:
            origin, size, root_hash = verify_checkpoint(cp.signed_note, key)
        else:
            body, _, _ = cp.signed_note.rpartition("\n\n")
            origin, size, root_hash = parse_checkpoint_text(body + "\n")
    except NoteError as exc:
        return [Problem("checkpoint", f"{label}: {exc.message}")]
    if (origin, size, root_hash) != (cp.origin, cp.tree_size, cp.root_hash):
        return [Problem("checkpoint", f"{label}: its stored fields differ from its signed text")]
    return []


__all__ = [
    "Checkpoint",
    "CheckpointTimer",
    "ConsistencyProof",
    "InclusionProof",
    "LogEntry",
    "LogInconsistent",
    "LogTree",
    "Problem",
    "VerifyReport",
    "checkpoint",
    "checkpoint_text",
    "checkpoints",
    "clear_cache",
    "current_checkpoint",
    "entry",
    "latest_checkpoint",
    "leaf_data",
    "parse_checkpoint_text",
    "prove_consistency",
    "prove_inclusion",
    "record_entry_seq",
    "record_entry_seqs",
    "tree_at",
    "verify_checkpoint",
    "verify_log",
]
