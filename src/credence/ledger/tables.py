"""Ledger tables: sources and their record types, subjects, records, retractions.

Nothing here is updated or deleted in place. A retraction is a new row; every append
(subject registration, record, retraction, rulebook publication, key issue) also writes
one row to the journal (:mod:`credence.journal`), in the same transaction, in the order
it happened: the journal is what the transparency log hashes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from credence import journal
from credence.db import Base, Instant


class Source(journal.Journalled, Base):
    """An organisation registered to submit records (bank, court, tax office, ...)."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    #: "person" for a civil registry, "organisation" for a business registry, else None.
    identity_authority_for: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Instant)


class SourceRecordType(journal.Journalled, Base):
    """A record type a source is registered to submit."""

    __tablename__ = "source_record_types"

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), primary_key=True)
    record_type: Mapped[str] = mapped_column(String(64), primary_key=True)


class Subject(journal.Journalled, Base):
    """A person or organisation with a file. ``id`` is dense (batch scoring indexes
    arrays by it); ``public_id`` is the opaque handle used in URLs."""

    __tablename__ = "subjects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    identifier: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(16), nullable=True)
    registered_by: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    registered_at: Mapped[datetime] = mapped_column(Instant)


class Record(journal.Journalled, Base):
    """A fact about a subject, with its provenance. Append-only."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("source_id", "source_ref"),
        Index("ix_records_subject_received", "subject_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    # The content columns (source_ref, record_type, occurred_at, quantity, decision_ref,
    # content_hash) are NULL once the record is erased (see RecordErasure); every read
    # of records for a score, a decision or a file leaves erased rows out.
    source_ref: Mapped[str] = mapped_column(String(128), nullable=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    record_type: Mapped[str] = mapped_column(String(64), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(Instant, nullable=True)
    received_at: Mapped[datetime] = mapped_column(Instant)
    quantity: Mapped[float | None] = mapped_column(Float, nullable=True)
    decision_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: SHA-256 of the record's canonical content: a resend with other content conflicts.
    content_hash: Mapped[str] = mapped_column(String(64), nullable=True)
    #: The approved backfill run that exempted the record from the intake's volume limits
    #: (:mod:`credence.ledger.backfill`), None for every other record. No foreign key:
    #: the column was added to a table that already had rows (migration 0010).
    backfill_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Retraction(journal.Journalled, Base):
    """A source withdrawing one of its records: the record's effect ends at ``received_at``."""

    __tablename__ = "retractions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"), unique=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(Instant)


class RecordErasure(journal.Journalled, Base):
    """A record's content erased: when and why (``retention_ended``,
    ``dispute_deleted``, ``repaired``). The record keeps its id, subject, source,
    received instant and place in the log; its content and salt are gone."""

    __tablename__ = "record_erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"), unique=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    erased_at: Mapped[datetime] = mapped_column(Instant)


# --- what the log covers (see credence.journal.coverage) ---------------------------------

_sources = Source.__table__
journal.cover(
    _sources,
    journal.encoder(_sources, "id", "code", "name", "kind", "identity_authority_for", "created_at"),
)
_types = SourceRecordType.__table__
journal.cover(_types, journal.encoder(_types, "source_id", "record_type"))
_subjects = Subject.__table__
journal.cover(
    _subjects,
    journal.encoder(
        _subjects,
        "id",
        "public_id",
        "kind",
        "identifier",
        "name",
        "region",
        "registered_by",
        "registered_at",
    ),
)
#: What a record's row holds besides its key: what ingestion writes, and what the
#: journal's encoder of the table covers.
STORED_RECORD_COLUMNS = (
    "public_id",
    "source_id",
    "source_ref",
    "subject_id",
    "record_type",
    "occurred_at",
    "received_at",
    "quantity",
    "decision_ref",
    "content_hash",
    "backfill_run_id",
)
_records = Record.__table__
#: What an erasure removes from a record's row (with its salt).
ERASED_RECORD_COLUMNS = (
    "source_ref",
    "record_type",
    "occurred_at",
    "quantity",
    "decision_ref",
    "content_hash",
)
journal.cover(
    _records,
    journal.encoder(_records, "id", *STORED_RECORD_COLUMNS, added=("backfill_run_id",)),
    erasable=ERASED_RECORD_COLUMNS,
    erased_in=("record_erasures", "record_id"),
)
_erasures = RecordErasure.__table__
journal.cover(
    _erasures,
    journal.encoder(_erasures, "id", "record_id", "subject_id", "reason", "erased_at"),
)
_retractions = Retraction.__table__
journal.cover(
    _retractions,
    journal.encoder(_retractions, "id", "record_id", "source_id", "reason", "received_at"),
)
