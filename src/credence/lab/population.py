"""A synthetic national population as Parquet files, for batch scoring at scale.

:func:`generate` draws ``subjects`` subjects and exactly ``records`` records from a seed
with vectorised numpy and writes them under ``out``::

    out/population.json                 what was drawn: seed, instant, counts, parts
    out/subjects/part-00000.parquet     subject_id, kind, region
    out/records/part-00000.parquet      subject_id, record_type, occurred_at, received_at,
                                        quantity, ended_at

Files are partitioned by subject: part ``k`` of both directories holds the contiguous
range of dense subject ids ``[k × part_subjects, (k + 1) × part_subjects)`` (the last part
may be shorter), so each part can be scored on its own and a subject's sums never cross
parts. Within a part, records are ordered by subject id.

Columns (instants are int64 microseconds since the Unix epoch, UTC):

* ``subject_id`` int64, dense from 0;
* ``kind`` and ``region`` dictionary-encoded strings (``person`` / ``company`` /
  ``government``; GB/T 2260 province code);
* ``record_type`` a dictionary-encoded string (int16 indices into the rulebook's codes),
  so the files describe themselves and a scorer maps types by code, not by position;
* ``quantity`` float64, NaN for a record type without a quantity;
* ``ended_at`` null unless the record's effect ended (retraction, dispute outcome,
  repair) by the population's instant.

How the population is drawn, so that it looks like a population (the rates and tilts are
those of the synthetic city, :mod:`credence.lab.city`, so both tell the same story):

* 8 % of subjects are organisations, 6 % of those government bodies; each region is
  drawn in proportion to its census population;
* each subject has a latent *reliability* (standard normal) that raises its rate of
  negative records when low and, more gently, of positive ones when high, so behaviour
  is correlated within a subject and most people have few negative records;
* each subject has an *activity* (log-normal, mean 1; wider for companies) scaling all
  its rates;
* a record's type is drawn from the rates of the subject's kind, only among the types
  the rulebook allows for that kind (companies and government bodies have types of
  their own);
* records are received uniformly over :data:`HISTORY_DAYS` (longer than any retention,
  so some have expired) and occurred up to :data:`MAX_DELAY_DAYS` earlier; a few have
  their effect ended later (negative ones more often: disputes and repairs).

Memory is bounded: subjects are drawn in chunks of ``chunk_subjects`` (one Parquet row
group each), a first pass over the chunks draws only their subjects' weights so the
exact record total can be split among chunks, and the second pass draws and writes each
chunk's records. Every chunk has its own random stream derived from ``seed`` and its
index, so the same arguments give the same bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from credence.clock import MICROS_PER_DAY, ensure_utc, to_micros
from credence.identifiers import SubjectKind
from credence.lab.city import FOLLOW_UP, GOVERNMENT_SHARE, NEGATIVE_TILT, POSITIVE_TILT, STREAMS
from credence.rulebook.model import Rulebook
from credence.scoring.columnar import arrow, strings
from credence.scoring.layout import (
    POPULATION_MANIFEST,
    RECORDS_DIR,
    ROW_GROUP_RECORDS,
    SUBJECTS_DIR,
    parquet_options,
    part_name,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: ``progress(records_written, records_total)``.
Progress = Callable[[int, int], None]

FORMAT = "credence-population/1"
MANIFEST = POPULATION_MANIFEST

#: Subject kinds in code order (the ``kind`` column's dictionary).
KINDS: tuple[SubjectKind, ...] = tuple(SubjectKind)
#: Share of subjects that are organisations (companies and government bodies).
ORGANISATION_SHARE = 0.08
#: Spread (log-scale standard deviation) of activity by kind: companies differ most.
ACTIVITY_SIGMA: dict[SubjectKind, float] = {
    SubjectKind.PERSON: 0.5,
    SubjectKind.COMPANY: 1.0,
    SubjectKind.GOVERNMENT: 0.5,
}
#: Rate of a follow-up type (a judgment satisfied) relative to the type it follows.
FOLLOW_UP_SHARE = 0.5
#: Rates (per subject-year) for a type the city has no stream for.
FALLBACK_NEGATIVE_RATE = 0.01
FALLBACK_POSITIVE_RATE = 0.1

#: Days of history records are received over (longer than the longest retention).
HISTORY_DAYS = 6 * 365
#: Mean reporting delay (days) of negative and positive records, capped at the maximum.
NEGATIVE_DELAY_DAYS = 8.0
POSITIVE_DELAY_DAYS = 2.0
MAX_DELAY_DAYS = 20
#: Share of records whose effect is ended (retraction, dispute, repair), by sign, and the
#: mean time from receipt to the ending.
NEGATIVE_ENDED_SHARE = 0.04
POSITIVE_ENDED_SHARE = 0.005
MEAN_DAYS_TO_END = 180.0
#: Median quantity as a share of the type's cap; log-normal spread (a few exceed the cap).
QUANTITY_MEDIAN_SHARE = 0.08
QUANTITY_SIGMA = 1.0

#: Province-level regions (GB/T 2260 codes) and their populations (millions, 2020
#: census): where subjects live or are registered.
REGIONS: tuple[tuple[str, float], ...] = (
    ("110000", 21.9),
    ("120000", 13.9),
    ("130000", 74.6),
    ("140000", 34.9),
    ("150000", 24.0),
    ("210000", 42.6),
    ("220000", 24.1),
    ("230000", 31.9),
    ("310000", 24.9),
    ("320000", 84.7),
    ("330000", 64.6),
    ("340000", 61.0),
    ("350000", 41.5),
    ("360000", 45.2),
    ("370000", 101.5),
    ("410000", 99.4),
    ("420000", 57.8),
    ("430000", 66.4),
    ("440000", 126.0),
    ("450000", 50.1),
    ("460000", 10.1),
    ("500000", 32.1),
    ("510000", 83.7),
    ("520000", 38.6),
    ("530000", 47.2),
    ("540000", 3.6),
    ("610000", 39.5),
    ("620000", 25.0),
    ("630000", 5.9),
    ("640000", 7.2),
    ("650000", 25.9),
)


SUBJECT_SCHEMA = pa.schema(
    [
        pa.field("subject_id", pa.int64(), nullable=False),
        pa.field("kind", pa.dictionary(pa.int8(), pa.string()), nullable=False),
        pa.field("region", pa.dictionary(pa.int8(), pa.string()), nullable=False),
    ]
)
RECORD_SCHEMA = pa.schema(
    [
        pa.field("subject_id", pa.int64(), nullable=False),
        pa.field("record_type", pa.dictionary(pa.int16(), pa.string()), nullable=False),
        pa.field("occurred_at", pa.int64(), nullable=False),
        pa.field("received_at", pa.int64(), nullable=False),
        pa.field("quantity", pa.float64(), nullable=False),
        pa.field("ended_at", pa.int64(), nullable=True),
    ]
)


@dataclass(frozen=True)
class Part:
    """One part file pair: subjects ``[first_subject, first_subject + subjects)``."""

    index: int
    first_subject: int
    subjects: int
    records: int

    @property
    def name(self) -> str:
        return part_name(self.index)


@dataclass(frozen=True)
class PopulationSummary:
    """What :func:`generate` wrote, and how long it took."""

    out: Path
    subjects: int
    records: int
    seed: int
    now: datetime
    rulebook_version: str
    subjects_by_kind: dict[str, int]
    parts: tuple[Part, ...]
    bytes_on_disk: int
    seconds: float


# --- what each kind of subject does ------------------------------------------------------


@dataclass(frozen=True)
class _Rates:
    """Per-kind record-type rates of a rulebook, split by sign, as sampling tables."""

    codes: tuple[str, ...]
    #: (kinds, 2, types) cumulative type distribution within (kind, negative?)
    cdf: FloatArray
    #: (kinds, 2) total rate of (kind, negative?)
    total: FloatArray
    negative: npt.NDArray[np.bool_]
    has_quantity: npt.NDArray[np.bool_]
    median_quantity: FloatArray

    @classmethod
    def of(cls, rulebook: Rulebook) -> _Rates:
        types = rulebook.record_types
        codes = tuple(rt.code for rt in types)
        index = {c: i for i, c in enumerate(codes)}
        rate = np.zeros((len(KINDS), len(codes)), dtype=np.float64)
        for stream in STREAMS:
            if stream.record_type in index:
                for k, kind in enumerate(KINDS):
                    rate[k, index[stream.record_type]] += stream.rate(kind)
        lead, follow = FOLLOW_UP
        if lead in index and follow in index:
            rate[:, index[follow]] = FOLLOW_UP_SHARE * rate[:, index[lead]]
        negative = np.array([rt.negative for rt in types], dtype=bool)
        for t, rt in enumerate(types):
            for k, kind in enumerate(KINDS):
                if kind not in rt.subject_kinds:
                    rate[k, t] = 0.0  # only types the rulebook allows for the kind
                elif rate[k, t] == 0.0 and not (rt.code == follow and lead in index):
                    rate[k, t] = FALLBACK_NEGATIVE_RATE if rt.negative else FALLBACK_POSITIVE_RATE
        by_sign = np.stack([np.where(negative, 0.0, rate), np.where(negative, rate, 0.0)], axis=1)
        total = by_sign.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            cdf = np.cumsum(by_sign, axis=2) / total[:, :, None]
        cdf = np.nan_to_num(cdf, nan=1.0)
        cdf[:, :, -1] = 1.0
        return cls(
            codes=codes,
            cdf=cdf,
            total=total,
            negative=negative,
            has_quantity=np.array([rt.quantity is not None for rt in types], dtype=bool),
            median_quantity=np.array(
                [
                    QUANTITY_MEDIAN_SHARE * rt.quantity.max_units if rt.quantity else 1.0
                    for rt in types
                ],
                dtype=np.float64,
            ),
        )


@dataclass(frozen=True)
class _Subjects:
    kind: npt.NDArray[np.int8]
    region: npt.NDArray[np.int8]
    #: expected share of the chunk's records (unnormalised)
    weight: FloatArray
    #: probability that one of the subject's records is negative
    p_negative: FloatArray


def _rng(seed: int, stream: int, chunk: int = 0) -> np.random.Generator:
    # One independent stream per (purpose, chunk): chunks can be drawn in any order, and
    # the subjects of a chunk can be drawn twice (weights first, records later) alike.
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, chunk)))
    )


_REGION_P = np.array([p for _, p in REGIONS]) / sum(p for _, p in REGIONS)


def _draw_subjects(rng: np.random.Generator, n: int, rates: _Rates) -> _Subjects:
    u = rng.random(n)
    organisation = u < ORGANISATION_SHARE
    government = u < ORGANISATION_SHARE * GOVERNMENT_SHARE
    kind = np.where(government, 2, np.where(organisation, 1, 0)).astype(np.int8)
    region = rng.choice(len(REGIONS), size=n, p=_REGION_P).astype(np.int8)
    reliability = rng.standard_normal(n)
    sigma = np.array([ACTIVITY_SIGMA[k] for k in KINDS])[kind]
    activity = np.exp(sigma * rng.standard_normal(n) - sigma * sigma / 2)
    negative = rates.total[kind, 1] * np.exp(-NEGATIVE_TILT * reliability)
    positive = rates.total[kind, 0] * np.exp(POSITIVE_TILT * reliability)
    rate = negative + positive
    # A kind the rulebook gives no record type has rate 0: no records, never negative.
    p_negative = np.divide(negative, rate, out=np.zeros(n), where=rate > 0)
    return _Subjects(kind, region, activity * rate, p_negative)


def _layout(subjects: int, part_subjects: int, chunk_subjects: int) -> list[list[tuple[int, int]]]:
    """Chunks ``(first_subject, n)`` of each part."""
    parts = []
    for first in range(0, subjects, part_subjects):
        end = min(first + part_subjects, subjects)
        parts.append([(s, min(chunk_subjects, end - s)) for s in range(first, end, chunk_subjects)])
    return parts


# --- records -----------------------------------------------------------------------------


def _draw_records(
    rng: np.random.Generator,
    first: int,
    who: _Subjects,
    n_records: int,
    rates: _Rates,
    now_us: int,
) -> pa.RecordBatch:
    n = who.weight.shape[0]
    if n_records and who.weight.sum() <= 0:
        raise ValueError("the rulebook gives these subjects no record type to draw from")
    counts = (
        rng.multinomial(n_records, who.weight / who.weight.sum())
        if n_records
        else np.zeros(n, np.int64)
    )
    local = np.repeat(np.arange(n, dtype=np.int64), counts)
    negative = rng.random(n_records) < who.p_negative[local]
    group = who.kind[local].astype(np.int64) * 2 + negative
    u = rng.random(n_records)
    type_idx = np.empty(n_records, dtype=np.int16)
    flat_cdf = rates.cdf.reshape(-1, rates.cdf.shape[2])
    for g in range(flat_cdf.shape[0]):
        sel = np.flatnonzero(group == g)
        if sel.size:
            # u < 1 = cdf[-1], and a type with no rate adds no step: never drawn.
            type_idx[sel] = np.searchsorted(flat_cdf[g], u[sel], side="right")

    received = now_us - rng.integers(0, HISTORY_DAYS * MICROS_PER_DAY, size=n_records)
    mean_delay = np.where(negative, NEGATIVE_DELAY_DAYS, POSITIVE_DELAY_DAYS) * MICROS_PER_DAY
    delay = np.minimum(
        rng.exponential(1.0, n_records) * mean_delay, MAX_DELAY_DAYS * MICROS_PER_DAY
    )
    # Events are known to the second; receipt is stamped to the microsecond.
    occurred = ((received - delay.astype(np.int64)) // 1_000_000) * 1_000_000

    quantity = np.full(n_records, np.nan)
    q = np.flatnonzero(rates.has_quantity[type_idx])
    if q.size:
        draw = rates.median_quantity[type_idx[q]] * np.exp(
            QUANTITY_SIGMA * rng.standard_normal(q.size)
        )
        quantity[q] = np.maximum(np.round(draw, 2), 0.01)

    p_end = np.where(negative, NEGATIVE_ENDED_SHARE, POSITIVE_ENDED_SHARE)
    ends = rng.random(n_records) < p_end
    ended = (
        received
        + 1_000_000
        + (rng.exponential(MEAN_DAYS_TO_END * MICROS_PER_DAY, n_records)).astype(np.int64)
    )
    ended_valid = ends & (ended <= now_us)

    return pa.RecordBatch.from_arrays(
        [
            arrow(first + local),
            pa.DictionaryArray.from_arrays(arrow(type_idx), strings(rates.codes)),
            arrow(occurred),
            arrow(received),
            arrow(quantity),
            arrow(ended, valid=ended_valid),
        ],
        schema=RECORD_SCHEMA,
    )


def _subject_batch(first: int, who: _Subjects) -> pa.RecordBatch:
    n = who.kind.shape[0]
    return pa.RecordBatch.from_arrays(
        [
            arrow(np.arange(first, first + n, dtype=np.int64)),
            pa.DictionaryArray.from_arrays(arrow(who.kind), strings([k.value for k in KINDS])),
            pa.DictionaryArray.from_arrays(arrow(who.region), strings([r for r, _ in REGIONS])),
        ],
        schema=SUBJECT_SCHEMA,
    )


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    return pq.ParquetWriter(path, schema, **parquet_options(schema))


def generate(
    out: Path,
    *,
    subjects: int,
    records: int,
    seed: int,
    now: datetime,
    rulebook: Rulebook,
    part_subjects: int = 1_000_000,
    chunk_subjects: int = 100_000,
    progress: Progress | None = None,
) -> PopulationSummary:
    """Draw a population of ``subjects`` subjects and exactly ``records`` records as of
    ``now`` and write it as Parquet under ``out`` (see the module docstring).

    The same arguments give byte-identical files. Memory stays around
    ``chunk_subjects × records / subjects`` records whatever the size.
    """
    if subjects < 1 or records < 0 or part_subjects < 1 or chunk_subjects < 1:
        raise ValueError(
            "subjects, part_subjects and chunk_subjects must be positive, records >= 0"
        )
    started = time.perf_counter()
    now = ensure_utc(now)
    now_us = to_micros(now)
    rates = _Rates.of(rulebook)
    layout = _layout(subjects, part_subjects, min(chunk_subjects, part_subjects))
    chunks = [c for part in layout for c in part]

    # Pass 1: each chunk's expected share of the records, so that the total is exact.
    weights = np.array(
        [_draw_subjects(_rng(seed, 0, i), n, rates).weight.sum() for i, (_, n) in enumerate(chunks)]
    )
    per_chunk = _rng(seed, 2).multinomial(records, weights / weights.sum())

    (out / SUBJECTS_DIR).mkdir(parents=True, exist_ok=True)
    (out / RECORDS_DIR).mkdir(parents=True, exist_ok=True)
    kinds = np.zeros(len(KINDS), dtype=np.int64)
    parts: list[Part] = []
    written = 0
    i = 0
    for p, part_chunks in enumerate(layout):
        name = part_name(p)
        part_records = 0
        with (
            _writer(out / SUBJECTS_DIR / name, SUBJECT_SCHEMA) as subject_writer,
            _writer(out / RECORDS_DIR / name, RECORD_SCHEMA) as record_writer,
        ):
            for first, n in part_chunks:
                who = _draw_subjects(_rng(seed, 0, i), n, rates)
                kinds += np.bincount(who.kind, minlength=len(KINDS))
                subject_writer.write_batch(_subject_batch(first, who))
                batch = _draw_records(
                    _rng(seed, 1, i), first, who, int(per_chunk[i]), rates, now_us
                )
                record_writer.write_batch(batch, row_group_size=ROW_GROUP_RECORDS)
                part_records += batch.num_rows
                written += batch.num_rows
                i += 1
                if progress is not None:
                    progress(written, records)
        parts.append(Part(p, part_chunks[0][0], sum(n for _, n in part_chunks), part_records))

    by_kind = {k.value: int(kinds[j]) for j, k in enumerate(KINDS)}
    manifest = {
        "format": FORMAT,
        "seed": seed,
        "now": now.isoformat(),
        "now_us": now_us,
        "subjects": subjects,
        "records": records,
        "rulebook_version": rulebook.version,
        "record_types": list(rates.codes),
        "subjects_by_kind": by_kind,
        "parts": [
            {
                "name": pt.name,
                "first_subject": pt.first_subject,
                "subjects": pt.subjects,
                "records": pt.records,
            }
            for pt in parts
        ],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    size = sum(f.stat().st_size for f in _files(out))
    return PopulationSummary(
        out=out,
        subjects=subjects,
        records=records,
        seed=seed,
        now=now,
        rulebook_version=rulebook.version,
        subjects_by_kind=by_kind,
        parts=tuple(parts),
        bytes_on_disk=size,
        seconds=time.perf_counter() - started,
    )


def _files(out: Path) -> Iterator[Path]:
    yield out / MANIFEST
    for d in (SUBJECTS_DIR, RECORDS_DIR):
        yield from sorted((out / d).glob("part-*.parquet"))
