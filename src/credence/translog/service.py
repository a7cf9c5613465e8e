"""The transparency log over the ledger's journal: checkpoints, proofs, verification.

**Leaves.** Every journal row (one per ledger step, written in the step's transaction)
is a leaf of an RFC 9162 Merkle tree. The leaf bytes are the canonical JSON of the whole
row, ``{"at":…,"data":…,"kind":…,"rows":…,"seq":…,"subject_id":…}`` with ``data`` and
``rows`` (JSON already) embedded byte for byte (:func:`leaf_data`). ``rows`` lists the
salted digest of every covered row the step wrote (see :mod:`credence.journal.rows`),
so the leaf commits to the rows themselves; binding ``seq``, ``kind``, ``at`` and
``subject_id`` too means an entry cannot be moved, re-dated or attributed to another
subject without changing its leaf. :mod:`credence.translog.verify` checks the log and
every covered row against it.

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
reordering ledger entries, or the rows they wrote, *after a checkpoint covered them*:

* whoever kept a checkpoint (a subject, a relying party, an auditor, a witness) can ask
  for an inclusion proof of an entry and a consistency proof to any later checkpoint; a
  rewritten history fails one or the other;
* :func:`credence.translog.verify.verify_log` is the log's own audit: it recomputes
  every leaf from the journal and compares it with ``log_leaves`` (naming the entries
  changed, removed, inserted or moved), recomputes every checkpoint's root from
  ``log_leaves`` (so doctoring ``log_leaves`` to match a doctored journal is caught too,
  to the range between two checkpoints), checks every checkpoint's signature and text
  (so rewriting checkpoint rows is caught unless the signing key was stolen as well),
  and checks every covered row against the digest its entry lists.

It does not protect against: an attacker holding both the database and the signing
key (who can rewrite everything consistently; only parties holding older checkpoints
notice, through a failing consistency proof: publish checkpoints widely and keep the key
off the database host); forged appends after the latest checkpoint (the log makes every
append permanent and visible, it cannot tell a legitimate append from a forged one:
that is the access policy's job); showing different checkpoints to different people
(detecting a split view needs witnesses gossiping checkpoints). Leaf hashes are public;
leaf data (digests only) and the opened rows (:func:`opened_rows`: salt and canonical
bytes) are shown only to the entry's subject and to operators.

**Cache.** Hashing a city's journal takes a second, so each process keeps the leaf
hashes and the tree of every database it serves in memory (keyed by the engine URL) and
extends them with new rows. It caches only rows that are final (all rows on SQLite; on
PostgreSQL those a checkpoint covers, and all rows while :func:`checkpoint` holds its
lock), and re-hashes its last row on every use, starting over when that row changed or
vanished (a reset database, a rolled-back checkpoint). It trusts that rows it hashed do
not change afterwards: proofs served after a tampering then still reflect what was
committed, which the tampered data fails to match. Verification never uses it.
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
from credence.journal import Covered, JournalEntry, parse_listing, registration
from credence.translog import merkle
from credence.translog.keys import LogKey, LogSigner, NoteError, open_note, sign_note
from credence.translog.tables import CheckpointColumns, LogLeaf, StoredCheckpoint

#: Rows fetched per round trip when streaming the journal.
_BATCH = 10_000


class LogInconsistent(Conflict):
    """The stored log does not extend its own latest checkpoint: nothing is signed."""

    code = "log_inconsistent"


# --- leaves ------------------------------------------------------------------------------


def leaf_data(
    *, seq: int, kind: str, subject_id: int | None, at_micros: int, data: str, rows: str
) -> bytes:
    """The leaf bytes of one journal row: canonical JSON (sorted keys, no spaces) of its
    columns, with ``data`` and ``rows`` (JSON themselves) embedded byte for byte."""
    subject = b"null" if subject_id is None else b"%d" % subject_id
    return b'{"at":%d,"data":%s,"kind":%s,"rows":%s,"seq":%d,"subject_id":%s}' % (
        at_micros,
        data.encode(),
        orjson.dumps(kind),
        rows.encode(),
        seq,
        subject,
    )


# The columns a leaf is made of; ``at`` read as stored (microseconds), not as a datetime.
ROW_COLUMNS = (
    JournalEntry.seq,
    JournalEntry.kind,
    JournalEntry.subject_id,
    type_coerce(JournalEntry.at, BigInteger).label("at"),
    JournalEntry.data,
    JournalEntry.rows,
)


def leaf_hash_of(row: Any) -> bytes:
    """The leaf hash of a journal row read as :data:`ROW_COLUMNS`."""
    seq, kind, subject_id, at, data, rows = row
    return merkle.leaf_hash(
        leaf_data(
            seq=seq, kind=kind, subject_id=subject_id, at_micros=int(at), data=data, rows=rows
        )
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
    rows: str
    """The covered rows the entry wrote, as it lists them: ``[[table, key, digest]]``."""
    leaf_data: bytes
    leaf_hash: bytes
    leaf_index: int | None
    """Its index in the log, once a checkpoint covers it; ``None`` before."""


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
    for partition in session.execute(stmt.execution_options(yield_per=_BATCH)).partitions():
        tree.extend(leaf_hash_of(row) for row in partition)
        seqs.extend(row[0] for row in partition)


def _still_valid(session: Session, entry: _Leaves) -> bool:
    if not entry.seqs:
        return True
    last = session.execute(
        select(*ROW_COLUMNS).where(JournalEntry.seq == entry.seqs[-1])
    ).one_or_none()
    return last is not None and leaf_hash_of(last) == entry.tree.leaf(len(entry.seqs) - 1)


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


def checkpoint_of(row: CheckpointColumns) -> Checkpoint:
    """A stored checkpoint row (of this log or of the one it continues) as published."""
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
    return None if row is None else checkpoint_of(row)


def checkpoints(session: Session) -> list[Checkpoint]:
    """Every checkpoint, oldest first."""
    rows = session.scalars(select(StoredCheckpoint).order_by(StoredCheckpoint.id)).all()
    return [checkpoint_of(row) for row in rows]


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
    return checkpoint_of(row)


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


def signed_now(
    engine: Engine, sessions: sessionmaker[Session], *, signer: LogSigner, at: datetime
) -> Checkpoint:
    """The latest checkpoint if ``signer`` signed it and it covers every entry; else a
    new one, signed in a transaction of its own under this process's write lock (as
    every writer takes it), so that a reader asking for the log's head never holds the
    store's write lock outside it, nor until its own request ends."""
    with sessions() as session:
        latest = latest_checkpoint(session)
        head = session.scalar(select(func.max(JournalEntry.seq)))
        _, last_committed = _committed(session)
    if latest is not None and _signed_by(latest, signer) and head == last_committed:
        return latest
    with write_lock(engine), sessions.begin() as session:
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
    row = session.execute(select(*ROW_COLUMNS).where(JournalEntry.seq == seq)).one_or_none()
    if row is None:
        raise NotFound(f"the log has no entry {seq}", code="unknown_entry")
    _, kind, subject_id, at, data, rows = row
    bytes_ = leaf_data(
        seq=seq, kind=kind, subject_id=subject_id, at_micros=int(at), data=data, rows=rows
    )
    index = session.scalar(select(LogLeaf.leaf_index).where(LogLeaf.seq == seq))
    return LogEntry(
        seq=seq,
        kind=kind,
        subject_id=subject_id,
        at=from_micros(int(at)),
        data=data,
        rows=rows,
        leaf_data=bytes_,
        leaf_hash=merkle.leaf_hash(bytes_),
        leaf_index=index,
    )


@dataclass(frozen=True)
class OpenedRow:
    """A row an entry wrote, opened: its canonical bytes and salt, from which anyone can
    recompute the digest the entry lists (shown only to whom may read the entry)."""

    table: str
    key: Any
    digest: str
    salt: str
    canonical: str


def opened_rows(session: Session, entry: LogEntry) -> list[OpenedRow]:
    """The rows ``entry`` lists that still hold what it wrote (not rewritten by a later
    entry, not erased), opened."""
    opened = []
    for table_name, key, digest in parse_listing(entry.rows):
        registered = registration(table_name)
        if not isinstance(registered, Covered):
            continue
        table = JournalEntry.metadata.tables[table_name]
        columns = list(table.primary_key.columns)
        keys = key if isinstance(key, tuple) else (key,)
        if len(keys) != len(columns):
            continue
        row = (
            session.execute(
                select(table).where(*(c == k for c, k in zip(columns, keys, strict=True)))
            )
            .mappings()
            .one_or_none()
        )
        if row is None or row["seq"] != entry.seq or row["salt"] is None:
            continue
        opened.append(
            OpenedRow(
                table=table_name,
                key=key,
                digest=digest,
                salt=row["salt"],
                canonical=registered.encoder(row).decode(),
            )
        )
    return opened


__all__ = [
    "Checkpoint",
    "CheckpointTimer",
    "ConsistencyProof",
    "InclusionProof",
    "LogEntry",
    "LogInconsistent",
    "LogTree",
    "OpenedRow",
    "checkpoint",
    "checkpoint_of",
    "checkpoint_text",
    "checkpoints",
    "clear_cache",
    "current_checkpoint",
    "entry",
    "latest_checkpoint",
    "leaf_data",
    "leaf_hash_of",
    "opened_rows",
    "parse_checkpoint_text",
    "prove_consistency",
    "prove_inclusion",
    "signed_now",
    "tree_at",
    "verify_checkpoint",
]
