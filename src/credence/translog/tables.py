"""Transparency-log tables: signed checkpoints and the log's own copy of its leaves.

* ``checkpoints``: every signed tree head the log published, oldest first.
* ``log_leaves``: the leaf hash of every journal row a checkpoint covers, written when
  the checkpoint is made. It is the log's record of what it committed to, so
  verification can name the first journal row that no longer matches (see
  :mod:`credence.translog` for the threat model).

Also an index on ``journal.subject_id`` (the journal is :mod:`credence.journal`'s): a
subject's file links each record to its log entry, which means finding the record's
journal row by subject.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant
from credence.journal.tables import JournalEntry


class CheckpointColumns:
    """The columns of a signed checkpoint, as stored:

    * ``origin``: the log's name, first line of the note (``Settings.log_origin``);
    * ``tree_size``: how many leaves (journal rows, in ``seq`` order) it covers;
    * ``root_hash``: RFC 9162 Merkle tree hash of those leaves, lowercase hex;
    * ``signed_note``: the checkpoint exactly as published (C2SP signed note);
    * ``key_id``: hex of the signing key's 4-byte signed-note key id;
    * ``created_at``: when it was signed.
    """

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(String(200))
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[str] = mapped_column(String(64))
    signed_note: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(Instant)


class StoredCheckpoint(CheckpointColumns, Base):
    """A signed tree head of this log: its root over its first ``tree_size`` leaves."""

    __tablename__ = "checkpoints"


class LogLeaf(Base):
    """One leaf the log committed to: which journal row, and the hash it had.

    ``leaf_index`` counts from 0 without gaps; ``seq`` is the journal row's sequence
    number (equal to ``leaf_index + 1`` unless the store skipped numbers, as PostgreSQL
    sequences do after a rolled-back insert); ``leaf_hash`` is the 32-byte RFC 9162
    leaf hash. No foreign key to the journal: this table must outlive a tampered one.
    """

    __tablename__ = "log_leaves"

    leaf_index: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)


class LegacyLeaf(Base):
    """A leaf of the log this one continues (the format before row digests): kept as
    its hash only, so the earlier log's checkpoints stay verifiable while the content
    its entries held is gone. Written once, by migration 0008."""

    __tablename__ = "legacy_leaves"

    leaf_index: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)


class LegacyCheckpoint(CheckpointColumns, Base):
    """A checkpoint the continued log signed."""

    __tablename__ = "legacy_checkpoints"


journal_subject_index = Index("ix_journal_subject_id", JournalEntry.subject_id)
"""Finds a subject's journal rows (the log entries of their records) without a scan."""

journal.exempt(
    StoredCheckpoint.__table__,
    "signed tree heads: each carries its own signature, checked against the log's key",
)
journal.exempt(
    LogLeaf.__table__,
    "the log's own copy of the leaf hashes it signed, checked against the journal and "
    "the checkpoints",
)

journal.exempt(
    LegacyLeaf.__table__,
    "the leaf hashes of the log this one continues, checked against its checkpoints and "
    "against the tree head the new log's first entry records",
)
journal.exempt(
    LegacyCheckpoint.__table__,
    "the signed tree heads of the log this one continues: each carries its signature",
)

__all__ = [
    "CheckpointColumns",
    "LegacyCheckpoint",
    "LegacyLeaf",
    "LogLeaf",
    "StoredCheckpoint",
    "journal_subject_index",
]
