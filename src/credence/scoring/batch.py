"""Scoring every subject at once, from the ledger, in bounded memory.

Records stream out of the store in chunks; each chunk goes through the same array
functions as the online path (:mod:`credence.scoring.formula`) and adds into one tally
(``(subjects, width)``, indexed by the dense subject id), which
:func:`~credence.scoring.formula.finish` turns into scores. The result is written to the
``scores`` snapshot table.

A merge (:mod:`credence.ledger.identities`) is read as of the instant scored: the tally
of each alias in force then is added into the tally of the subject it is read into, and
the alias gets that subject's row (one file, one score: :func:`fold_aliases`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import BigInteger, delete, func, insert, select, type_coerce
from sqlalchemy.orm import Session

from credence.clock import to_micros
from credence.ledger import freshness, holds, identities
from credence.ledger.endings import effect_ends
from credence.ledger.tables import Record, Subject
from credence.rulebook.model import CATEGORIES
from credence.rulebook.store import Edition
from credence.scoring import counting, formula
from credence.scoring.tables import ScoreSnapshot

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Population:
    """Scores of a whole population, indexed by dense subject id."""

    subject_ids: formula.IntArray
    sub_scores: formula.FloatArray
    totals: formula.FloatArray
    tiers: list[str]
    records: int
    #: ``(subjects, 3)``: negative records weighing against each subject, by severity
    #: (least severe first): what tier conditions read, hysteresis included.
    against: formula.FloatArray


@dataclass(frozen=True)
class BatchSummary:
    subjects: int
    records: int
    tiers: dict[str, int]
    seconds: float
    as_of: datetime
    rulebook_version: str


def score_population(
    session: Session,
    edition: Edition,
    at: datetime,
    *,
    chunk: int = 250_000,
    progress: Progress | None = None,
) -> Population:
    """Score every registered subject as of ``at`` under ``edition``."""
    types = formula.type_table(edition.rulebook)
    at_us = to_micros(at)
    n_ids = (session.scalar(select(func.max(Subject.id))) or 0) + 1
    total_records = session.scalar(select(func.count(Record.id))) or 0
    tallied = formula.empty_tally(n_ids, types)
    code_index = {code: i for i, code in enumerate(types.codes)}

    raw = BigInteger()
    # The same definition of "effect ended" as the online path reads (retractions,
    # dispute outcomes and lapses, approved repairs), so the two cannot disagree.
    ends = effect_ends()
    # And of when it starts: its receipt, or for a record held at intake its release.
    starts = holds.effect_starts()
    freeze = source_freezes(session, edition, at_us, at)
    query = (
        select(
            Record.subject_id,
            Record.source_id,
            Record.record_type,
            type_coerce(Record.occurred_at, raw),
            Record.quantity,
            holds.counts_from(Record.received_at, starts),
            type_coerce(ends.c.ended_at, raw),
        )
        .outerjoin(ends, ends.c.record_id == Record.id)
        .outerjoin(starts, starts.c.record_id == Record.id)
        # An erased record has no type: nothing of it is left to count.
        .where(Record.record_type.is_not(None))
    )
    seen = 0
    result = session.execute(query.execution_options(yield_per=chunk))
    for rows in result.partitions(chunk):
        subject, source, rtype, occurred, quantity, received, ended = zip(*rows, strict=True)
        type_idx = np.array([code_index.get(t, -1) for t in rtype], dtype=np.int64)
        ended_us = np.array([counting.NOT_ENDED if e is None else e for e in ended], dtype=np.int64)
        keep = counting.counts(at_us, np.asarray(received, dtype=np.int64), ended_us)
        keep &= type_idx >= 0
        subj = np.asarray(subject, dtype=np.int64)[keep]
        type_idx = type_idx[keep]
        qty = np.array([np.nan if q is None else q for q in quantity], dtype=np.float64)[keep]
        occurred_us = np.asarray(occurred, dtype=np.int64)[keep]
        frozen = None
        if freeze is not None:
            src = np.asarray(source, dtype=np.int64)[keep]
            frozen = counting.frozen(occurred_us, freeze[0][src], freeze[1][src])
        age = counting.age_days(at_us, occurred_us, frozen)
        contrib = types.contributions(type_idx, qty, age)
        if subj.size:
            lo, hi = int(subj.min()), int(subj.max())
            tallied[lo : hi + 1] += formula.tally(subj - lo, type_idx, contrib, hi - lo + 1, types)
        seen += len(rows)
        if progress is not None:
            progress(seen, total_records)

    fold_aliases(tallied, identities.aliases_at(session, at))
    ids = np.array(sorted(session.scalars(select(Subject.id))), dtype=np.int64)
    finished = formula.finish(tallied[ids], edition.rulebook)
    order = formula.tier_order(edition.rulebook)
    tiers = [str(t) for t in order[finished.tiers]]
    return Population(ids, finished.sub_scores, finished.totals, tiers, seen, finished.against)


def source_freezes(
    session: Session, edition: Edition, at_us: int, at: datetime
) -> tuple[formula.IntArray, formula.IntArray] | None:
    """The freeze interval (:func:`credence.scoring.counting.freeze`) of every source's
    records as of ``at``, as two arrays indexed by source id (start, end; ``at_us``
    both for a source not in outage); None when no source is in outage or the edition
    never freezes."""
    max_days = counting.max_freeze_days(edition.rulebook)
    if max_days is None:
        return None
    outages = freshness.outages(session, at)
    if not outages:
        return None
    size = max(outages) + 1
    size = max(size, (session.scalar(select(func.max(Record.source_id))) or 0) + 1)
    start = np.full(size, at_us, dtype=np.int64)
    end = np.full(size, at_us, dtype=np.int64)
    for source_id, outage in outages.items():
        start[source_id], end[source_id] = counting.freeze(at_us, to_micros(outage.since), max_days)
    return start, end


def fold_aliases(tallied: formula.FloatArray, aliases: dict[int, int]) -> None:
    """Read each alias into its subject's file, in place: ``tallied`` (rows indexed by
    subject) gets each alias's row added into the row of the subject it is read into
    (tallies add: the combined records' tally), and then each alias gets that row.
    ``aliases``: alias -> the subject it is read into (aliases never chain)."""
    if not aliases:
        return
    alias = np.fromiter(aliases.keys(), dtype=np.int64, count=len(aliases))
    into = np.fromiter(aliases.values(), dtype=np.int64, count=len(aliases))
    np.add.at(tallied, into, tallied[alias])
    tallied[alias] = tallied[into]


def write_snapshot(
    session: Session, population: Population, edition: Edition, at: datetime
) -> None:
    """Replace the ``scores`` snapshot with ``population`` (derived data, not the ledger)."""
    session.execute(delete(ScoreSnapshot))
    rows = [
        {
            "subject_id": int(sid),
            "as_of": at,
            "rulebook_version": edition.version,
            "total": float(population.totals[i]),
            **{c.value: float(population.sub_scores[i, j]) for j, c in enumerate(CATEGORIES)},
            "tier": population.tiers[i],
        }
        for i, sid in enumerate(population.subject_ids)
    ]
    for start in range(0, len(rows), 50_000):
        session.execute(insert(ScoreSnapshot), rows[start : start + 50_000])


def rescore_everyone(
    session: Session, edition: Edition, at: datetime, *, progress: Progress | None = None
) -> tuple[BatchSummary, Population]:
    """Score everyone and store the snapshot; the caller commits. Shown tiers are not
    scoring's business: the rescore job (:mod:`credence.tiers.rescore`) moves them."""
    started = time.perf_counter()
    population = score_population(session, edition, at, progress=progress)
    write_snapshot(session, population, edition, at)
    tiers = Counter(population.tiers)
    ordered = {t.code: tiers.get(t.code, 0) for t in edition.rulebook.tiers}
    summary = BatchSummary(
        subjects=len(population.subject_ids),
        records=population.records,
        tiers=ordered,
        seconds=time.perf_counter() - started,
        as_of=at,
        rulebook_version=edition.version,
    )
    return summary, population
