"""Covered rows: the sequence number of the entry that wrote each, its salt, its digest.

Every row of a covered table carries two columns of the journal's (:class:`Journalled`):

* ``seq``: the journal entry that wrote the row as it is now. A row rewritten later (a
  key revoked, a warning cleared, a shown tier moved) is written again by an entry of
  its own, and its ``seq`` moves to that entry;
* ``salt``: 16 random bytes (hex), drawn each time the row is written (an erasure
  writes the row again, content removed, under a new salt).

The entry lists, for each row it wrote, the table, the row's key and the row's
*digest*: SHA-256 of the salt and the row's canonical bytes
(:mod:`credence.journal.canonical`). The entry's leaf commits to that list, so the log
proves every column of every covered row while the leaf reveals nothing of it: without
the salt, a digest cannot be tested against guessed content. Erasing a row's content
drops the salt it was hashed with; its digest stays in the entry, and the log's proofs
still hold.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import BigInteger, String, Table, func, inspect, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from credence.journal.canonical import Encoder
from credence.journal.tables import JournalEntry

#: Bytes of randomness in a salt.
SALT_BYTES = 16


class Journalled:
    """Mixin of a covered table's model: the entry that wrote the row, and its salt.

    Both are NULL only for a row no entry wrote (which ``credence log verify``
    reports).
    """

    # No index: verify joins a row to its entry by the journal's key, and finds a listed
    # row by its own key; an index on seq would cost every insert and serve no query.
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    salt: Mapped[str | None] = mapped_column(String(2 * SALT_BYTES), nullable=True)


def new_salt() -> str:
    """A fresh salt, as stored (hex)."""
    return secrets.token_hex(SALT_BYTES)


def new_salts(n: int) -> list[str]:
    """``n`` fresh salts (one read of the system's random source)."""
    drawn = secrets.token_hex(SALT_BYTES * n)
    width = 2 * SALT_BYTES
    return [drawn[i : i + width] for i in range(0, len(drawn), width)]


def digest(salt: str, canonical_bytes: bytes) -> str:
    """A row's digest: SHA-256 of its salt's bytes then its canonical bytes, hex."""
    return hashlib.sha256(bytes.fromhex(salt) + canonical_bytes).hexdigest()


def row_key(values: Mapping[Any, Any], key_columns: Sequence[str]) -> Any:
    """How an entry names a row: its primary key's value, or the list of a composite
    key's values."""
    if len(key_columns) == 1:
        return values[key_columns[0]]
    return [values[name] for name in key_columns]


def listing(items: Iterable[tuple[str, Any, str]]) -> str:
    """The canonical JSON an entry stores of the rows it wrote: ``[[table, key,
    digest], ...]`` in the order written."""
    return orjson.dumps([list(item) for item in items]).decode()


def parse_listing(stored: str) -> list[tuple[str, Any, str]]:
    """The rows an entry lists, as ``(table, key, digest)``; a composite key is a tuple."""
    parsed = orjson.loads(stored)
    if not isinstance(parsed, list):
        raise ValueError("an entry's rows are a list")
    out = []
    for item in parsed:
        if not (isinstance(item, list) and len(item) == 3):
            raise ValueError("an entry's row is [table, key, digest]")
        table, key, hexdigest = item
        out.append((table, tuple(key) if isinstance(key, list) else key, hexdigest))
    return out


def allocate(session: Session, n: int) -> list[int]:
    """``n`` journal sequence numbers for entries this transaction is about to append,
    in order. On PostgreSQL from the journal's sequence; on SQLite the next numbers
    after the highest stored, read once this transaction holds the write lock (so no
    other writer can take them)."""
    if n <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # The lock an insert into the journal takes, taken now: a checkpoint (which
        # takes the journal in SHARE mode) then waits for this transaction, so no entry
        # numbered below the rows it signs can commit after it.
        session.execute(text("LOCK TABLE journal IN ROW EXCLUSIVE MODE"))
        numbers = session.scalars(
            text(
                "SELECT nextval(pg_get_serial_sequence('journal', 'seq')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": n},
        )
        return sorted(numbers)
    begin_write(session)
    top = session.scalar(select(func.coalesce(func.max(JournalEntry.seq), 0))) or 0
    return list(range(top + 1, top + 1 + n))


def begin_write(session: Session) -> None:
    """SQLite: make sure this transaction holds the database's write lock before it
    reads what its writes depend on (here, the highest number). Python's sqlite3 begins
    a transaction only at the first write, so a read before it would see a state another
    writer can change before this one writes; a write that changes nothing, as the first
    statement that writes, takes the lock (waiting for another writer, as any write
    does)."""
    session.execute(text("DELETE FROM journal WHERE 0 = 1"))


def allocate_ids(session: Session, table: Table, n: int) -> list[int]:
    """``n`` values of ``table``'s integer key ``id`` for rows this transaction is about
    to insert itself (so that their digests can be computed before the insert), drawn
    as :func:`allocate` draws entry numbers."""
    if n <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        numbers = session.scalars(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": n},
        )
        return sorted(numbers)
    begin_write(session)
    top = session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0
    return list(range(top + 1, top + 1 + n))


def values_of(instance: Any) -> dict[str, Any]:
    """A mapped instance's columns, by column name (for its table's encoder)."""
    mapper = inspect(instance).mapper
    return {
        column.name: getattr(instance, mapper.get_property_by_column(column).key)
        for column in mapper.local_table.columns
    }


def key_columns(instance: Any) -> tuple[str, ...]:
    """The names of the primary key columns of a mapped instance's table."""
    return tuple(column.name for column in inspect(instance).mapper.local_table.primary_key)


def stamp(instances: Sequence[Any], seq: int) -> None:
    """Mark ``instances`` as written by entry ``seq``, each with a fresh salt."""
    for instance in instances:
        instance.seq = seq
        instance.salt = new_salt()


def listed(instance: Any, encoder: Encoder) -> tuple[str, Any, str]:
    """``(table, key, digest)`` of a stamped and flushed instance."""
    values = values_of(instance)
    return (
        encoder.table,
        row_key(values, key_columns(instance)),
        digest(values["salt"], encoder(values)),
    )
