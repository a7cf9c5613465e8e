"""A log that continues an earlier one: carrying the rows written before into it.

Migration 0008 ends the log whose leaves were whole journal rows: it keeps each old
leaf's hash (``legacy_leaves``) and the old checkpoints (``legacy_checkpoints``), deletes
the old journal rows (which held a copy of every record's content), and writes the new
log's first entry, ``log_continued``. The rows written before then carry no ``seq`` yet;
:func:`carry_over` gives each an entry of its own (``carried_over``), so the new log
covers them like any row written since. It runs once, right after that migration, in
the migration's transaction (:func:`credence.migrate.upgrade`): afterwards a row without
a ``seq`` is one no entry wrote, which ``credence log verify`` reports.
"""

from __future__ import annotations

from sqlalchemy import Connection, MetaData, and_, bindparam, func, select, update
from sqlalchemy.orm import Session

from credence import journal
from credence.journal import EventKind, JournalEntry

#: Rows carried over per round trip.
_BATCH = 5_000


def needs_carry_over(connection: Connection) -> bool:
    """Whether the journal holds only the ``log_continued`` entry a migration wrote."""
    kinds = connection.execute(select(JournalEntry.kind).limit(2)).scalars().all()
    return kinds == [EventKind.LOG_CONTINUED.value]


def carry_over(connection: Connection, metadata: MetaData) -> int:
    """Give every covered row without a ``seq`` a ``carried_over`` entry (if the journal
    holds only the migration's first entry); how many rows were carried over."""
    if not needs_carry_over(connection):
        return 0
    at = connection.execute(select(JournalEntry.at)).scalar_one()
    session = Session(bind=connection)
    carried = 0
    for table, covered in journal.covered_tables(metadata):
        key = list(table.primary_key.columns)
        names = [c.name for c in key]
        stamp = (
            update(table)
            .where(and_(*(c == bindparam(f"k_{c.name}") for c in key)))
            .values(seq=bindparam("n_seq"), salt=bindparam("n_salt"))
        )
        while True:
            rows = (
                connection.execute(
                    select(table).where(table.c.seq.is_(None)).order_by(*key).limit(_BATCH)
                )
                .mappings()
                .all()
            )
            if not rows:
                break
            seqs = journal.allocate(session, len(rows))
            updates, entries = [], []
            for row, seq in zip(rows, seqs, strict=True):
                salt = journal.new_salt()
                row_key = journal.row_key(row, names)
                listed = [(table.name, row_key, journal.digest(salt, covered.encoder(row)))]
                updates.append({"n_seq": seq, "n_salt": salt, **{f"k_{n}": row[n] for n in names}})
                entries.append(
                    {
                        "seq": seq,
                        "kind": EventKind.CARRIED_OVER,
                        "at": at,
                        "subject_id": row.get("subject_id"),
                        "data": journal.canonical({"table": table.name}),
                        "rows": journal.listing(listed),
                    }
                )
            journal.append_many(session, entries)
            connection.execute(stamp, updates)
            carried += len(rows)
    session.flush()
    total = connection.execute(select(func.count()).select_from(JournalEntry)).scalar_one()
    assert total == carried + 1
    return carried
