"""Canonical journal entries: one per append to the ledger, in order.

``data`` is canonical JSON (sorted keys, compact separators, UTF-8) so the same fact
always hashes the same; the transparency log uses these bytes as its leaves.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from credence.db import bulk_insert
from credence.ledger.tables import JournalEntry


def canonical(data: dict[str, Any]) -> str:
    """Canonical JSON text of ``data``: keys sorted, no whitespace; datetimes as orjson
    writes them (RFC 3339, e.g. ``2026-01-01T00:00:00+00:00``)."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def append(
    session: Session,
    *,
    kind: str,
    at: datetime,
    data: dict[str, Any],
    subject_id: int | None = None,
) -> None:
    """Append one journal entry in the caller's transaction."""
    session.add(JournalEntry(kind=kind, at=at, subject_id=subject_id, data=canonical(data)))


def append_many(session: Session, entries: list[dict[str, Any]]) -> None:
    """Bulk form of :func:`append`; each dict has ``kind``, ``at``, ``subject_id``, ``data``
    (``data`` already canonical). Order of the list is the order in the journal."""
    if entries:
        # Core insert on the table: one executemany (the ORM bulk form splits on None).
        bulk_insert(session, JournalEntry.metadata.tables[JournalEntry.__tablename__], entries)


def record_data(
    *,
    record_id: str,
    source: str,
    source_ref: str,
    subject_id: str,
    record_type: str,
    occurred_at: datetime,
    received_at: datetime,
    quantity: float | None,
    decision_ref: str | None,
) -> dict[str, Any]:
    """The journal payload (and content) of a record: every field that defines it."""
    return {
        "record": record_id,
        "source": source,
        "source_ref": source_ref,
        "subject": subject_id,
        "type": record_type,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "quantity": quantity,
        "decision_ref": decision_ref,
    }


def record_content_hash(
    *,
    subject_id: str,
    record_type: str,
    occurred_at: datetime,
    quantity: float | None,
    decision_ref: str | None,
) -> str:
    """SHA-256 of what a source asserts in a record (not when we received it).

    A resend with the same (source, source_ref) and the same hash is a harmless
    duplicate; with another hash it is a conflict.
    """
    body = canonical(
        {
            "subject": subject_id,
            "type": record_type,
            "occurred_at": occurred_at,
            "quantity": quantity,
            "decision_ref": decision_ref,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()
