"""Taking turns at intake, across processes.

Intake reads the store and then writes on what it read: a ``source_ref`` not yet stored
is new, a subject has had so many positives in the window, a backfill run has so much
volume left, a streak's neighbour is (or is not) there. Two transactions doing that at
once, each blind to the other's uncommitted rows, would both store a resend, or both
stay under a limit that together they pass. So every transaction that checks a batch
first takes its turn:

* **per source**: duplicates (``source_id``, ``source_ref``), the burst limit (source
  and subject), spacing (source, subject and type) and a backfill run's volume (a run
  belongs to one source) are all read within the source's turn;
* **per new subject**: the new-identity limit counts positives from every source, so
  a batch with positives about a subject still new takes that subject's turn too
  (subjects past the new-identity period need none: only the per-source limits apply).

On PostgreSQL a turn is an advisory lock held until the transaction ends (taken again
in the same transaction, it is already held). A transaction takes its sources before
any subject, each set in ascending order in one statement; the group commit takes every
source of a group at once (:class:`credence.ledger.intake.Intake`). Two transactions
can still wait on each other's new subjects (a group, or an import's chunks, taking
them batch by batch); PostgreSQL then ends one of them, which
:func:`is_deadlock` recognises so the intake can write it again.

SQLite has one writer at a time: a turn there is the store's write lock, taken before
the checks read (the driver otherwise begins the transaction only at its first write,
after them).

The locks' keys are hashes of store ids, scoped to the store's schema: no identifier is
sent with them, and two stores in one database take turns apart.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from credence.journal.rows import begin_write

#: PostgreSQL's SQLSTATE for a transaction ended to break a deadlock.
_DEADLOCK = "40P01"

#: The turns of ``ids`` of one ``kind``: each key a hash of the kind, the store's schema
#: (two Credence stores in one database do not wait on each other) and the id; the keys
#: gathered into an array in ascending order, then taken one by one in that order.
_TAKE = text(
    "SELECT pg_advisory_xact_lock(key) FROM unnest(ARRAY("
    "SELECT DISTINCT hashtextextended('credence.intake:' || :kind || ':' "
    "|| current_schema() || ':' || id::text, 0) "
    "FROM unnest(CAST(:ids AS bigint[])) AS ids(id) ORDER BY 1"
    ")) AS keys(key)"
)


def take_sources(session: Session, source_ids: Iterable[int]) -> None:
    """This transaction's turn for each source (see the module doc)."""
    _take(session, "source", source_ids)


def take_subjects(session: Session, subject_ids: Iterable[int]) -> None:
    """This transaction's turn for each (new) subject (see the module doc)."""
    _take(session, "subject", subject_ids)


def is_deadlock(error: BaseException) -> bool:
    """Whether ``error`` is PostgreSQL ending a transaction to break a deadlock (the
    transaction can be written again)."""
    return isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) == _DEADLOCK


def _take(session: Session, kind: str, ids: Iterable[int]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        begin_write(session)
        return
    wanted = list(ids)
    if wanted:
        session.execute(_TAKE, {"kind": kind, "ids": wanted})
