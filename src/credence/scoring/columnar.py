"""Scoring a whole population from Parquet files, in bounded memory, at numpy speed.

The input is a directory laid out as :mod:`credence.lab.population` writes it (or as any
exporter of the ledger would)::

    input_dir/subjects/part-00000.parquet   subject_id (dense, contiguous per part), ...
    input_dir/records/part-00000.parquet    subject_id, record_type, occurred_at,
                                            received_at, quantity, ended_at

Part ``k`` of ``records`` holds only records of the subjects of part ``k`` of
``subjects``, so a part is scored on its own: one ``(subjects in part, width)`` tally
(:func:`~credence.scoring.formula.tally`) is all the state there is. Records stream
through in Arrow record batches; each batch goes through :class:`Kernel`, which selects
the records that count (received at or before ``at``, effect not ended by ``at``, type
known to the rulebook) and hands numpy arrays to the one formula, :meth:`TypeTable.weights
<credence.scoring.formula.TypeTable.weights>`, :func:`~credence.scoring.formula.contributions`
and :func:`~credence.scoring.formula.tally`. Sub-scores, totals and tiers come from
:func:`~credence.scoring.formula.finish`.
The Spark runner (:mod:`credence.scoring.spark`) runs the same :class:`Kernel` on each
Arrow batch Spark hands it.

Output: ``out_dir/scores/part-00000.parquet`` per input part, with :data:`SCORE_SCHEMA`.

Merges (an export's ``aliases``, :func:`~credence.scoring.layout.aliases_at`) are read
as of the instant scored: the tally rows of every subject of a merged file (the subject
read into, and the aliases read into it then) are kept as the parts are scored, added up
per file once every part is done (tallies add), and that one score overwrites theirs;
the parts that hold them are written last (:class:`MergedFiles`). A population without
merges costs one look for the file.

Why it is fast: record types map to rulebook indices through a lookup table built once
per Parquet dictionary (no per-record Python), every step is a numpy pass over a batch of
a few hundred thousand records (cache-sized), columns that cannot change the answer are
not read (a row group whose statistics show every record received by ``at`` and none
ended by ``at`` skips ``received_at`` and ``ended_at``), and parts are scored on two
threads (Parquet decoding and numpy ufuncs release the GIL).
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from credence.clock import ensure_utc, from_micros, to_micros
from credence.rulebook.model import CATEGORIES, Rulebook
from credence.rulebook.store import Edition
from credence.scoring import counting, formula
from credence.scoring.formula import N_CATEGORIES, FloatArray, IntArray, TypeTable
from credence.scoring.layout import (
    RECORD_COLUMNS,
    RECORDS_DIR,
    SCORES_DIR,
    SELECTION_COLUMNS,
    SUBJECTS_DIR,
    aliases_at,
    check_complete,
    freezes_at,
)

#: ``progress(records_done, records_total)``; called from worker threads.
Progress = Callable[[int, int], None]


SUB_SCORE_COLUMNS: tuple[str, ...] = tuple(c.value for c in CATEGORIES)
#: One row per subject: the total, the four sub-scores and the tier.
SCORE_SCHEMA = pa.schema(
    [
        pa.field("subject_id", pa.int64()),
        pa.field("total", pa.float64()),
        *(pa.field(name, pa.float64()) for name in SUB_SCORE_COLUMNS),
        pa.field("tier", pa.string()),
    ]
)

#: Records per batch: large enough that per-batch Python is noise, small enough that a
#: batch's temporaries stay in the core's cache (256 k × 8 bytes = 2 MiB each).
BATCH_RECORDS = 1 << 18
#: Worker threads over parts (the machine this targets has two cores).
WORKERS = 2
#: Parquet layout of score files: floats do not compress and have no useful dictionary
#: (trying one per column costs more than writing the column); ids delta-encode; only
#: ids get statistics. The Arrow schema is not stored, so the dictionary-encoded tier
#: column reads back as plain strings, exactly as Spark's files do.
WRITE_OPTIONS: dict[str, Any] = {
    "compression": "none",
    "use_dictionary": ["tier"],
    "column_encoding": {"subject_id": "DELTA_BINARY_PACKED"},
    "write_statistics": ["subject_id"],
    "store_schema": False,
}
#: :data:`SCORE_SCHEMA` as written: the tier as dictionary codes (no string per subject).
_WRITE_SCHEMA = SCORE_SCHEMA.set(
    len(SCORE_SCHEMA) - 1, pa.field("tier", pa.dictionary(pa.int8(), pa.string()))
)

_NO_END = np.iinfo(np.int64).max

#: glibc ``mallopt`` parameters (malloc.h) and the values the scorer sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 512 << 20
_heap_tuned = False


def keep_heap() -> bool:
    """Make glibc's malloc reuse freed memory instead of returning it to the system.

    Every numpy step of the kernel allocates a batch-sized temporary (2 MiB). By default
    glibc serves blocks that size with ``mmap`` or trims them off the heap top when they
    are freed, so each new batch pays a page fault per 4 KiB again: measured, the kernel
    runs ~1.7× slower that way (1.4 M minor faults per 20 M records, against 60 k). This
    sets the mmap threshold to 32 MiB and the trim threshold to 512 MiB for the process
    (at most that much freed memory is kept). A no-op returning False off glibc.
    """
    global _heap_tuned
    if _heap_tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
    _heap_tuned = ok
    return ok


@dataclass(frozen=True)
class BatchSums:
    """The tally (:func:`~credence.scoring.formula.tally`) of one batch.

    Row ``i`` of :attr:`sums` belongs to subject ``lo + i`` when :attr:`ids` is None
    (the batch's subjects span a short range), else to subject ``ids[i]``.
    """

    lo: int
    sums: FloatArray
    ids: IntArray | None
    records: int
    counted: int

    def subject_ids(self) -> IntArray:
        if self.ids is not None:
            return self.ids
        return np.arange(self.lo, self.lo + self.sums.shape[0], dtype=np.int64)


class Kernel:
    """The per-batch scoring step shared by the local and the Spark runners.

    Holds what does not change between batches: the rulebook's :class:`TypeTable`, the
    instant, and the lookup from the last Parquet dictionary of record types to rulebook
    type numbers. Safe to share between threads.
    """

    def __init__(
        self,
        types: TypeTable,
        at_us: int,
        rule: counting.Rule | None = None,
        *,
        freezes: Mapping[str, tuple[int, int]] | None = None,
        freeze: counting.Freeze | None = None,
    ) -> None:
        self.types = types
        self.at_us = at_us
        #: The counting rule, taken when the kernel is built (Spark ships it along).
        self.counts = rule if rule is not None else counting.counts
        #: The freeze interval of each source in outage at ``at_us``, by code
        #: (:func:`~credence.scoring.layout.freezes_at`), and the freeze of
        #: :mod:`~credence.scoring.counting`, taken when the kernel is built.
        self.freezes: dict[str, tuple[int, int]] = dict(freezes or {})
        self.frozen = freeze if freeze is not None else counting.frozen
        #: Columns the kernel reads beyond :data:`RECORD_COLUMNS`: a record's source,
        #: when some source's records are frozen.
        self.extra_columns: tuple[str, ...] = ("source",) if self.freezes else ()
        self._codes = strings(types.codes)
        self._sources = strings(list(self.freezes))
        # Start and end of each frozen source's interval, then (at, at) for the others
        # (position -1: a source not found).
        self._starts = np.array([*(f[0] for f in self.freezes.values()), at_us], dtype=np.int64)
        self._ends = np.array([*(f[1] for f in self.freezes.values()), at_us], dtype=np.int64)
        self._lock = threading.Lock()
        self._dictionary: pa.Array | None = None
        self._lut: IntArray | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to Spark executors: the lock and the cached lookup stay behind.
        return {
            "types": self.types,
            "at_us": self.at_us,
            "counts": self.counts,
            "freezes": self.freezes,
            "frozen": self.frozen,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["types"],
            state["at_us"],
            state["counts"],
            freezes=state["freezes"],
            freeze=state["frozen"],
        )

    def frozen_us(self, batch: pa.RecordBatch | pa.Table, occurred: IntArray) -> IntArray | None:
        """Microseconds of each record's age its source's outage takes away (the freeze
        of :mod:`~credence.scoring.counting`); None when no source is frozen."""
        names = batch.schema.names
        if not self.freezes or "source" not in names:
            return None
        column = batch.column(names.index("source"))
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if pa.types.is_dictionary(column.type):
            lut = _index_or_unknown(pc.index_in(column.dictionary, value_set=self._sources))
            at = np.take(lut, as_numpy(column.indices))
        else:  # plain strings (Spark hands these)
            sources = (
                self._sources if column.type == pa.string() else self._sources.cast(column.type)
            )
            at = _index_or_unknown(pc.index_in(column, value_set=sources))
        frozen: IntArray = self.frozen(occurred, self._starts[at], self._ends[at])
        return frozen

    def type_index(self, column: pa.Array | pa.ChunkedArray) -> tuple[IntArray, bool]:
        """Rulebook type number of each record, and whether any may be -1 (a type the
        rulebook lacks)."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if pa.types.is_dictionary(column.type) and column.null_count:
            column = column.dictionary_decode()  # a missing type is an unknown type
        if pa.types.is_dictionary(column.type):
            indices = as_numpy(column.indices)
            lut = self._lookup(column.dictionary)
            if lut is None:  # the file numbers types as the rulebook does
                return indices.astype(np.intp), False
            return np.take(lut, indices), bool((lut < 0).any())
        # Plain strings (Spark hands these): one hash lookup per record.
        codes = self._codes if column.type == pa.string() else self._codes.cast(column.type)
        return _index_or_unknown(pc.index_in(column, value_set=codes)), True

    def _lookup(self, dictionary: pa.Array) -> IntArray | None:
        """Rulebook type number of each dictionary entry; None if they are the same."""
        with self._lock:
            if self._dictionary is not None and self._dictionary.equals(dictionary):
                return self._lut
        lut: IntArray | None = _index_or_unknown(pc.index_in(dictionary, value_set=self._codes))
        if lut is not None and np.array_equal(lut, np.arange(len(lut))):
            lut = None
        with self._lock:
            self._dictionary, self._lut = dictionary, lut
        return lut

    def dropped(
        self, batch: pa.RecordBatch | pa.Table, type_idx: IntArray, maybe_unknown: bool
    ) -> npt.NDArray[np.int64] | None:
        """Positions of the records that do not count at the kernel's instant: received
        after it, ended by it, or of a type the rulebook lacks (their ``type_idx`` is
        set to 0 so that lookups stay in range). None if every record counts.

        A missing ``received_at`` / ``ended_at`` column means every record was received
        / none has ended: the rule gets one instant for all of them (numpy broadcasts
        it), so a batch whose columns were pruned costs no column of its own.
        """
        names = batch.schema.names
        received: IntArray | int = counting.RECEIVED_BEFORE_ALL
        if "received_at" in names:
            received = as_numpy(batch.column(names.index("received_at")))
        ended: IntArray | int = counting.NOT_ENDED
        if "ended_at" in names:
            ended = _end_instants(batch.column(names.index("ended_at")))
        counts = self.counts(self.at_us, received, ended)
        found: list[npt.NDArray[np.int64]] = []
        if np.ndim(counts):
            found.append(np.flatnonzero(~counts))
        elif not counts:  # one answer for the whole batch: none counts
            found.append(np.arange(batch.num_rows, dtype=np.int64))
        if maybe_unknown:
            unknown = np.flatnonzero(type_idx < 0)
            type_idx[unknown] = 0
            found.append(unknown)
        found = [f for f in found if f.size]
        if not found:
            return None
        return np.unique(np.concatenate(found)) if len(found) > 1 else found[0]

    def sums(self, batch: pa.RecordBatch | pa.Table, *, compact: bool = False) -> BatchSums:
        """The tally (:func:`~credence.scoring.formula.tally`) of the records of
        ``batch`` that count at the kernel's instant.

        Rows cover the range of subject ids in the batch. With ``compact``, a batch whose
        ids spread over a range much longer than the batch (unsorted input) gets one row
        per distinct id instead, so memory follows the batch, not the id range.
        """
        n = batch.num_rows
        if n == 0:
            return BatchSums(0, formula.empty_tally(0, self.types), None, 0, 0)
        names = batch.schema.names
        subject = as_numpy(batch.column(names.index("subject_id")))
        type_idx, maybe_unknown = self.type_index(batch.column(names.index("record_type")))
        occurred = as_numpy(batch.column(names.index("occurred_at")))
        quantity = as_numpy(batch.column(names.index("quantity")))
        dropped = self.dropped(batch, type_idx, maybe_unknown)

        types = self.types
        age_days = counting.age_days(self.at_us, occurred, self.frozen_us(batch, occurred))
        weights = types.weights(type_idx, quantity)
        counted = n
        if dropped is not None:
            counted = n - dropped.size
            # +0.0 × a finite decay is +0.0: a record that does not count adds nothing.
            weights[dropped] = 0.0
        contrib = formula.contributions(
            weights, age_days, types.half_life[type_idx], types.retention[type_idx]
        )
        lo, hi = int(subject.min()), int(subject.max())
        span = hi - lo + 1
        if compact and span > 4 * n + 1024:
            ids, local = np.unique(subject, return_inverse=True)
            sums = formula.tally(local.astype(np.int64), type_idx, contrib, ids.size, types)
            return BatchSums(lo, sums, ids.astype(np.int64), n, counted)
        sums = formula.tally(subject - lo, type_idx, contrib, span, types)
        return BatchSums(lo, sums, None, n, counted)


def _end_instants(ended: pa.Array | pa.ChunkedArray) -> IntArray | int:
    """Each record's end instant, :data:`~credence.scoring.counting.NOT_ENDED` where
    null (not ended); that one instant alone when none has ended.

    Reads the Arrow buffers directly: the validity bitmap unpacked to bytes and the raw
    values. Converting the nullable column to numpy instead would build a float64 copy
    with NaNs, twice the passes.
    """
    if isinstance(ended, pa.ChunkedArray):
        ended = ended.combine_chunks()
    n, offset = len(ended), ended.offset
    if ended.null_count == n:
        return counting.NOT_ENDED
    bitmap, data = ended.buffers()[:2]
    values = np.frombuffer(data, dtype=np.int64, count=offset + n)[offset:]
    if bitmap is None or ended.null_count == 0:
        return values
    bits = np.frombuffer(bitmap, dtype=np.uint8)
    valid = np.unpackbits(bits, count=offset + n, bitorder="little")[offset:].view(np.bool_)
    # Values under a null slot are unspecified; the validity bits mask them out.
    return np.where(valid, values, counting.NOT_ENDED)


def _index_or_unknown(found: pa.Array | pa.ChunkedArray) -> IntArray:
    """``index_in`` results as intp, -1 where not found (null)."""
    if isinstance(found, pa.ChunkedArray):
        found = found.combine_chunks()
    n, offset = len(found), found.offset
    bitmap, data = found.buffers()[:2]
    index = np.frombuffer(data, dtype=np.int32, count=offset + n)[offset:].astype(np.intp)
    if bitmap is not None and found.null_count:
        bits = np.frombuffer(bitmap, dtype=np.uint8)
        valid = np.unpackbits(bits, count=offset + n, bitorder="little")[offset:].view(np.bool_)
        index[~valid] = -1
    return index


def arrow(values: npt.NDArray[Any], *, valid: npt.NDArray[np.bool_] | None = None) -> pa.Array:
    """An Arrow array over a 1-d numpy array of a primitive type (zero-copy when
    contiguous), null where ``valid`` is False.

    ``pa.array(ndarray)`` would do the same but first imports pandas (see
    :func:`strings`).
    """
    values = np.ascontiguousarray(values)
    arrow_type = _ARROW_TYPES[values.dtype]
    bitmap = None
    nulls = 0
    if valid is not None:
        nulls = int(valid.size - np.count_nonzero(valid))
        if nulls:
            bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        arrow_type, values.size, [bitmap, pa.py_buffer(values)], null_count=nulls
    )


def strings(values: Sequence[str]) -> pa.Array:
    """An Arrow string array of ``values``.

    Built from raw buffers: given a Python list or numpy strings, ``pa.array`` first
    asks pandas whether they are array-like, and importing pandas costs a second per
    process (CLI runs, Spark workers, benchmark subprocesses).
    """
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(encoded), buffers)


_NUMPY_TYPES: dict[pa.DataType, type[np.generic]] = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint64(): np.uint64,
    pa.float64(): np.float64,
}


_ARROW_TYPES: dict[np.dtype[Any], pa.DataType] = {np.dtype(t): a for a, t in _NUMPY_TYPES.items()}


def as_numpy(column: pa.Array | pa.ChunkedArray) -> npt.NDArray[Any]:
    """A numpy view of a primitive Arrow column without nulls (a copy otherwise).

    Reads the values buffer directly: ``Array.to_numpy`` goes through pyarrow's pandas
    shim, which imports pandas (a second per process where bytecode is not cached).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    dtype = _NUMPY_TYPES.get(column.type)
    if dtype is None or column.null_count:
        return np.asarray(column.to_numpy(zero_copy_only=False))
    n, offset = len(column), column.offset
    return np.frombuffer(column.buffers()[1], dtype=dtype, count=offset + n)[offset:]


# --- parts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartInput:
    """One part: its records file and the dense subject range it covers."""

    name: str
    records: Path
    first_subject: int
    subjects: int
    record_count: int


def discover(input_dir: Path) -> list[PartInput]:
    """The parts of a population directory, with each part's subject range read from
    the footer of its subjects file (statistics; the ids themselves if absent)."""
    check_complete(input_dir)
    subjects_dir, records_dir = input_dir / SUBJECTS_DIR, input_dir / RECORDS_DIR
    names = sorted(p.name for p in subjects_dir.glob("part-*.parquet"))
    if not names:
        raise FileNotFoundError(f"no subjects/part-*.parquet under {input_dir}")
    extra = {p.name for p in records_dir.glob("part-*.parquet")} - set(names)
    if extra:
        raise ValueError(f"records parts without a subjects part: {', '.join(sorted(extra))}")
    parts = []
    for name in names:
        first, n = _subject_range(subjects_dir / name)
        records = records_dir / name
        count = pq.ParquetFile(records).metadata.num_rows if records.exists() else 0
        parts.append(PartInput(name, records, first, n, count))
    return parts


def _subject_range(path: Path) -> tuple[int, int]:
    meta = pq.ParquetFile(path).metadata
    n = meta.num_rows
    if n == 0:
        return 0, 0
    col = meta.schema.names.index("subject_id")
    lows, highs = [], []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max:
            ids = as_numpy(pq.read_table(path, columns=["subject_id"]).column(0))
            lows, highs = [int(ids.min())], [int(ids.max())]
            break
        lows.append(int(stats.min))
        highs.append(int(stats.max))
    first, last = min(lows), max(highs)
    if last - first + 1 != n:
        raise ValueError(
            f"{path}: subject ids {first}..{last} are not dense over its {n} rows; each "
            "part must hold one contiguous range of subject ids"
        )
    return first, n


def _needed_columns(meta: pq.RowGroupMetaData, names: Sequence[str], at_us: int) -> list[str]:
    """Columns of one row group that can change the result at ``at_us``."""
    skip = set()
    for name in SELECTION_COLUMNS:
        if name not in names:
            continue
        stats = meta.column(list(names).index(name)).statistics
        if stats is None:
            continue
        nulls = stats.null_count if stats.has_null_count else None
        if name == "received_at":
            if nulls == 0 and stats.has_min_max and stats.max <= at_us:
                skip.add(name)  # every record was received by ``at``
        elif nulls == meta.num_rows:
            skip.add(name)  # no record has ended
        elif nulls is not None and stats.has_min_max and stats.min > at_us:
            skip.add(name)  # none had ended by ``at``
    return [c for c in RECORD_COLUMNS if c in names and c not in skip]


def part_batches(
    path: Path,
    at_us: int,
    batch_records: int = BATCH_RECORDS,
    extra: Sequence[str] = (),
) -> Iterator[pa.RecordBatch]:
    """Record batches of one records part, each row group read with only the columns
    that can matter at ``at_us`` (and those of ``extra`` the file has)."""
    file = pq.ParquetFile(path, memory_map=True)
    names = file.schema_arrow.names
    missing = [c for c in RECORD_COLUMNS if c not in names and c not in SELECTION_COLUMNS]
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(missing)}")
    meta = file.metadata
    for g in range(meta.num_row_groups):
        columns = _needed_columns(meta.row_group(g), file.schema.names, at_us)
        columns += [c for c in extra if c in names]
        yield from file.iter_batches(
            batch_size=batch_records, row_groups=[g], columns=columns, use_threads=False
        )


def score_part_sums(
    part: PartInput,
    kernel: Kernel,
    *,
    batch_records: int = BATCH_RECORDS,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[FloatArray, int]:
    """The ``(subjects in part, width)`` tally of one part, and how many records
    counted."""
    sums = formula.empty_tally(part.subjects, kernel.types)
    counted = 0
    if not part.records.exists():
        return sums, 0
    for batch in part_batches(part.records, kernel.at_us, batch_records, kernel.extra_columns):
        got = kernel.sums(batch)
        if got.sums.shape[0]:
            lo = _within(part, got.lo, got.sums.shape[0])
            sums[lo : lo + got.sums.shape[0]] += got.sums
        counted += got.counted
        if on_batch is not None:
            on_batch(got.records)
    return sums, counted


@dataclass(frozen=True)
class PartScores:
    """Scores of one part's subjects, in subject order: sub-scores as one contiguous
    column per category (``(4, n)``), totals and tier numbers."""

    sub_scores: FloatArray
    totals: FloatArray
    tiers: IntArray
    #: Given each tally row before it is finished (with the number of its first
    #: subject): how the subjects of merged files are collected (:class:`MergedFiles`).
    taker: Callable[[int, FloatArray], None] | None = None

    @classmethod
    def allocate(cls, n: int, taker: Callable[[int, FloatArray], None] | None = None) -> PartScores:
        # Sub-scores and totals in one block: for a large part it is one mapping of its
        # own, outside the heap that the batches' temporaries come and go from (on a
        # worker thread's heap, a long-lived block in between made glibc map and unmap
        # heaps over and over: ten times the page faults).
        block = np.empty((N_CATEGORIES + 1, n))
        return cls(block[:N_CATEGORIES], block[N_CATEGORIES], np.empty(n, dtype=np.int8), taker)

    @classmethod
    def of(
        cls,
        rows: FloatArray,
        rulebook: Rulebook,
        taker: Callable[[int, FloatArray], None] | None = None,
    ) -> PartScores:
        """The scores of whole tally rows."""
        scores = cls.allocate(rows.shape[0], taker)
        scores.put(0, rows, rulebook)
        return scores

    def put(self, at: int, rows: FloatArray, rulebook: Rulebook) -> None:
        """Finish tally ``rows`` (:func:`~credence.scoring.formula.finish`) into the
        scores of subjects ``at``, ``at + 1``, …"""
        if self.taker is not None:
            self.taker(at, rows)
        finished = formula.finish(rows, rulebook)
        end = at + rows.shape[0]
        self.sub_scores[:, at:end] = finished.sub_scores.T
        self.totals[at:end] = finished.totals
        self.tiers[at:end] = finished.tiers


class MergedFiles:
    """The files merged at the instant scored: ``aliases`` (alias -> the subject it is
    read into then, by the layout's ids) names their subjects. As the parts are scored,
    the tally row of each of those subjects is taken on its way to being finished
    (:meth:`collector`); once every part is done, each file's rows are added up (tallies
    add: the tally of the combined records, so bounds, caps and tier conditions apply
    to them together) and finished once (:meth:`scores`), and every subject of the file
    gets that score (:meth:`put_into`). Nothing is read twice; the parts that hold such
    subjects are written last, once the files' scores are known."""

    def __init__(self, aliases: dict[int, int], types: TypeTable) -> None:
        members = np.unique(np.fromiter([*aliases, *aliases.values()], dtype=np.int64))
        roots = np.array([aliases.get(m, m) for m in members.tolist()], dtype=np.int64)
        #: Sorted: each subject read into (a file's root) and each alias read into it.
        self.subject_ids: IntArray = members
        self._file = np.searchsorted(members, roots)
        self.types = types
        self._tally = formula.empty_tally(members.size, types)
        self._lock = threading.Lock()

    def _range(self, first: int, n: int) -> tuple[int, int]:
        lo, hi = np.searchsorted(self.subject_ids, [first, first + n])
        return int(lo), int(hi)

    def meets(self, part: PartInput) -> bool:
        """Whether the part holds a subject of a merged file."""
        lo, hi = self._range(part.first_subject, part.subjects)
        return lo < hi

    def collector(self, part: PartInput) -> _Collector:
        """A taker of the part's tally rows (:attr:`PartScores.taker`) that keeps those
        of the merged files' subjects; :meth:`_Collector.keep` adds them in once the
        part is scored."""
        return _Collector(self, part.first_subject, *self._range(part.first_subject, part.subjects))

    def _keep(self, lo: int, rows: FloatArray) -> None:
        with self._lock:
            self._tally[lo : lo + rows.shape[0]] += rows

    def scores(self, rulebook: Rulebook) -> PartScores:
        """Each subject's score (in :attr:`subject_ids` order): its file's."""
        files = formula.empty_tally(self.subject_ids.size, self.types)
        np.add.at(files, self._file, self._tally)
        return PartScores.of(files[self._file], rulebook)

    def put_into(self, first: int, scores: PartScores, merged: PartScores) -> None:
        """Overwrite, in ``scores`` (those of subjects ``first``, ``first + 1``, …), the
        scores of the merged files' subjects with ``merged`` (:meth:`scores`)."""
        lo, hi = self._range(first, scores.totals.shape[0])
        at = self.subject_ids[lo:hi] - first
        scores.sub_scores[:, at] = merged.sub_scores[:, lo:hi]
        scores.totals[at] = merged.totals[lo:hi]
        scores.tiers[at] = merged.tiers[lo:hi]


class _Collector:
    """The tally rows of one part's subjects of merged files (:meth:`MergedFiles.
    collector`): each row is finished once, so each is taken once."""

    def __init__(self, files: MergedFiles, first: int, lo: int, hi: int) -> None:
        self.files, self.first, self.lo = files, first, lo
        self.ids = files.subject_ids[lo:hi]
        self.rows = formula.empty_tally(hi - lo, files.types)

    def __call__(self, at: int, rows: FloatArray) -> None:
        start = self.first + at
        lo, hi = np.searchsorted(self.ids, [start, start + rows.shape[0]])
        if lo < hi:
            self.rows[lo:hi] = rows[self.ids[lo:hi] - start]

    def keep(self) -> None:
        self.files._keep(self.lo, self.rows)


class _Unsorted(Exception):
    """A part's records are not in subject order (the streaming path needs them so)."""

    def __init__(self, reported: int) -> None:
        super().__init__("records not in subject order")
        #: Records already reported to the progress callback.
        self.reported = reported


def score_part(
    part: PartInput,
    kernel: Kernel,
    rulebook: Rulebook,
    *,
    batch_records: int = BATCH_RECORDS,
    on_batch: Callable[[int], None] | None = None,
    merged: MergedFiles | None = None,
) -> tuple[PartScores, int]:
    """The scores of one part's subjects, and how many records counted.

    Records in subject order (as the export and the generator write them) are scored
    as they stream: after each batch, the subjects before the batch's last one have all
    their records, so their tally rows are finished at once and dropped; only the last
    subject's row is carried to the next batch. A part whose records are not in subject
    order is noticed (a batch reaches back before the window) and scored again from a
    tally of the whole part (:func:`score_part_sums`).

    With ``merged``, the tally rows of the merged files' subjects are kept there on the
    way (their scores here are their own: :meth:`MergedFiles.put_into` replaces them).
    """
    collect = merged.collector(part) if merged is not None and merged.meets(part) else None
    try:
        scored = _score_sorted_part(part, kernel, rulebook, batch_records, on_batch, collect)
    except _Unsorted as unsorted:
        rows, counted = score_part_sums(part, kernel, batch_records=batch_records)
        if on_batch is not None:
            on_batch(part.record_count - unsorted.reported)
        # Every row is taken again as it is finished: what the sorted pass took is
        # overwritten.
        scored = PartScores.of(rows, rulebook, collect), counted
    if collect is not None:
        collect.keep()
    return scored


def _score_sorted_part(
    part: PartInput,
    kernel: Kernel,
    rulebook: Rulebook,
    batch_records: int,
    on_batch: Callable[[int], None] | None,
    taker: Callable[[int, FloatArray], None] | None = None,
) -> tuple[PartScores, int]:
    scores = PartScores.allocate(part.subjects, taker)
    #: The tally row of subject ``start``, the last one of the previous batch (its
    #: records may go on in the next batch); empty before the first batch.
    window = formula.empty_tally(0, kernel.types)
    start = counted = reported = 0
    if part.records.exists():
        for batch in part_batches(part.records, kernel.at_us, batch_records, kernel.extra_columns):
            got = kernel.sums(batch)
            rows = got.sums.shape[0]
            if rows:
                lo = _within(part, got.lo, rows)
                if lo < start:
                    raise _Unsorted(reported)
                tally = got.sums  # the batch's own array: added into, finished, dropped
                if lo == start:
                    tally[: window.shape[0]] += window
                else:  # the window's subject and any without records before lo: done
                    before = formula.empty_tally(lo - start, kernel.types)
                    before[: window.shape[0]] = window
                    scores.put(start, before, rulebook)
                # Subjects before the batch's last one have all their records.
                scores.put(lo, tally[:-1], rulebook)
                window, start = tally[-1:], lo + rows - 1
            counted += got.counted
            reported += got.records
            if on_batch is not None:
                on_batch(got.records)
    rest = formula.empty_tally(part.subjects - start, kernel.types)
    rest[: window.shape[0]] = window
    scores.put(start, rest, rulebook)
    return scores, counted


def _within(part: PartInput, first: int, rows: int) -> int:
    """The part-relative number of subject ``first``, once rows ``first`` ..
    ``first + rows - 1`` are known to be the part's subjects."""
    lo = first - part.first_subject
    end = part.first_subject + part.subjects
    if lo < 0 or first + rows > end:
        raise ValueError(
            f"{part.records}: a record's subject lies outside the part's subjects "
            f"{part.first_subject}..{end - 1}"
        )
    return lo


def score_table(subject_ids: IntArray, sums: FloatArray, rulebook: Rulebook) -> pa.Table:
    """Scores (:data:`SCORE_SCHEMA`) of ``subject_ids`` from their tally rows, by the
    formula's :func:`~credence.scoring.formula.finish`."""
    table = _coded_score_table(subject_ids, PartScores.of(sums, rulebook), rulebook)
    tier = table.column("tier").combine_chunks().dictionary_decode()
    return table.set_column(table.num_columns - 1, SCORE_SCHEMA.field("tier"), tier)


def _coded_score_table(subject_ids: IntArray, scores: PartScores, rulebook: Rulebook) -> pa.Table:
    # The tier column is built from integer codes: no Python string per subject.
    tier = pa.DictionaryArray.from_arrays(
        arrow(scores.tiers.astype(np.int8, copy=False)),
        strings([str(c) for c in formula.tier_order(rulebook)]),
    )
    return pa.Table.from_arrays(
        [
            arrow(subject_ids.astype(np.int64, copy=False)),
            arrow(scores.totals),
            *(arrow(scores.sub_scores[j]) for j in range(N_CATEGORIES)),
            tier,
        ],
        schema=_WRITE_SCHEMA,
    )


def write_scores(
    path: Path, subject_ids: IntArray, scores: PartScores, rulebook: Rulebook
) -> pa.Table:
    """Write the scores of ``subject_ids`` to ``path`` (read back, the file has
    :data:`SCORE_SCHEMA`); returns the table written."""
    table = _coded_score_table(subject_ids, scores, rulebook)
    pq.write_table(table, path, **WRITE_OPTIONS)
    return table


def tier_counts(tiers: pa.Array | pa.ChunkedArray, rulebook: Rulebook) -> dict[str, int]:
    """How many subjects are in each tier, highest tier first."""
    counted = pc.value_counts(tiers)
    got = {str(v["values"]): int(v["counts"]) for v in counted.to_pylist()}
    return {t.code: got.get(t.code, 0) for t in rulebook.tiers}


# --- the runner --------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnarSummary:
    """What a batch run scored, and how fast."""

    subjects: int
    records: int
    #: Records that counted at ``as_of`` (received, not ended, type in the rulebook).
    counted: int
    parts: int
    tiers: dict[str, int]
    seconds: float
    as_of: datetime
    rulebook_version: str
    out_dir: Path
    engine: str = "local"
    #: The sources in outage at ``as_of`` whose records' age was frozen, by code: the
    #: freeze interval (:func:`~credence.scoring.layout.freezes_at`, microseconds).
    frozen: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        """The summary as JSON values (for a run's ``run.json``)."""
        return {
            "engine": self.engine,
            "as_of": self.as_of.isoformat(),
            "subjects": self.subjects,
            "records": self.records,
            "counted": self.counted,
            "parts": self.parts,
            "tiers": self.tiers,
            "seconds": self.seconds,
            "frozen_sources": {
                code: {
                    "outage_since": from_micros(start).isoformat(),
                    "frozen_until": from_micros(end).isoformat(),
                }
                for code, (start, end) in sorted(self.frozen.items())
            },
        }


def _types_of(rulebook: Rulebook | Edition) -> tuple[Rulebook, TypeTable]:
    if isinstance(rulebook, Edition):
        return rulebook.rulebook, formula.type_table(rulebook.rulebook)
    return rulebook, formula.type_table(rulebook)


def score_parquet(
    input_dir: Path,
    out_dir: Path,
    *,
    at: datetime,
    rulebook: Rulebook | Edition,
    progress: Progress | None = None,
    workers: int = WORKERS,
    batch_records: int = BATCH_RECORDS,
) -> ColumnarSummary:
    """Score every subject of the population under ``input_dir`` as of ``at`` and write
    ``out_dir/scores/part-*.parquet`` (one per input part, :data:`SCORE_SCHEMA`).

    Memory holds one part's scores and about one batch per worker thread (records in
    subject order; otherwise one part's tally: see :func:`score_part`).
    """
    started = time.perf_counter()
    keep_heap()
    at = ensure_utc(at)
    book, types = _types_of(rulebook)
    kernel = Kernel(types, to_micros(at), freezes=freezes_at(input_dir, at, book))
    parts = discover(input_dir)
    aliases = aliases_at(input_dir, kernel.at_us)
    merged = MergedFiles(aliases, types) if aliases else None
    scores_dir = out_dir / SCORES_DIR
    scores_dir.mkdir(parents=True, exist_ok=True)
    for stale in scores_dir.glob("part-*.parquet"):
        stale.unlink()  # a rerun replaces the previous run's files
    total_records = sum(p.record_count for p in parts)
    lock = threading.Lock()
    done = [0]

    def advanced(records: int) -> None:
        if progress is not None:
            with lock:
                done[0] += records
                now = done[0]
            progress(now, total_records)

    def write(part: PartInput, scores: PartScores) -> dict[str, int]:
        ids = np.arange(part.first_subject, part.first_subject + part.subjects, dtype=np.int64)
        table = write_scores(scores_dir / part.name, ids, scores, book)
        return tier_counts(table.column("tier"), book)

    #: Parts that hold subjects of merged files: written once the files are scored.
    held: dict[str, PartScores] = {}

    def one(part: PartInput) -> tuple[int, dict[str, int]]:
        scores, counted = score_part(
            part, kernel, book, batch_records=batch_records, on_batch=advanced, merged=merged
        )
        if merged is not None and merged.meets(part):
            held[part.name] = scores
            return counted, {}
        return counted, write(part, scores)

    if progress is not None:
        progress(0, total_records)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(one, parts))
        if merged is not None:
            files = merged.scores(book)

            def last(part: PartInput) -> dict[str, int]:
                scores = held.pop(part.name)
                merged.put_into(part.first_subject, scores, files)
                return write(part, scores)

            later = [k for k, part in enumerate(parts) if part.name in held]
            for k, tiers in zip(later, pool.map(last, [parts[k] for k in later]), strict=True):
                results[k] = (results[k][0], tiers)
    tiers = {t.code: sum(r[1][t.code] for r in results) for t in book.tiers}
    return ColumnarSummary(
        subjects=sum(p.subjects for p in parts),
        records=total_records,
        counted=sum(r[0] for r in results),
        parts=len(parts),
        tiers=tiers,
        seconds=time.perf_counter() - started,
        as_of=at,
        rulebook_version=book.version,
        out_dir=out_dir,
        frozen=kernel.freezes,
    )


def read_scores(out_dir: Path) -> pa.Table:
    """All score files of a run, in subject order."""
    files = sorted((out_dir / SCORES_DIR).glob("*.parquet"))
    table = (
        pa.concat_tables([pq.read_table(f) for f in files]) if files else SCORE_SCHEMA.empty_table()
    )
    return table.sort_by("subject_id")
