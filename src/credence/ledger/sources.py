"""Read side of the registered sources: the listing ``credence sources list`` prints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence.ledger.tables import Source, SourceRecordType


@dataclass(frozen=True)
class SourceListing:
    """A source, what kind of organisation it is and the record types it may submit."""

    id: int
    code: str
    name: str
    kind: str
    #: ``person`` (a civil registry), ``organisation`` (a business registry) or None.
    identity_authority_for: str | None
    record_types: tuple[str, ...]
    created_at: datetime


def list_sources(session: Session) -> list[SourceListing]:
    """Every registered source, by code."""
    types: dict[int, list[str]] = {}
    for source_id, record_type in session.execute(
        select(SourceRecordType.source_id, SourceRecordType.record_type).order_by(
            SourceRecordType.record_type
        )
    ):
        types.setdefault(source_id, []).append(record_type)
    return [
        SourceListing(
            id=source.id,
            code=source.code,
            name=source.name,
            kind=source.kind,
            identity_authority_for=source.identity_authority_for,
            record_types=tuple(types.get(source.id, ())),
            created_at=source.created_at,
        )
        for source in session.scalars(select(Source).order_by(Source.code))
    ]
