"""Bulk import of a source's records from a file: CSV, JSON lines or Parquet.

A file is stored whole or not at all. Every line is checked exactly as an HTTP
submission is (:func:`credence.ledger.service.parse_records` and
:func:`~credence.ledger.service.plan_records`), chunk by chunk, inside one transaction;
each chunk is inserted before the next is planned, so a ``source_ref`` repeated further
down the file is seen as a duplicate (same content) or a conflict (other content). If
any line is bad the transaction is rolled back and the report lists every bad line
with its line number; otherwise it commits. Re-importing a file is harmless: its lines
come back as duplicates.

A record an intake check holds (a burst from the source about one subject, say) is not
a bad line: it is stored, held for a reviewer, and counted in the report. A source
loading its history names the backfill run an operator approved for it
(``backfill_run``): records of the file within the run's scope are exempt from the
intake's volume limits (:mod:`credence.ledger.backfill`), and what the run exempted is
logged once, when the file is stored. An unknown run, or another source's, refuses the
file before anything is read.

Only the file's *structure* can refuse it as a whole (unknown suffix, unreadable file,
a header naming unknown fields): that raises :class:`~credence.errors.InvalidInput`
before anything is read.

Messages in a report never carry a national identifier: the ledger's messages do not
quote the input, and neither do the readers here.
"""

from __future__ import annotations

import csv
import gc
import re
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, Literal, TypeAlias

import orjson
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import Clock, ensure_utc
from credence.db import bulk_load_cache
from credence.errors import CredenceError, InvalidInput, NotFound
from credence.identifiers import mask
from credence.ledger import backfill, registry
from credence.ledger import service as ledger
from credence.ledger.schemas import RecordIn, RecordResult
from credence.rulebook import store

Format: TypeAlias = Literal["csv", "jsonl", "parquet"]

#: File suffix (lower case) → format.
SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

#: The fields a line may carry: those of :class:`RecordIn`.
FIELDS: tuple[str, ...] = tuple(RecordIn.model_fields)
_REQUIRED = ("source_ref", "record_type", "occurred_at")
_SUBJECT = ("subject_id", "identifier")
_STRING_FIELDS = frozenset(
    {"source_ref", "subject_id", "identifier", "record_type", "decision_ref"}
)

#: An 18-character run with at least six digits: the shape of both national identifiers.
_IDENTIFIER_SHAPE = re.compile(
    r"(?<![0-9A-Za-z])(?=(?:[A-Za-z]*[0-9]){6})[0-9A-Za-z]{18}(?![0-9A-Za-z])"
)

#: One line of a file: its number and either the raw fields or why it could not be read.
RawLine: TypeAlias = tuple[int, dict[str, Any] | CredenceError]


@dataclass
class LineError:
    """Why one line of a file was refused."""

    line: int
    source_ref: str | None
    code: str
    message: str


@dataclass
class ImportReport:
    """The outcome of importing one file."""

    path: Path
    format: Format
    #: Lines read (blank lines and the CSV header do not count).
    lines: int
    #: New records (held ones included); when ``stored`` is false, none was kept.
    created: int
    #: Lines whose record was already in the ledger (or earlier in the file) unchanged.
    duplicates: int
    errors: list[LineError] = field(default_factory=list)
    #: Whether the file was committed (true only when ``errors`` is empty).
    stored: bool = False
    seconds: float = 0.0
    #: New records an intake check held for a reviewer (counted in ``created`` too).
    held: int = 0
    #: The approved backfill run the file was delivered under, and how many of its
    #: records the run exempted from the volume limits.
    backfill_run: str | None = None
    exempted: int = 0

    @property
    def rate(self) -> float:
        """Lines processed per second."""
        return self.lines / self.seconds if self.seconds > 0 else 0.0


# --- formats -------------------------------------------------------------------------


def detect_format(path: Path | str) -> Format:
    """The format of a file, from its suffix; :class:`InvalidInput` for any other."""
    suffix = Path(path).suffix.lower()
    fmt = SUFFIXES.get(suffix)
    if fmt is None:
        supported = ", ".join(SUFFIXES)
        raise InvalidInput(
            f"cannot tell the format of {Path(path).name!r} from its suffix "
            f"{suffix or '(none)'!r}; supported suffixes: {supported}",
            code="unsupported_format",
        )
    return fmt


def _check_columns(names: list[str], what: str) -> None:
    """Refuse a header (or Parquet schema) that cannot describe records."""
    problems: list[str] = []
    unknown = [n for n in names if n not in FIELDS]
    if unknown:
        problems.append(f"unknown fields {', '.join(repr(n) for n in unknown)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"fields named twice: {', '.join(repeated)}")
    missing = [n for n in _REQUIRED if n not in names]
    if missing:
        problems.append(f"missing fields {', '.join(missing)}")
    if not any(n in names for n in _SUBJECT):
        problems.append("no subject_id or identifier column to name the subject")
    if problems:
        raise InvalidInput(
            f"the {what} cannot describe records: {'; '.join(problems)}. "
            f"The fields are: {', '.join(FIELDS)}",
            code="invalid_header",
            details=problems,
        )


def read_csv(path: Path) -> Iterator[RawLine]:
    """Rows of a CSV file whose first row names the fields; numbered as lines in the file.

    The header is line 1. A record whose quoted cell spans lines gets the number of its
    first line. Empty cells are absent fields; blank lines are skipped.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return
            names = [name.strip() for name in header]
            _check_columns(names, "CSV header (line 1)")
            width = len(names)
            last = reader.line_num
            while True:
                start = last + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    last = reader.line_num
                    yield start, InvalidInput(f"not valid CSV: {exc}", code="invalid_csv")
                    continue
                last = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) > width:
                    yield (
                        start,
                        InvalidInput(
                            f"the line has {len(row)} cells but the header names {width} fields",
                            code="invalid_csv",
                        ),
                    )
                    continue
                yield start, {n: c for n, c in zip(names, row, strict=False) if c.strip()}
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{path.name} is not UTF-8 text (bad byte at offset {exc.start} of a block)",
            code="invalid_encoding",
        ) from None


def read_jsonl(path: Path) -> Iterator[RawLine]:
    """One JSON object per line, numbered from 1; blank lines are skipped.

    A line that is not a JSON object is an error for that line, not for the file.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.strip()
            if number == 1 and text.startswith(b"\xef\xbb\xbf"):
                text = text[3:].strip()
            if not text:
                continue
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                # orjson's message names the position, never the text it choked on.
                yield number, InvalidInput(f"not valid JSON: {exc}", code="invalid_json")
                continue
            if not isinstance(value, dict):
                yield (
                    number,
                    InvalidInput(
                        f"a line must hold one JSON object, this one holds a "
                        f"{type(value).__name__}",
                        code="invalid_json",
                    ),
                )
                continue
            yield number, value


def _parquet_file(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(
            f"{path.name} is not a readable Parquet file: {exc}", code="invalid_parquet"
        ) from None


def _normalised(batch: Any) -> Any:
    """Timestamps and dates as aware UTC microseconds; integer references as text."""
    import pyarrow as pa

    columns = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        kind = column.type
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            # Naive timestamps are wall-clock UTC: casting them to UTC keeps the values.
            column = column.cast(pa.timestamp("us", tz="UTC"), safe=False)
        elif name in _STRING_FIELDS and pa.types.is_integer(kind):
            column = column.cast(pa.string())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def read_parquet(path: Path, *, batch_size: int = 10_000) -> Iterator[RawLine]:
    """Rows of a Parquet file, numbered from 1, read one record batch at a time.

    Columns are named after the fields; timestamps may be Arrow timestamps (naive ones
    are UTC) or ISO 8601 strings. Null cells are absent fields.
    """
    parquet = _parquet_file(path)
    _check_columns(list(parquet.schema_arrow.names), "Parquet schema")
    number = 0
    for batch in parquet.iter_batches(batch_size=batch_size):
        for row in _normalised(batch).to_pylist():
            number += 1
            yield (
                number,
                {
                    k: ensure_utc(v) if isinstance(v, datetime) else v
                    for k, v in row.items()
                    if v is not None
                },
            )


def read_lines(path: Path, fmt: Format, *, batch_size: int = 10_000) -> Iterator[RawLine]:
    """The lines of ``path`` read as ``fmt``, streamed."""
    if fmt == "csv":
        return read_csv(path)
    if fmt == "jsonl":
        return read_jsonl(path)
    return read_parquet(path, batch_size=batch_size)


def estimate_lines(path: Path, fmt: Format) -> int:
    """About how many lines :func:`read_lines` will yield (exact for Parquet), cheaply;
    for a progress bar."""
    if fmt == "parquet":
        return int(_parquet_file(path).metadata.num_rows)
    count = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        count += 1
    return max(count - 1, 0) if fmt == "csv" else count


# --- import --------------------------------------------------------------------------


def _batches(lines: Iterable[RawLine], size: int) -> Iterator[list[RawLine]]:
    iterator = iter(lines)
    while batch := list(islice(iterator, size)):
        yield batch


#: A chunk of lines with each line's record parsed (or why it could not be).
_Parsed: TypeAlias = tuple[list[RawLine], list[RecordIn | CredenceError]]


def _parse(batch: list[RawLine]) -> _Parsed:
    parsed = iter(ledger.parse_records([item for _, item in batch if isinstance(item, dict)]))
    return batch, [item if isinstance(item, CredenceError) else next(parsed) for _, item in batch]


def _parsed_ahead(lines: Iterable[RawLine], size: int) -> Iterator[_Parsed]:
    """Chunks of ``size`` lines, parsed, read and parsed one chunk ahead in a thread.

    The caller stores a chunk while the next one is read and validated: SQLite and the
    PostgreSQL driver let go of the GIL while they work. An exception in the reader (a
    file that cannot describe records, say) comes out of this iterator, in order.
    """
    chunks = _batches(lines, size)

    def read_next() -> _Parsed | None:
        batch = next(chunks, None)
        return None if batch is None else _parse(batch)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="credence-import") as pool:
        ahead = pool.submit(read_next)
        try:
            while (parsed := ahead.result()) is not None:
                ahead = pool.submit(read_next)
                yield parsed
        finally:
            ahead.cancel()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off for a bulk load, back on after.

    A chunk allocates hundreds of thousands of objects, and with the collector on, each
    chunk pays for full collections over everything the process holds (a third of the
    CPU time of an import, measured). The objects of an import form no cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def redact(text: str) -> str:
    """``text`` with anything shaped like a national identifier masked.

    A safety net: the ledger's messages never quote identifiers, but a field name in a
    JSON line or a source_ref is the source's own text and could be one.
    """
    return _IDENTIFIER_SHAPE.sub(lambda m: mask(m.group(0)), text)


def _ref_of(item: dict[str, Any] | CredenceError) -> str | None:
    """The source_ref a line names, if it names a usable one (for the report)."""
    if isinstance(item, dict):
        ref = item.get("source_ref")
        if isinstance(ref, str) and ref.strip():
            return ref.strip()[:128]
    return None


def _tally(report: ImportReport, batch: list[RawLine], results: list[RecordResult]) -> None:
    """Count a chunk's lines into ``report``: created, duplicates, and each bad line."""
    for result, (number, item) in zip(results, batch, strict=True):
        if result.status == "created":
            report.created += 1
        elif result.status == "held":
            report.created += 1
            report.held += 1
        elif result.status == "duplicate":
            report.duplicates += 1
        else:
            error = result.error or {}
            ref = result.source_ref or _ref_of(item)
            report.errors.append(
                LineError(
                    line=number,
                    source_ref=None if ref is None else redact(ref),
                    code=str(error.get("code", "invalid_record")),
                    message=redact(str(error.get("message", ""))),
                )
            )
    report.lines += len(batch)


def import_file(
    sessions: sessionmaker[Session],
    path: Path,
    *,
    source_code: str,
    clock: Clock,
    chunk: int = 10_000,
    progress: Callable[[int], None] | None = None,
    backfill_run: str | None = None,
) -> ImportReport:
    """Import a file of records for the source ``source_code``: all lines or none.

    The file is streamed ``chunk`` lines at a time through one transaction. Every line
    is checked (even after a bad one, so the report is complete); the transaction is
    committed only when no line is bad. ``progress`` is called after each chunk with
    the number of lines read so far. ``backfill_run``: the public id of the approved
    backfill run the file is delivered under.

    Raises :class:`InvalidInput` for a file that cannot be read as records at all,
    :class:`NotFound` for a missing file, an unknown source, an unknown backfill run or
    no rulebook, :class:`~credence.errors.Forbidden` for another source's run.
    """
    if chunk < 1:
        raise InvalidInput("chunk must be at least 1")
    fmt = detect_format(path)
    if not path.is_file():
        raise NotFound(f"no file {str(path)!r}", code="file_not_found")
    started = time.perf_counter()
    now = clock.now()
    report = ImportReport(
        path=path, format=fmt, lines=0, created=0, duplicates=0, backfill_run=backfill_run
    )
    with _collector_paused(), sessions() as session:
        source = registry.source_by_code(session, source_code)
        run = None if backfill_run is None else backfill.scope(session, backfill_run, source.id)
        rulebook = store.in_force(session, now).rulebook
        with bulk_load_cache(session):
            for batch, records in _parsed_ahead(read_lines(path, fmt, batch_size=chunk), chunk):
                planned = ledger.plan_records(
                    session, source=source, records=records, rulebook=rulebook, at=now, backfill=run
                )
                # Stored now (in this transaction) so later chunks see these source_refs.
                ledger.store_planned(session, planned)
                session.flush()
                _tally(report, batch, [plan.result for plan in planned])
                if progress is not None:
                    progress(report.lines)
        if report.errors:
            session.rollback()
        else:
            if run is not None:
                ledger.finish_backfill(session, run, at=now)
                report.exempted = run.exempted
            session.commit()
            report.stored = True
    report.seconds = time.perf_counter() - started
    return report
