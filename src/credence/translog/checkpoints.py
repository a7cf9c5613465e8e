"""Signed checkpoints of the log: their text, signing, storage and the signing timer.

Checkpoints are signed notes (C2SP ``tlog-checkpoint``, see
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
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Engine, Table, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import Clock
from credence.db import write_lock
from credence.errors import Conflict
from credence.journal import JournalEntry
from credence.translog import merkle
from credence.translog.keys import LogKey, LogSigner, NoteError, open_note, sign_note
from credence.translog.tables import CheckpointColumns, LogLeaf, StoredCheckpoint
from credence.translog.tree import committed_leaves, load_tree


class LogInconsistent(Conflict):
    """The stored log does not extend its own latest checkpoint: nothing is signed."""

    code = "log_inconsistent"


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
    committed, _ = committed_leaves(session)
    old_size = latest.tree_size if latest is not None else 0
    if committed != old_size:
        raise LogInconsistent(
            f"the log holds {committed} leaf hashes but its latest checkpoint covers "
            f"{old_size}: run `credence log verify`"
        )
    view = load_tree(session, None, settled_seq=None)
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
        _, last_committed = committed_leaves(session)
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
        _, last_committed = committed_leaves(session)
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
            _, last_committed = committed_leaves(session)
        if head is None or head == last_committed:
            return None
        signer = self.signer()
        with write_lock(self.engine), self.sessions.begin() as session:
            return checkpoint(session, signer=signer, at=self.clock.now())


_log = logging.getLogger("credence.translog")


__all__ = [
    "Checkpoint",
    "CheckpointTimer",
    "LogInconsistent",
    "checkpoint",
    "checkpoint_of",
    "checkpoint_text",
    "checkpoints",
    "current_checkpoint",
    "latest_checkpoint",
    "parse_checkpoint_text",
    "signed_now",
    "verify_checkpoint",
]
