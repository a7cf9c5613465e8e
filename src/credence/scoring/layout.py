"""The batch layout: the Parquet files the columnar and Spark engines score, as
``credence export`` writes them from the ledger and ``credence lab generate`` draws them::

    DIR/manifest.json                 an export's: instant, parts, editions, log state
    DIR/population.json               a generated population's: seed, instant, parts
    DIR/subjects/part-00000.parquet   subject_id, kind, region (an export adds public_id)
    DIR/records/part-00000.parquet    subject_id, record_type, occurred_at, received_at,
                                      quantity, ended_at (an export adds source, ended_by)
    DIR/editions/<sha256>.toml        an export's rulebook editions, by content hash
    DIR/aliases.parquet               an export's merges, if the ledger has any:
                                      alias_subject_id, into_subject_id, merged_at,
                                      ended_at
    DIR/cadences.parquet              an export's declared cadences, if any: source,
                                      record_type, cadence_days, grace_days,
                                      declared_at, order
    DIR/receipts.parquet              with them: each declared source and type's
                                      distinct receipt instants (source, record_type,
                                      received_at)
    OUT/scores/part-00000.parquet     a batch run's scores, one file per part
    OUT/run.json                      the run: instant, rulebook applied, input's log state

Part ``k`` of ``records`` holds only records of the subjects of part ``k`` of
``subjects``, whose ``subject_id`` values are one dense, contiguous range. Instants are
int64 microseconds since the Unix epoch (UTC); ``quantity`` is NaN for a record type
without one; ``ended_at`` is null unless the record's effect ends (a retraction, a
dispute's outcome or lapse, a repair: the earliest).

A merge of the identity authority (:mod:`credence.ledger.identities`) is a row of
``aliases``: from ``merged_at`` until ``ended_at`` (null while it lasts) the records of
subject ``alias_subject_id`` are read into the file of ``into_subject_id`` (both the
layout's subject ids). The engines read it as of the instant they score
(:func:`aliases_at`): one file, one score for the two.

Outages are not behaviour: an export's ``cadences`` (every ``source_cadences`` row) and
``receipts`` (when each declared source and type reported, held and released records
alike) let the engines tell which sources were in outage as of the instant they score,
by the rule of :mod:`credence.ledger.freshness` itself (:func:`outages_at`), and freeze
their records' age as :mod:`credence.scoring.counting` says (:func:`freezes_at`).

This module is the one place that names the files, reads an input's instant and its
editions, and writes parts atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from credence.clock import ensure_utc, from_micros, to_micros
from credence.ledger import freshness
from credence.rulebook.loader import content_hash, default_rulebook, default_text, load_text
from credence.rulebook.model import Rulebook
from credence.rulebook.store import Edition, choose, edition_of
from credence.scoring import counting

SUBJECTS_DIR = "subjects"
RECORDS_DIR = "records"
SCORES_DIR = "scores"
EDITIONS_DIR = "editions"
#: An export's merges (absent when the ledger has none).
ALIASES = "aliases.parquet"
#: An export's declared cadences and its declared types' receipts (absent when no
#: source declared a cadence).
CADENCES = "cadences.parquet"
RECEIPTS = "receipts.parquet"
#: An export's manifest (:mod:`credence.export`).
MANIFEST = "manifest.json"
#: A generated population's manifest (:mod:`credence.lab.population`).
POPULATION_MANIFEST = "population.json"
#: Present while an export rewrites files (and left by one that was interrupted): the
#: files are then a mix of two states, and the engines refuse them.
WRITING = ".export-in-progress"
#: Held by the export writing a directory (one at a time).
LOCK = ".export.lock"
#: What a batch run wrote: its instant, rulebook, input and summary.
RUN = "run.json"
#: What an export's manifest says it is.
EXPORT_FORMAT = "credence-export/1"

#: Columns of a records part the engines read (others are ignored).
RECORD_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "record_type",
    "occurred_at",
    "received_at",
    "quantity",
    "ended_at",
)
#: Columns that only select records; a row group whose statistics show they select
#: everything is read without them.
SELECTION_COLUMNS = ("received_at", "ended_at")

#: Parquet layout of subjects and records parts. Sorted subject ids delta-encode to
#: almost nothing and record types are dictionary codes; instants are near-random bits
#: that no codec shrinks. Pages are left uncompressed: LZ4 would save ~28 % of disk
#: (mostly the NaN quantities) but cost ~20 % of the scorer's read time, and a part is
#: written once and read often. Statistics go where a reader uses them: the subject
#: range from the footer; receipts and ends to skip columns that exclude nothing.
COMPRESSION = "none"
#: Records per Parquet row group: a reader's unit of work and of column pruning; small
#: enough to decode into the cache, large enough that per-group overhead is noise.
ROW_GROUP_RECORDS = 1 << 18
_STATISTICS = ("subject_id", "received_at", "ended_at")


#: Columns of :data:`ALIASES`: subjects by the layout's ids, instants in microseconds.
ALIAS_SCHEMA = pa.schema(
    [
        pa.field("alias_subject_id", pa.int64(), nullable=False),
        pa.field("into_subject_id", pa.int64(), nullable=False),
        pa.field("merged_at", pa.int64(), nullable=False),
        pa.field("ended_at", pa.int64(), nullable=True),
    ]
)


#: Columns of :data:`CADENCES`: one row of ``source_cadences`` each; ``order`` ranks the
#: rows as the store does (by declaration instant, then row).
CADENCE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("record_type", pa.string(), nullable=False),
        pa.field("cadence_days", pa.int32(), nullable=False),
        pa.field("grace_days", pa.int32(), nullable=False),
        pa.field("declared_at", pa.int64(), nullable=False),
        pa.field("order", pa.int64(), nullable=False),
    ]
)
#: Columns of :data:`RECEIPTS`: each distinct instant a declared source and type
#: reported, in microseconds.
RECEIPT_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("record_type", pa.string(), nullable=False),
        pa.field("received_at", pa.int64(), nullable=False),
    ]
)


def outages_at(input_dir: Path, at: datetime) -> dict[str, datetime]:
    """The sources in outage at ``at``, by code, with when their outage began: the rule
    of :mod:`credence.ledger.freshness` (:func:`~credence.ledger.freshness.in_force`,
    :func:`~credence.ledger.freshness.outages_of`) over an export's :data:`CADENCES`
    and :data:`RECEIPTS`; empty for files without them."""
    path = input_dir / CADENCES
    if not path.exists():
        return {}
    at = ensure_utc(at)
    cadences = pq.read_table(path, columns=CADENCE_SCHEMA.names).to_pylist()
    codes = sorted({row["source"] for row in cadences})
    number = {code: i for i, code in enumerate(codes)}
    rows = [
        freshness.Declaration(
            number[row["source"]],
            row["record_type"],
            row["cadence_days"],
            row["grace_days"],
            from_micros(row["declared_at"]),
            row["order"],
        )
        for row in cadences
    ]
    declared = freshness.in_force(rows, at)
    receipts = _receipts(input_dir / RECEIPTS)
    at_us = to_micros(at)

    def last_report(source: int, record_type: str) -> datetime | None:
        instants = receipts.get((codes[source], record_type))
        if instants is None:
            return None
        k = int(np.searchsorted(instants, at_us, side="right"))
        return from_micros(int(instants[k - 1])) if k else None

    since = freshness.outages_of(declared, last_report, at)
    return {codes[s]: began for s, began in since.items()}


def _receipts(path: Path) -> dict[tuple[str, str], npt.NDArray[np.int64]]:
    """Each source and type's receipt instants, sorted."""
    if not path.exists():
        return {}
    table = pq.read_table(path, columns=RECEIPT_SCHEMA.names)
    sources = table.column("source").to_pylist()
    types = table.column("record_type").to_pylist()
    instants = np.asarray(table.column("received_at").to_numpy(), dtype=np.int64)
    grouped: dict[tuple[str, str], list[int]] = {}
    for k, key in enumerate(zip(sources, types, strict=True)):
        grouped.setdefault(key, []).append(k)
    return {key: np.sort(instants[np.array(at, dtype=np.int64)]) for key, at in grouped.items()}


def freezes_at(input_dir: Path, at: datetime, book: Rulebook) -> dict[str, tuple[int, int]]:
    """The freeze interval (:func:`credence.scoring.counting.freeze`, microseconds) of
    the records of each source in outage at ``at`` (:func:`outages_at`), by code, under
    ``book``; empty when none is in outage or ``book`` never freezes."""
    max_days = counting.max_freeze_days(book)
    if max_days is None:
        return {}
    at_us = to_micros(at)
    out = {}
    for code, since in outages_at(input_dir, at).items():
        start, end = counting.freeze(at_us, to_micros(since), max_days)
        if end > start:
            out[code] = (start, end)
    return out


def aliases_at(input_dir: Path, at_us: int) -> dict[int, int]:
    """The merges in force at ``at_us`` (merged at or before it, not ended by then):
    alias subject id -> the subject whose file it is read into, by the layout's ids.
    Empty for files without :data:`ALIASES` (a ledger never merged, a generated
    population)."""
    path = input_dir / ALIASES
    if not path.exists():
        return {}
    table = pq.read_table(path, columns=ALIAS_SCHEMA.names)
    never = int(np.iinfo(np.int64).max)  # an alias not ended
    column = {
        name: np.array(
            [never if v is None else v for v in table.column(name).to_pylist()], dtype=np.int64
        )
        for name in ALIAS_SCHEMA.names
    }
    live = (column["merged_at"] <= at_us) & (column["ended_at"] > at_us)
    alias, into = column["alias_subject_id"][live], column["into_subject_id"][live]
    return dict(zip(alias.tolist(), into.tolist(), strict=True))


def part_name(index: int) -> str:
    """File name of part ``index`` (the same in every directory of a layout)."""
    return f"part-{index:05d}.parquet"


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """Writer options of a subjects or records part with ``schema``."""
    return {
        "compression": COMPRESSION,
        "use_dictionary": [f.name for f in schema if pa.types.is_dictionary(f.type)],
        "column_encoding": {"subject_id": "DELTA_BINARY_PACKED"},
        "write_statistics": [c for c in _STATISTICS if c in schema.names],
    }


def check_complete(input_dir: Path) -> None:
    """Refuse (:class:`ValueError`) files an export is writing, or left half-written."""
    if (input_dir / WRITING).exists():
        raise ValueError(
            "an export is writing these files, or was interrupted while writing them: "
            "run `credence export` to this directory again before scoring it"
        )


def read_manifest(input_dir: Path) -> dict[str, Any] | None:
    """The manifest of ``input_dir`` (an export's, else a generated population's), if
    it has one."""
    for name in (MANIFEST, POPULATION_MANIFEST):
        path = input_dir / name
        if path.exists():
            try:
                found = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"{name} is not readable JSON: {exc}") from None
            if not isinstance(found, dict):
                raise ValueError(f"{name} is not a JSON object")
            return found
    return None


def instant_of(input_dir: Path) -> datetime | None:
    """The instant the files describe (an export's ``as_of``, a population's ``now``)."""
    manifest = read_manifest(input_dir)
    if manifest is None:
        return None
    when = manifest.get("as_of", manifest.get("now"))
    return ensure_utc(datetime.fromisoformat(when)) if isinstance(when, str) else None


def editions_of(input_dir: Path) -> tuple[Edition, ...]:
    """The rulebook editions an export carries, oldest first, each checked against its
    content hash (:class:`~credence.rulebook.errors.RulebookTampered` otherwise); empty
    for a generated population."""
    manifest = read_manifest(input_dir) or {}
    listed = manifest.get("editions") or []
    editions = []
    for entry in listed:
        digest = str(entry["content_hash"])
        text = (input_dir / EDITIONS_DIR / f"{digest}.toml").read_text(encoding="utf-8")
        published = ensure_utc(datetime.fromisoformat(str(entry["published_at"])))
        editions.append(edition_of(str(entry["version"]), digest, published, text))
    return tuple(editions)


def edition_in_force(input_dir: Path, at: datetime) -> Edition | None:
    """The edition an export carries that was in force at ``at`` (the last one published
    by then); None for files that carry no editions (a generated population)."""
    editions = editions_of(input_dir)
    return choose(editions, at) if editions else None


@dataclass(frozen=True)
class Applied:
    """The rulebook a batch run applies, and why that one."""

    rulebook: Rulebook
    version: str
    content_hash: str
    #: How it was chosen, in words, for the run's output.
    chosen: str

    def as_json(self) -> dict[str, str]:
        return {"version": self.version, "content_hash": self.content_hash, "chosen": self.chosen}


def applicable(input_dir: Path, at: datetime, choice: str | None = None) -> Applied:
    """The rulebook to score ``input_dir`` with as of ``at``.

    Without ``choice``: the edition the files carry that was in force at ``at``, or the
    built-in default for files that carry none (a generated population). ``choice`` is
    a rulebook file (loaded and checked as any edition is, red lines included) or a
    version the files carry (or the built-in default's). Raises :class:`ValueError`
    naming the versions there are when ``choice`` is neither.
    """
    if choice is None:
        edition = edition_in_force(input_dir, at)
        if edition is not None:
            return _applied(edition, f"in force at {at.isoformat()}")
        return _default("the files carry no editions")
    path = Path(choice)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        book = load_text(text, origin=path.name)
        return Applied(book, book.version, content_hash(text), f"from the file {path.name}")
    editions = editions_of(input_dir)
    for edition in editions:
        if edition.version == choice:
            return _applied(edition, "named by --rulebook")
    if choice == default_rulebook().version:
        return _default("named by --rulebook")
    versions = ", ".join(
        [e.version for e in editions] or [f"{default_rulebook().version} (built in)"]
    )
    raise ValueError(
        f"--rulebook: no file {choice!r} and no edition of that version here ({versions})"
    )


def _applied(edition: Edition, chosen: str) -> Applied:
    return Applied(edition.rulebook, edition.version, edition.content_hash, chosen)


def _default(why: str) -> Applied:
    text = default_text()
    book = default_rulebook()
    return Applied(book, book.version, content_hash(text), f"the built-in default ({why})")


def write_run(out_dir: Path, input_dir: Path, applied: Applied, summary: dict[str, Any]) -> Path:
    """Write ``out_dir/run.json``: what a batch run scored (the input's log state, for an
    export), as of when, with which rulebook, and its summary."""
    manifest = read_manifest(input_dir) or {}
    record = {
        **summary,
        "rulebook": applied.as_json(),
        "input": {"format": manifest.get("format"), "log": manifest.get("log")},
    }
    path = out_dir / RUN
    write_atomically(path, (json.dumps(record, indent=2, default=str) + "\n").encode())
    return path


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path: Path, data: bytes | Sequence[bytes]) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one,
    never a part of it: a temporary file in the same directory, synced, renamed over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in [data] if isinstance(data, bytes) else data:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
