"""What a leaf of the transparency log is: one journal row, as canonical bytes.

Every journal row (one per ledger step, written in the step's transaction) is a leaf of
an RFC 9162 Merkle tree. The leaf bytes are the canonical JSON of the whole row,
``{"at":…,"data":…,"kind":…,"rows":…,"seq":…,"subject_id":…}`` with ``data`` and
``rows`` (JSON already) embedded byte for byte (:func:`leaf_data`). ``rows`` lists the
salted digest of every covered row the step wrote (see :mod:`credence.journal.rows`),
so the leaf commits to the rows themselves; binding ``seq``, ``kind``, ``at`` and
``subject_id`` too means an entry cannot be moved, re-dated or attributed to another
subject without changing its leaf. :mod:`credence.translog.verify` checks the log and
every covered row against it.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import BigInteger, Executable, Result, type_coerce
from sqlalchemy.orm import Session

from credence.journal import JournalEntry
from credence.translog import merkle

#: Rows fetched per round trip when streaming the journal.
BATCH = 10_000


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


def stream_rows(session: Session, stmt: Executable) -> Result[Any]:
    """The rows of ``stmt``, fetched :data:`BATCH` at a time."""
    return session.execute(stmt.execution_options(yield_per=BATCH))


__all__ = ["BATCH", "ROW_COLUMNS", "leaf_data", "leaf_hash_of", "stream_rows"]
