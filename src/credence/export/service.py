"""``credence export``: the ledger as the batch layout, tied to a signed checkpoint.

:func:`export_ledger` reads the store in one snapshot (SQLite: one read transaction
of its WAL; PostgreSQL: ``REPEATABLE READ``) and writes, under ``out_dir``, the layout
of :mod:`credence.scoring.layout`:

* ``subjects/part-k``: ``subject_id`` (the export's dense number of the subject: its
  rank by the store's id, so new subjects only add to the last parts), ``public_id``
  (the opaque id the API shows), ``kind``, ``region``. Never an identifier or a name.
* ``records/part-k``: every record that still has content (an erased record's content
  is gone from the store, and nothing of it is exported), with its ``source`` code,
  ``record_type``, ``occurred_at``, ``received_at``, ``quantity`` and when and why its
  effect ends (``ended_at``, ``ended_by``: the earliest ending event, as the subject's
  file names it; :mod:`credence.ledger.endings` lists them: retractions, dispute
  outcomes and lapses, repairs). Expiry is the rulebook's, applied by the engines.
* ``editions/<sha256>.toml``: every published rulebook edition, so that batch scoring
  applies the edition in force at its instant.
* ``aliases.parquet``, when the ledger has merges: every merge of the identity
  authority (:mod:`credence.ledger.identities`), ended or not, by the export's subject
  numbers, with when it began and ended (``merged_at``, ``ended_at``), so that batch
  scoring reads each alias into the other file as of its instant
  (:func:`credence.scoring.layout.aliases_at`). Public ids only by number: never an
  identifier, a name or a reason.
* ``cadences.parquet`` and ``receipts.parquet``, when a source declared a cadence: every
  declaration, and when each declared source and type reported (each distinct instant,
  held records included), so that batch scoring tells which sources were in outage as
  of its instant by the ledger's own rule and freezes their records' age (outages are
  not behaviour: :func:`credence.scoring.layout.outages_at`). Source codes, types and
  instants only.
* ``manifest.json``: the instant, the parts (with each file's SHA-256), the editions,
  the aliases (how many, and the file's SHA-256), the same of the cadences and
  receipts (``watch``), and
  the log state: the export is the ledger after the first ``entries`` journal entries,
  whose tree root is ``root``; ``checkpoint`` is a signed checkpoint of the log and
  ``consistency`` the RFC 9162 proof that the exported tree is a prefix of it. A batch
  result names this state.

**Which entries.** The snapshot sees the journal up to some ``seq``; on PostgreSQL an
entry with a lower ``seq`` may still commit later. After reading, the export signs (or
reuses) a checkpoint, which waits for every append in flight, and counts the entries
up to that ``seq`` again: if one came late, the export is read again (only changed parts
are rewritten), so the state it names is always a prefix of the log.

**Re-running** rewrites only the parts whose bytes differ from the files already there
(each part is built in memory and compared by hash with the file the previous manifest
lists and the file on disk), and removes parts and editions no longer in the ledger.
Every file is replaced atomically; the manifest is written last.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import BigInteger, Connection, Engine, func, select, type_coerce

import credence.disputes  # noqa: F401 - the dispute and repair endings, registered
from credence.context import Context
from credence.errors import Conflict, InvalidInput
from credence.export.scan import (
    Endings,
    PartRecords,
    positions,
    scan_endings,
    scan_records,
    scan_watch,
)
from credence.journal import JournalEntry
from credence.ledger import endings, identities
from credence.ledger.tables import Source, Subject
from credence.rulebook.store import Edition, edition_of
from credence.rulebook.tables import PublishedRulebook
from credence.scoring import layout
from credence.scoring.columnar import arrow, strings
from credence.translog import merkle
from credence.translog.checkpoints import Checkpoint, signed_now
from credence.translog.keys import LogSigner, signer_from_settings
from credence.translog.tree import tree_at

#: Subjects per part: a part's records (about 20 per subject) fit in memory a few times
#: over, and a change rewrites one part of this size.
PART_SUBJECTS = 1 << 16
#: How many times the export reads the store again when an entry committed late.
ATTEMPTS = 3

#: ``progress(parts_done, parts_total)``.
Progress = Callable[[int, int], None]

SUBJECT_SCHEMA = pa.schema(
    [
        pa.field("subject_id", pa.int64(), nullable=False),
        pa.field("public_id", pa.string(), nullable=False),
        pa.field("kind", pa.dictionary(pa.int8(), pa.string()), nullable=False),
        pa.field("region", pa.dictionary(pa.int16(), pa.string()), nullable=True),
    ]
)
RECORD_SCHEMA = pa.schema(
    [
        pa.field("subject_id", pa.int64(), nullable=False),
        pa.field("record_type", pa.dictionary(pa.int16(), pa.string()), nullable=False),
        pa.field("source", pa.dictionary(pa.int16(), pa.string()), nullable=False),
        pa.field("occurred_at", pa.int64(), nullable=False),
        pa.field("received_at", pa.int64(), nullable=False),
        pa.field("quantity", pa.float64(), nullable=False),
        pa.field("ended_at", pa.int64(), nullable=True),
        pa.field("ended_by", pa.dictionary(pa.int8(), pa.string()), nullable=True),
    ]
)


@dataclass(frozen=True)
class LogState:
    """The log state an export is: the ledger after its first ``entries`` entries."""

    entries: int
    #: The ``seq`` of the last of them (None for an empty journal).
    last_seq: int | None
    #: The root of the tree of those entries.
    root: bytes
    #: A signed checkpoint of the log, of ``entries`` leaves or more.
    checkpoint: Checkpoint
    #: The proof that the tree of ``entries`` leaves is a prefix of the checkpoint's.
    consistency: tuple[bytes, ...]

    def as_json(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "entries": self.entries,
            "last_seq": self.last_seq,
            "root": self.root.hex(),
            "checkpoint": {
                "origin": cp.origin,
                "tree_size": cp.tree_size,
                "root": cp.root_hash.hex(),
                "key_id": cp.key_id,
                "signed_note": cp.signed_note,
            },
            "consistency": [h.hex() for h in self.consistency],
        }


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    out_dir: Path
    as_of: datetime
    subjects: int
    records: int
    parts: int
    #: Names of the parts whose files were (re)written; the others were already there.
    written: tuple[str, ...]
    editions: int
    log: LogState
    seconds: float
    #: How many times the store was read: more than once when an entry committed late.
    attempts: int = 1


@dataclass(frozen=True)
class _Part:
    name: str
    first_subject: int
    subjects: int
    records: int
    subjects_sha256: str
    records_sha256: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "first_subject": self.first_subject,
            "subjects": self.subjects,
            "records": self.records,
            "subjects_sha256": self.subjects_sha256,
            "records_sha256": self.records_sha256,
        }


@dataclass(frozen=True)
class _Snapshot:
    head: int | None
    entries: int
    parts: tuple[_Part, ...]
    written: tuple[str, ...]
    editions: tuple[Edition, ...]
    #: The aliases file's bytes and rows (None and 0: the ledger has no merge).
    aliases: bytes | None = None
    alias_count: int = 0
    #: The cadences and receipts files' bytes and rows (None and 0: no declaration).
    cadences: bytes | None = None
    cadence_count: int = 0
    receipts: bytes | None = None
    receipt_count: int = 0


def export_ledger(
    ctx: Context,
    out_dir: Path,
    *,
    part_subjects: int = PART_SUBJECTS,
    progress: Progress | None = None,
) -> ExportSummary:
    """Write the ledger under ``out_dir`` as the batch layout (see the module
    docstring); parts already there with the same bytes are left as they are."""
    if part_subjects < 1:
        raise InvalidInput("subjects per part must be 1 or more", code="invalid_part_size")
    started = time.perf_counter()
    signer = signer_from_settings(ctx.settings)
    with _claim(out_dir) as marker:
        known = _listed_parts(out_dir)
        written: set[str] = set()
        attempts = 0
        while attempts < ATTEMPTS:
            attempts += 1
            at = ctx.clock.now()
            with _snapshot(ctx.engine) as conn:
                snap = _export_snapshot(conn, out_dir, known, part_subjects, marker, progress)
            written |= set(snap.written)
            state = _log_state(ctx, signer, snap, at)
            if state is not None:
                break
            known = {p.name: p.as_json() for p in snap.parts}
        if state is None:
            raise Conflict(
                f"entries kept committing below the export's snapshot {ATTEMPTS} times; "
                "nothing names a log state: run the export again",
                code="export_raced",
            )
        _write_editions(out_dir, snap.editions, marker)
        aliases_sha256 = _write_optional(out_dir / layout.ALIASES, snap.aliases, marker)
        cadences_sha256 = _write_optional(out_dir / layout.CADENCES, snap.cadences, marker)
        receipts_sha256 = _write_optional(out_dir / layout.RECEIPTS, snap.receipts, marker)
        subjects = sum(p.subjects for p in snap.parts)
        records = sum(p.records for p in snap.parts)
        manifest = {
            "format": layout.EXPORT_FORMAT,
            "as_of": at.isoformat(),
            "subjects": subjects,
            "records": records,
            "parts": [p.as_json() for p in snap.parts],
            "editions": [
                {
                    "version": e.version,
                    "published_at": e.published_at.isoformat(),
                    "content_hash": e.content_hash,
                }
                for e in snap.editions
            ],
            "aliases": {"count": snap.alias_count, "sha256": aliases_sha256},
            "watch": {
                "cadences": snap.cadence_count,
                "cadences_sha256": cadences_sha256,
                "receipts": snap.receipt_count,
                "receipts_sha256": receipts_sha256,
            },
            "log": state.as_json(),
        }
        parts = {p.name for p in snap.parts}
        _remove_stale(out_dir, parts, {e.content_hash for e in snap.editions}, marker)
        layout.write_atomically(
            out_dir / layout.MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode()
        )
        marker.done()
    return ExportSummary(
        out_dir=out_dir,
        as_of=at,
        subjects=subjects,
        records=records,
        parts=len(snap.parts),
        written=tuple(sorted(written & parts)),
        editions=len(snap.editions),
        log=state,
        seconds=time.perf_counter() - started,
        attempts=attempts,
    )


# --- the snapshot ------------------------------------------------------------------------


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one state of the store (rolled back at the end:
    the export writes nothing to it)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # The driver opens no transaction for reads: BEGIN makes the reads one WAL
            # snapshot (writers go on; they are not seen).
            conn.exec_driver_sql("BEGIN")
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()


def _export_snapshot(
    conn: Connection,
    out_dir: Path,
    known: dict[str, dict[str, Any]],
    part_subjects: int,
    marker: _Marker,
    progress: Progress | None,
) -> _Snapshot:
    head, entries = conn.execute(select(func.max(JournalEntry.seq), func.count())).one()
    subjects = conn.execute(
        select(Subject.id, Subject.public_id, Subject.kind, Subject.region).order_by(Subject.id)
    ).all()
    ids = np.array([s[0] for s in subjects], dtype=np.int64)
    sources = _source_codes(conn)
    editions = _editions(conn)
    codes = [rt.code for e in editions for rt in e.rulebook.record_types]
    scanned = scan_records(conn, ids, part_subjects, codes)
    ends = scan_endings(conn)
    aliases = _alias_table(conn, ids)
    cadences, receipts = scan_watch(conn)
    n_parts = len(scanned.parts)
    parts: list[_Part] = []
    written: list[str] = []
    for k in range(n_parts):
        first, end = k * part_subjects, min((k + 1) * part_subjects, len(subjects))
        name = layout.part_name(k)
        subject_bytes = _parquet(_subject_table(subjects[first:end], first))
        record_table = _record_table(scanned.parts[k], scanned.types, sources, ends)
        scanned.parts[k] = PartRecords()  # its columns are in the table now
        record_bytes = _parquet(record_table)
        part = _Part(
            name,
            first,
            end - first,
            record_table.num_rows,
            hashlib.sha256(subject_bytes).hexdigest(),
            hashlib.sha256(record_bytes).hexdigest(),
        )
        previous = known.get(name, {})
        fresh = [
            _keep_or_write(out_dir / layout.SUBJECTS_DIR / name, subject_bytes, previous, marker),
            _keep_or_write(out_dir / layout.RECORDS_DIR / name, record_bytes, previous, marker),
        ]
        if any(fresh):
            written.append(name)
        parts.append(part)
        if progress is not None:
            progress(k + 1, n_parts)
    return _Snapshot(
        head,
        int(entries),
        tuple(parts),
        tuple(written),
        editions,
        _small_file(aliases),
        aliases.num_rows,
        _small_file(cadences),
        cadences.num_rows,
        _small_file(receipts) if cadences.num_rows else None,
        receipts.num_rows,
    )


def _small_file(table: pa.Table) -> bytes | None:
    """A small table's Parquet bytes; None for no rows (no file)."""
    if not table.num_rows:
        return None
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=layout.COMPRESSION)
    return bytes(sink.getvalue())


def _alias_table(conn: Connection, ids: npt.NDArray[np.int64]) -> pa.Table:
    """Every merge (:func:`credence.ledger.identities.alias_rows`), its subjects by
    their export numbers (ranks among ``ids``), ordered by alias and start."""
    merges = identities.alias_rows().subquery()
    raw = BigInteger()
    rows = conn.execute(
        select(
            merges.c.alias_subject_id,
            merges.c.into_subject_id,
            type_coerce(merges.c.merged_at, raw),
            type_coerce(merges.c.ended_at, raw),
        )
    ).all()
    if not rows:
        return layout.ALIAS_SCHEMA.empty_table()
    rank = positions(ids)
    alias = rank(np.array([r[0] for r in rows], dtype=np.int64))
    into = rank(np.array([r[1] for r in rows], dtype=np.int64))
    merged = np.array([r[2] for r in rows], dtype=np.int64)
    ended = np.array([0 if r[3] is None else r[3] for r in rows], dtype=np.int64)
    order = np.lexsort((merged, alias))
    return pa.Table.from_arrays(
        [
            arrow(alias[order]),
            arrow(into[order]),
            arrow(merged[order]),
            arrow(ended[order], valid=np.array([r[3] is not None for r in rows])[order]),
        ],
        schema=layout.ALIAS_SCHEMA,
    )


def _editions(conn: Connection) -> tuple[Edition, ...]:
    """Every published edition, oldest first, each checked against its hash (a tampered
    edition stops the export)."""
    rows = conn.execute(
        select(
            PublishedRulebook.version,
            PublishedRulebook.content_hash,
            PublishedRulebook.published_at,
            PublishedRulebook.text,
        ).order_by(PublishedRulebook.published_at, PublishedRulebook.id)
    ).all()
    return tuple(edition_of(*row) for row in rows)


def _subject_table(rows: Sequence[Any], first: int) -> pa.Table:
    n = len(rows)
    return pa.Table.from_arrays(
        [
            arrow(np.arange(first, first + n, dtype=np.int64)),
            strings([r[1] for r in rows]),
            _dictionary([r[2] for r in rows], pa.int8()),
            _dictionary([r[3] for r in rows], pa.int16()),
        ],
        schema=SUBJECT_SCHEMA,
    )


def _source_codes(conn: Connection) -> list[str]:
    """Every source's code, at the position of its id."""
    rows = conn.execute(select(Source.id, Source.code)).all()
    codes = [""] * (max((r[0] for r in rows), default=0) + 1)
    for source_id, code in rows:
        codes[source_id] = code
    return codes


def _record_table(
    part: PartRecords, types: Sequence[str], sources: Sequence[str], ends: Endings
) -> pa.Table:
    """A part's records, ordered by subject then by the store's record id, with their
    endings."""
    columns = part.columns()
    if columns is None:
        return RECORD_SCHEMA.empty_table()
    order = np.lexsort((columns["record_id"], columns["rank"]))
    ended_at, cause = ends.of(columns["record_id"][order])
    ended = cause >= 0
    return pa.Table.from_arrays(
        [
            arrow(columns["rank"][order]),
            _coded(columns["type_index"][order], types, pa.int16()),
            _coded(columns["source_id"][order], sources, pa.int16()),
            arrow(columns["occurred"][order]),
            arrow(columns["received"][order]),
            arrow(columns["quantity"][order]),
            arrow(ended_at, valid=ended),
            pa.DictionaryArray.from_arrays(
                arrow(cause.astype(np.int8), valid=ended), strings(endings.CAUSE_ORDER)
            ),
        ],
        schema=RECORD_SCHEMA,
    )


def _coded(
    index: npt.NDArray[np.int64], names: Sequence[str], index_type: pa.DataType
) -> pa.DictionaryArray:
    """``names[index]`` dictionary-encoded (see :func:`_encoded`)."""
    present = np.unique(index)
    labels = [names[i] for i in present]
    remap = np.zeros(len(names) or 1, dtype=np.int64)
    remap[present] = np.arange(present.size)
    return _encoded(remap[index], labels, index_type)


def _dictionary(values: Sequence[str | None], index_type: pa.DataType) -> pa.DictionaryArray:
    """Strings dictionary-encoded, null for None (see :func:`_encoded`)."""
    labels = list(dict.fromkeys(v for v in values if v is not None))
    position = {label: i for i, label in enumerate(labels)}
    index = np.fromiter(
        (-1 if v is None else position[v] for v in values), dtype=np.int64, count=len(values)
    )
    return _encoded(index, labels, index_type)


def _encoded(
    index: npt.NDArray[np.int64], labels: Sequence[str], index_type: pa.DataType
) -> pa.DictionaryArray:
    """``labels[index]`` (null where ``index`` is -1) as a dictionary array whose
    dictionary is ``labels`` sorted: the same values give the same bytes whatever order
    the store returned the rows in."""
    by_label = sorted(range(len(labels)), key=labels.__getitem__)
    rank = np.zeros(len(labels) or 1, dtype=np.int64)
    rank[by_label] = np.arange(len(labels))
    valid = index >= 0
    codes = np.where(valid, rank[np.where(valid, index, 0)], 0)
    return pa.DictionaryArray.from_arrays(
        arrow(codes.astype(_INDEX_TYPES[index_type]), valid=valid),
        strings([labels[i] for i in by_label]),
    )


_INDEX_TYPES: dict[pa.DataType, type[np.generic]] = {pa.int8(): np.int8, pa.int16(): np.int16}


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        row_group_size=layout.ROW_GROUP_RECORDS,
        **layout.parquet_options(table.schema),
    )
    return bytes(sink.getvalue())


# --- files -------------------------------------------------------------------------------


def _listed_parts(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The parts the previous export's manifest lists, by name (none if there is no
    manifest, or it is not an export's)."""
    try:
        manifest = layout.read_manifest(out_dir)
    except ValueError:
        return {}
    if manifest is None or manifest.get("format") != layout.EXPORT_FORMAT:
        return {}
    return {str(p["name"]): p for p in manifest.get("parts", []) if isinstance(p, dict)}


def _keep_or_write(path: Path, data: bytes, previous: dict[str, Any], marker: _Marker) -> bool:
    """Write ``data`` to ``path`` unless the file there already holds exactly it (as
    the previous manifest's entry for its part says and its bytes confirm); True if
    written."""
    digest = hashlib.sha256(data).hexdigest()
    listed = previous.get(f"{path.parent.name}_sha256")
    if listed == digest and path.exists() and layout.sha256_file(path) == digest:
        return False
    marker.mark()
    layout.write_atomically(path, data)
    return True


def _write_editions(out_dir: Path, editions: Sequence[Edition], marker: _Marker) -> None:
    for edition in editions:
        path = out_dir / layout.EDITIONS_DIR / f"{edition.content_hash}.toml"
        data = edition.text.encode("utf-8")
        if not path.exists() or path.read_bytes() != data:
            marker.mark()
            layout.write_atomically(path, data)


def _write_optional(path: Path, data: bytes | None, marker: _Marker) -> str | None:
    """Write a file the ledger may have nothing for (aliases, cadences, receipts) unless
    it holds these bytes already, or remove it when there is nothing; the SHA-256 of
    what is there."""
    if data is None:
        if path.exists():
            marker.mark()
            path.unlink()
        return None
    digest = hashlib.sha256(data).hexdigest()
    if not path.exists() or layout.sha256_file(path) != digest:
        marker.mark()
        layout.write_atomically(path, data)
    return digest


def _remove_stale(out_dir: Path, parts: set[str], editions: set[str], marker: _Marker) -> None:
    """Remove part files and editions that the new manifest does not list."""
    stale = [
        path
        for directory in (layout.SUBJECTS_DIR, layout.RECORDS_DIR)
        for path in (out_dir / directory).glob("part-*.parquet")
        if path.name not in parts
    ]
    stale += [p for p in (out_dir / layout.EDITIONS_DIR).glob("*.toml") if p.stem not in editions]
    for path in stale:
        marker.mark()
        path.unlink()


#: What an export directory holds (anything else there is not an export's).
_OURS = frozenset(
    {
        layout.MANIFEST,
        layout.SUBJECTS_DIR,
        layout.RECORDS_DIR,
        layout.EDITIONS_DIR,
        layout.ALIASES,
        layout.CADENCES,
        layout.RECEIPTS,
        layout.WRITING,
        layout.LOCK,
    }
)


class _Marker:
    """Marks the directory as being written (:data:`~credence.scoring.layout.WRITING`)
    from the first file changed until the manifest is written: the engines refuse the
    files meanwhile, and after an interruption, until an export completes."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / layout.WRITING
        self.marked = self.path.exists()

    def mark(self) -> None:
        if not self.marked:
            layout.write_atomically(self.path, b"")
            self.marked = True

    def done(self) -> None:
        self.path.unlink(missing_ok=True)
        self.marked = False


@contextmanager
def _claim(out_dir: Path) -> Iterator[_Marker]:
    """The export's hold on ``out_dir``: refused if it holds files that are not an
    export's (so an export never deletes anything else) or another export holds it;
    temporary files an interrupted export left are removed."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput(f"--out {out_dir.name!r} is a file, not a directory", code="invalid_out")
    out_dir.mkdir(parents=True, exist_ok=True)
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in _OURS and not _temporary(p))
    if foreign:
        raise InvalidInput(
            f"--out holds files that are not an export's ({', '.join(foreign[:3])}"
            f"{', …' if len(foreign) > 3 else ''}): choose an empty directory or a "
            "previous export's",
            code="invalid_out",
        )
    with (out_dir / layout.LOCK).open("a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(
                "another export is writing this directory", code="export_in_progress"
            ) from None
        for directory in (out_dir, *(out_dir / d for d in _OURS)):
            if directory.is_dir():
                for path in directory.iterdir():
                    if _temporary(path):
                        path.unlink()
        yield _Marker(out_dir)


def _temporary(path: Path) -> bool:
    """A temporary file of :func:`~credence.scoring.layout.write_atomically`."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


# --- the log state -----------------------------------------------------------------------


def _log_state(ctx: Context, signer: LogSigner, snap: _Snapshot, at: datetime) -> LogState | None:
    """The log state the snapshot is, with a signed checkpoint that covers it; None if
    an entry at or below the snapshot's last ``seq`` committed after it was read."""
    checkpoint = signed_now(ctx.engine, ctx.sessions, signer=signer, at=at)
    with ctx.sessions() as session:
        if snap.head is not None:
            now = session.scalar(
                select(func.count()).select_from(JournalEntry).where(JournalEntry.seq <= snap.head)
            )
            if now != snap.entries:
                return None
        tree = tree_at(session, checkpoint.tree_size)
        if tree.root != checkpoint.root_hash:
            raise Conflict(
                "the log no longer matches its latest signed checkpoint: run "
                "`credence log verify`; nothing was tied to it",
                code="log_inconsistent",
            )
        root = tree.root_at(snap.entries) if snap.entries else merkle.EMPTY_ROOT
        proof = tree.consistency_proof(snap.entries) if snap.entries > 0 else []
    return LogState(snap.entries, snap.head, root, checkpoint, tuple(proof))
