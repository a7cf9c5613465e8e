"""Ledger tables: sources, their record types and cadences, subjects, records,
retractions.

Nothing here is updated or deleted in place. A retraction is a new row; every append
(subject registration, record, retraction, rulebook publication, key issue) also writes
one row to the journal (:mod:`credence.journal`), in the same transaction, in the order
it happened: the journal is what the transparency log hashes.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Date,
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


class SourceCadence(journal.Journalled, Base):
    """A source's word on how often it reports a record type it is registered for: at
    least once every ``cadence_days`` days, late by at most ``grace_days`` more, from
    ``declared_at`` until a later declaration for the same source and type. Never
    changed in place: a change is a new row (:mod:`credence.ledger.freshness`), so the
    declaration in force at any past instant can be read again."""

    __tablename__ = "source_cadences"
    __table_args__ = (
        Index("ix_source_cadences_source_id", "source_id", "record_type", "declared_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    record_type: Mapped[str] = mapped_column(String(64))
    cadence_days: Mapped[int] = mapped_column(Integer)
    grace_days: Mapped[int] = mapped_column(Integer)
    declared_at: Mapped[datetime] = mapped_column(Instant)


class Subject(journal.Journalled, Base):
    """A person or organisation with a file. ``id`` is dense (batch scoring indexes
    arrays by it); ``public_id`` is the opaque handle used in URLs."""

    __tablename__ = "subjects"
    # Probable duplicates are looked up by name at registration (ledger.identities).
    __table_args__ = (Index("ix_subjects_name_region", "name", "region"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    identifier: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(16), nullable=True)
    registered_by: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    registered_at: Mapped[datetime] = mapped_column(Instant)
    #: An organisation's founding date (a date in China), if its registry gave one;
    #: always None for a person, whose birth date is in the identifier. Added by
    #: migration 0011: NULL is left out of the row's bytes (see the encoder below).
    founded_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class Record(journal.Journalled, Base):
    """A fact about a subject, with its provenance. Append-only."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("source_id", "source_ref"),
        Index("ix_records_subject_received", "subject_id", "received_at"),
        # A source's last report of a type by an instant, in one seek (freshness.outages).
        Index("ix_records_source_type_received", "source_id", "record_type", "received_at"),
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
_cadences = SourceCadence.__table__
journal.cover(
    _cadences,
    journal.encoder(
        _cadences, "id", "source_id", "record_type", "cadence_days", "grace_days", "declared_at"
    ),
)
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
        "founded_on",
        added=("founded_on",),
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


# --- identities: probable duplicates and what the identity authority found ---------------
# (credence.ledger.identities; every row written once, by the entry of its step)


class IdentityFlag(journal.Journalled, Base):
    """A subject registered but flagged for its identity authority as a probable
    duplicate of ``other_subject_id``, an earlier subject of the same kind: same name,
    birth (or founding) date and region, or same name and an identifier one character
    or one adjacent transposition away (``test``)."""

    __tablename__ = "identity_flags"
    __table_args__ = (
        UniqueConstraint("subject_id", "other_subject_id"),
        Index("ix_identity_flags_other_subject_id", "other_subject_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    #: The subject just registered (the one that may be fictitious).
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    #: The earlier subject it resembles.
    other_subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    #: ``same_name_birth_region`` or ``near_identifier``.
    test: Mapped[str] = mapped_column(String(32))
    flagged_at: Mapped[datetime] = mapped_column(Instant)


class IdentityResolution(journal.Journalled, Base):
    """The identity authority's answer to a flag: ``distinct``, ``merged`` or
    ``voided``. One per flag (the unique ``flag_id`` keeps one of two at once)."""

    __tablename__ = "identity_resolutions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("identity_flags.id"), unique=True)
    outcome: Mapped[str] = mapped_column(String(16))
    #: The identity authority that answered, and its principal (None from the CLI).
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), nullable=True)
    #: The authority's reasons, shown to the subjects (the journal keeps a digest).
    reason: Mapped[str] = mapped_column(Text)
    resolved_at: Mapped[datetime] = mapped_column(Instant)


class SubjectAlias(journal.Journalled, Base):
    """A merge: from ``merged_at`` on, ``alias_subject_id`` is read into the file of
    ``into_subject_id`` by every engine (its records stay as stored), until an
    :class:`AliasEnd` of it."""

    __tablename__ = "subject_aliases"
    __table_args__ = (
        # At most one alias of a subject at a time: see ``attempt``.
        UniqueConstraint("alias_subject_id", "attempt"),
        Index("ix_subject_aliases_into_subject_id", "into_subject_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    #: The resolution (outcome ``merged``) that made it.
    resolution_id: Mapped[int] = mapped_column(ForeignKey("identity_resolutions.id"), unique=True)
    alias_subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    into_subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    #: How many aliases of ``alias_subject_id`` were made before this one (all ended):
    #: unique with it, so two merges of one subject at once cannot both be stored.
    attempt: Mapped[int] = mapped_column(Integer)
    merged_at: Mapped[datetime] = mapped_column(Instant)


class AliasEnd(journal.Journalled, Base):
    """An unmerge: the alias is read as a file of its own again from ``ended_at``."""

    __tablename__ = "alias_ends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias_id: Mapped[int] = mapped_column(ForeignKey("subject_aliases.id"), unique=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    ended_at: Mapped[datetime] = mapped_column(Instant)


class IdentityVoid(journal.Journalled, Base):
    """A subject voided as fictitious from ``voided_at`` (for good): its new records are
    held and it can obtain no decision."""

    __tablename__ = "identity_voids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), unique=True)
    #: The resolution (outcome ``voided``) that voided it.
    resolution_id: Mapped[int] = mapped_column(ForeignKey("identity_resolutions.id"), unique=True)
    voided_at: Mapped[datetime] = mapped_column(Instant)


_flags = IdentityFlag.__table__
journal.cover(
    _flags,
    journal.encoder(
        _flags, "id", "public_id", "subject_id", "other_subject_id", "test", "flagged_at"
    ),
)
_resolutions = IdentityResolution.__table__
journal.cover(
    _resolutions,
    journal.encoder(
        _resolutions,
        "id",
        "public_id",
        "flag_id",
        "outcome",
        "source_id",
        "principal_id",
        "reason",
        "resolved_at",
    ),
)
_aliases = SubjectAlias.__table__
journal.cover(
    _aliases,
    journal.encoder(
        _aliases,
        "id",
        "public_id",
        "resolution_id",
        "alias_subject_id",
        "into_subject_id",
        "attempt",
        "merged_at",
    ),
)
_alias_ends = AliasEnd.__table__
journal.cover(
    _alias_ends,
    journal.encoder(
        _alias_ends, "id", "alias_id", "source_id", "principal_id", "reason", "ended_at"
    ),
)
_voids = IdentityVoid.__table__
journal.cover(_voids, journal.encoder(_voids, "id", "subject_id", "resolution_id", "voided_at"))
