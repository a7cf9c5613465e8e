"""Reinsertion: a record a dispute ended comes back only certified by its source.

FCRA-style: a record deleted (or corrected, or left unverified) after a dispute may come
back only if its source certifies that it is complete and accurate, whatever
``source_ref`` it comes back under; the subject is told. A new record is the same fact as
an ended one when it has the same subject, type, instant and decision reference
(:data:`FactKey`), or, for an ended record whose content was erased but for what this
check needs, the same content hash.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Select, bindparam, literal, select
from sqlalchemy.orm import Session

from credence.clock import to_micros
from credence.db import CHUNK, Instant, core, in_list
from credence.errors import Conflict, InvalidInput
from credence.ledger import endings
from credence.ledger.tables import Record

#: (subject id, record type, occurred_at in µs, decision_ref): what makes a new record
#: the same fact as one a dispute ended (whatever its source_ref).
FactKey = tuple[int, str, int, str | None]


@functools.cache
def _disputed_query(dialect: str) -> Select[Any]:
    """Whether any of these subjects (parameter ``subject_ids``) may have a record a
    dispute ended: empty when none can (the sources of dispute endings say how)."""
    probes = [
        source.subjects_with_events(lambda column: in_list(column, "subject_ids", dialect))
        for source in endings.sources()
        if source.causes & endings.DISPUTE_CAUSES and source.subjects_with_events
    ]
    # One probe answers; without exactly one, the full check always runs.
    return probes[0] if len(probes) == 1 else select(literal(1))


def ended_by_dispute(
    session: Session, subject_ids: set[int], at: datetime
) -> tuple[dict[FactKey, str], dict[str, str]]:
    """Records of these subjects whose effect a dispute ended by ``at``: by fact key,
    and, for those whose content was erased but for the minimum a reinsertion check
    needs, by content hash.

    FCRA-style: a record deleted (or corrected, or left unverified) after a dispute may
    come back only if its source certifies it, whatever source_ref it comes back under.
    """
    found: dict[FactKey, str] = {}
    hashes: dict[str, str] = {}
    ordered = sorted(subject_ids)
    connection = core(session)
    disputed = _disputed_query(connection.dialect.name)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        # Disputes are rare: one indexed probe spares the join for almost every batch.
        if connection.execute(disputed, {"subject_ids": chunk}).first() is None:
            continue
        rows = session.execute(_ended_by_dispute_query(), {"subject_ids": chunk, "at": at})
        for subject_id, record_type, occurred_at, decision_ref, public_id, digest in rows:
            if record_type is None:  # erased: only its content hash, if it is kept
                if digest is not None:
                    hashes[digest] = public_id
                continue
            found[(subject_id, record_type, to_micros(occurred_at), decision_ref)] = public_id
    return found, hashes


@functools.cache
def _ended_by_dispute_query() -> Select[int, str, datetime, str | None, str, str]:
    """The statement :func:`ended_by_dispute` runs, built once (parameters
    ``subject_ids``, ``at``): every submission runs it."""
    subject_ids: BindParameter[list[int]] = bindparam("subject_ids", expanding=True)
    mine = select(Record.id).where(Record.subject_id.in_(subject_ids))
    events = endings.ending_events(mine, causes=endings.DISPUTE_CAUSES).subquery()
    return (
        select(
            Record.subject_id,
            Record.record_type,
            Record.occurred_at,
            Record.decision_ref,
            Record.public_id,
            Record.content_hash,
        )
        .join(events, events.c.record_id == Record.id)
        .where(events.c.ended_at <= bindparam("at", type_=Instant()))
        .order_by(Record.id)
    )


def reinstated(
    ended: dict[FactKey, str],
    ended_hashes: dict[str, str],
    fact: FactKey,
    digest: str,
    *,
    certified: bool,
) -> str | None:
    """The id of the ended record a new record repeats (by fact, or by the content hash
    kept of an erased one), if any. Refused unless a repeat is ``certified``, and a
    certification that reinserts nothing is refused too."""
    reinstates = ended.get(fact) or ended_hashes.get(digest)
    if reinstates is not None and not certified:
        raise Conflict(
            f"this record repeats record {reinstates}, whose effect ended after the subject "
            "disputed it; it may be reinserted only if you certify that it is complete and "
            "accurate: send it with certified: true (the subject will be told)",
            code="reinsertion_requires_certification",
            details={"record_id": reinstates},
        )
    if reinstates is None and certified:
        raise InvalidInput(
            "certified is only for reinserting a record deleted after a dispute, and this "
            "record reinserts none; leave certified out",
            code="certification_not_needed",
        )
    return reinstates
