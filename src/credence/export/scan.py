"""Reading every record and every ending out of the store, at the speed of the store.

The records table is read once, in storage order (a sequential scan: reading it part by
part through the subject index costs a random page read per record), in chunks turned
into numpy columns at once, and sorted into parts by the subject's rank. On SQLite the
chunks come from the driver's cursor (no ORM row per record); on PostgreSQL from ``COPY
... TO STDOUT`` in CSV, parsed by Arrow's reader. Both run on the export's snapshot
connection, so they see its one state of the store.

Memory: the columns of every record (about 48 bytes each) until the parts are written.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv
from sqlalchemy import BigInteger, Connection, case, func, literal, select, type_coerce

from credence.ledger import endings, holds
from credence.ledger.tables import Record, Source, SourceCadence
from credence.scoring import layout
from credence.scoring.columnar import arrow, strings

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Rows per chunk fetched from the driver.
CHUNK = 1 << 18
#: The largest key for which :func:`positions` builds a table by value (4 bytes a
#: value: 256 MiB at most) rather than searching.
_TABLE_LIMIT = 1 << 26

_RAW = BigInteger()


def _records(record_type: Any, *quantity: Any) -> Any:
    """The columns read of each record that still has content: its id, subject, source,
    ``record_type`` as given, instants as stored (for its receipt, when it starts to
    count: a record held at intake counts from its release, or never,
    :func:`credence.ledger.holds.effect_starts`), then the ``quantity`` columns given."""
    starts = holds.effect_starts()
    return (
        select(
            Record.id,
            Record.subject_id,
            Record.source_id,
            record_type,
            type_coerce(Record.occurred_at, _RAW),
            holds.counts_from(Record.received_at, starts),
            *quantity,
        )
        .outerjoin(starts, starts.c.record_id == Record.id)
        .where(Record.record_type.is_not(None))
    )


@dataclass
class PartRecords:
    """The records of one part, as chunks of numpy columns (``record_id``, ``rank``,
    ``source_id``, ``type_index`` into :attr:`Scan.types`, ``occurred``, ``received``,
    ``quantity``), in the order read (not yet sorted)."""

    chunks: list[dict[str, npt.NDArray[Any]]] = field(default_factory=list)

    def columns(self) -> dict[str, npt.NDArray[Any]] | None:
        """Every column, concatenated; None for a part without records."""
        if not self.chunks:
            return None
        return {name: np.concatenate([c[name] for c in self.chunks]) for name in self.chunks[0]}


@dataclass
class Scan:
    """Every record, sorted into parts; the record types, as ``type_index`` numbers them."""

    parts: list[PartRecords]
    types: list[str]


def scan_records(
    conn: Connection, ids: IntArray, part_subjects: int, known_types: Sequence[str]
) -> Scan:
    """Every record with content, in parts of ``part_subjects`` subjects by rank of
    their subject's id among ``ids`` (sorted). ``known_types``: the record types the
    store's editions name (the SQLite reader numbers them in SQL; others are read too)."""
    n_parts = max(1, -(-ids.size // part_subjects))
    parts = [PartRecords() for _ in range(n_parts)]
    types: dict[str, int] = {code: i for i, code in enumerate(dict.fromkeys(known_types))}
    read = _sqlite_chunks if conn.dialect.name == "sqlite" else _copy_chunks
    rank_of = positions(ids)
    for chunk in read(conn, types):
        chunk["rank"] = rank_of(chunk.pop("subject_id"))
        part = chunk["rank"] // part_subjects
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(n_parts + 1))
        for k in np.flatnonzero(np.diff(bounds)):
            take = order[bounds[k] : bounds[k + 1]]
            parts[k].chunks.append({name: column[take] for name, column in chunk.items()})
    return Scan(parts, list(types))


def positions(keys: IntArray) -> Callable[[IntArray], IntArray]:
    """A function giving the position of each of a column of values among ``keys``
    (sorted, distinct, non-negative), -1 where absent: one gather through a table by
    value where the largest key allows (:data:`_TABLE_LIMIT`), a binary search each
    otherwise. Subject ranks and record endings are both looked up so."""
    if keys.size and int(keys[-1]) < _TABLE_LIMIT:
        table = np.full(int(keys[-1]) + 1, -1, dtype=np.int32)
        table[keys] = np.arange(keys.size, dtype=np.int32)

        def gather(values: IntArray) -> IntArray:
            found = np.full(values.size, -1, dtype=np.int64)
            inside = np.flatnonzero((values >= 0) & (values < table.size))
            found[inside] = table[values[inside]]
            return found

        return gather

    def search(values: IntArray) -> IntArray:
        if not keys.size:
            return np.full(values.size, -1, dtype=np.int64)
        found = np.minimum(np.searchsorted(keys, values), keys.size - 1)
        return np.where(keys[found] == values, found, -1)

    return search


def _sql(query: Any, conn: Connection) -> str:
    """A query as the driver runs it (its constants inline: no parameters)."""
    return str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def _sqlite_chunks(conn: Connection, types: dict[str, int]) -> Iterator[dict[str, Any]]:
    """Chunks of every column as numbers: the record type numbered in SQL (as
    ``types`` numbers it), a null quantity as a flag beside a 0, so that a chunk of rows
    becomes one numpy array at C speed (every value is below 2**53: exact in a float64).
    A type ``types`` lacks comes back as -1 and is looked up by record id."""
    coded = case(types, value=Record.record_type, else_=-1) if types else literal(-1)
    query = _records(
        coded,
        case((Record.quantity.is_(None), 1), else_=0),
        func.coalesce(Record.quantity, 0.0),
    )
    raw = conn.connection.driver_connection
    cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_sql(query, conn))
        while rows := cursor.fetchmany(CHUNK):
            table = np.array(rows, dtype=np.float64)
            record_id = table[:, 0].astype(np.int64)
            type_index = table[:, 3].astype(np.int64)
            unknown = np.flatnonzero(type_index < 0)
            if unknown.size:
                type_index[unknown] = _look_up_types(raw, record_id[unknown], types)
            quantity = table[:, 7].copy()
            quantity[table[:, 6] != 0] = np.nan
            yield {
                "record_id": record_id,
                "subject_id": table[:, 1].astype(np.int64),
                "source_id": table[:, 2].astype(np.int64),
                "type_index": type_index,
                "occurred": table[:, 4].astype(np.int64),
                "received": _instants(table[:, 5]),
                "quantity": quantity,
            }
    finally:
        cursor.close()


def _instants(column: FloatArray) -> IntArray:
    """Instants read as float64 back to microseconds: exact below 2**53; a record that
    never starts to count (held, rejected: :data:`credence.ledger.holds.NEVER_US`, not
    exact as a float) stays after every instant."""
    never = column >= float(1 << 53)
    out = np.where(never, 0.0, column).astype(np.int64)
    out[never] = holds.NEVER_US
    return out


def _look_up_types(raw: Any, record_ids: IntArray, types: dict[str, int]) -> IntArray:
    """The type numbers of records whose type no edition names (numbered as met)."""
    found: dict[int, str] = {}
    cursor = raw.cursor()
    try:
        for start in range(0, record_ids.size, 500):
            batch = [int(i) for i in record_ids[start : start + 500]]
            marks = ",".join("?" * len(batch))
            cursor.execute(f"SELECT id, record_type FROM records WHERE id IN ({marks})", batch)
            found.update(cursor.fetchall())
    finally:
        cursor.close()
    return np.array(
        [types.setdefault(found[int(i)], len(types)) for i in record_ids], dtype=np.int64
    )


_CSV_COLUMNS = (
    "record_id",
    "subject_id",
    "source_id",
    "record_type",
    "occurred",
    "received",
    "quantity",
)


def _copy_chunks(conn: Connection, types: dict[str, int]) -> Iterator[dict[str, Any]]:
    sql = _sql(_records(Record.record_type, Record.quantity), conn)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
        reader = csv.open_csv(
            _CopyStream(copy),
            read_options=csv.ReadOptions(column_names=list(_CSV_COLUMNS), block_size=16 << 20),
            parse_options=csv.ParseOptions(newlines_in_values=True),
            convert_options=csv.ConvertOptions(
                column_types={
                    "record_id": pa.int64(),
                    "subject_id": pa.int64(),
                    "source_id": pa.int64(),
                    "record_type": pa.string(),
                    "occurred": pa.int64(),
                    "received": pa.int64(),
                    "quantity": pa.float64(),
                },
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            coded = pc.dictionary_encode(batch.column("record_type"))
            lookup = np.array(
                [types.setdefault(t, len(types)) for t in coded.dictionary.to_pylist()],
                dtype=np.int64,
            )
            yield {
                "record_id": _numpy(batch, "record_id"),
                "subject_id": _numpy(batch, "subject_id"),
                "source_id": _numpy(batch, "source_id"),
                "type_index": lookup[coded.indices.to_numpy(zero_copy_only=False)],
                "occurred": _numpy(batch, "occurred"),
                "received": _numpy(batch, "received"),
                # A null quantity is an empty CSV field: NaN in numpy.
                "quantity": batch.column("quantity").to_numpy(zero_copy_only=False),
            }


def _numpy(batch: pa.RecordBatch, name: str) -> IntArray:
    return np.asarray(batch.column(name).to_numpy(zero_copy_only=False), dtype=np.int64)


class _CopyStream(io.RawIOBase):
    """``COPY ... TO STDOUT`` data as a readable binary stream (for Arrow's reader).

    The driver hands over one row per message; each read fills the reader's buffer
    with as many as fit, so the reader parses blocks of its own size (one row per block
    would be one Arrow batch per row)."""

    def __init__(self, copy: Any) -> None:
        self._copy = copy
        self._pending = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        size = len(view)
        while len(self._pending) < size and not self._done:
            block = self._copy.read()
            if block:
                self._pending += block
            else:
                self._done = True
        n = min(size, len(self._pending))
        view[:n] = self._pending[:n]
        del self._pending[:n]
        return n


class Endings:
    """The earliest ending of every record that has one: ``record_id`` (sorted),
    ``ended_at``, and ``cause`` (its position in
    :data:`~credence.ledger.endings.CAUSE_ORDER`)."""

    def __init__(self, record_id: IntArray, ended_at: IntArray, cause: IntArray) -> None:
        self.ended_at = ended_at
        self.cause = cause
        self._find = positions(record_id)

    def of(self, record_id: IntArray) -> tuple[IntArray, IntArray]:
        """When each of ``record_id`` ends (0 where it does not) and by which cause
        (-1 where none)."""
        found = self._find(record_id)
        hit = np.flatnonzero(found >= 0)
        ended_at = np.zeros(record_id.size, dtype=np.int64)
        cause = np.full(record_id.size, -1, dtype=np.int64)
        ended_at[hit] = self.ended_at[found[hit]]
        cause[hit] = self.cause[found[hit]]
        return ended_at, cause


def scan_endings(conn: Connection) -> Endings:
    """Every ending event (:func:`credence.ledger.endings.ending_events`), reduced to the
    earliest per record, ties naming the cause first in ``CAUSE_ORDER``: as the
    subject's file names it."""
    events = endings.ending_events().subquery("events")
    rows = conn.execute(
        select(events.c.record_id, type_coerce(events.c.ended_at, _RAW), events.c.cause)
    ).all()
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return Endings(empty, empty, empty)
    record_id, ended_at, cause = zip(*rows, strict=True)
    rid = np.array(record_id, dtype=np.int64)
    at = np.array(ended_at, dtype=np.int64)
    rank = np.array([endings.CAUSE_ORDER.index(c) for c in cause], dtype=np.int64)
    order = np.lexsort((rank, at, rid))
    rid, at, rank = rid[order], at[order], rank[order]
    first = np.ones(rid.size, dtype=np.bool_)
    first[1:] = rid[1:] != rid[:-1]
    return Endings(rid[first], at[first], rank[first])


def scan_watch(conn: Connection) -> tuple[pa.Table, pa.Table]:
    """What the outage rule reads, for the batch engines
    (:func:`credence.scoring.layout.outages_at`): every ``source_cadences`` row
    (:data:`~credence.scoring.layout.CADENCE_SCHEMA`, ordered by source, type,
    declaration and row; ``order`` the row's rank in that order), and each declared
    source and type's distinct receipt instants (every record received, held ones
    included, whatever became of it: the source did report it;
    :data:`~credence.scoring.layout.RECEIPT_SCHEMA`, ordered). Small: a few rows per
    source, and one per delivery."""
    c = SourceCadence
    cadences = conn.execute(
        select(
            Source.code,
            c.record_type,
            c.cadence_days,
            c.grace_days,
            type_coerce(c.declared_at, _RAW),
        )
        .join(Source, Source.id == c.source_id)
        .order_by(Source.code, c.record_type, c.declared_at, c.id)
    ).all()
    declared = select(c.source_id, c.record_type).distinct().subquery()
    receipts = conn.execute(
        select(Source.code, Record.record_type, type_coerce(Record.received_at, _RAW))
        .join(Source, Source.id == Record.source_id)
        .join(
            declared,
            (declared.c.source_id == Record.source_id)
            & (declared.c.record_type == Record.record_type),
        )
        .distinct()
        .order_by(Source.code, Record.record_type, type_coerce(Record.received_at, _RAW))
    ).all()
    return (
        pa.Table.from_arrays(
            [
                strings([r[0] for r in cadences]),
                strings([r[1] for r in cadences]),
                arrow(np.array([r[2] for r in cadences], dtype=np.int32)),
                arrow(np.array([r[3] for r in cadences], dtype=np.int32)),
                arrow(np.array([r[4] for r in cadences], dtype=np.int64)),
                arrow(np.arange(len(cadences), dtype=np.int64)),
            ],
            schema=layout.CADENCE_SCHEMA,
        ),
        pa.Table.from_arrays(
            [
                strings([r[0] for r in receipts]),
                strings([r[1] for r in receipts]),
                arrow(np.array([r[2] for r in receipts], dtype=np.int64)),
            ],
            schema=layout.RECEIPT_SCHEMA,
        ),
    )
