"""The nightly rescore job: score everyone, keep the snapshot, move shown tiers.

Scoring computes totals (:mod:`credence.scoring.batch`) and knows nothing of shown
tiers; this job, one layer above it, applies hysteresis to the fresh totals and
journals and notifies every move (:func:`credence.tiers.service.update_tiers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from credence.rulebook.store import Edition
from credence.scoring.batch import BatchSummary, Progress, rescore_everyone
from credence.tiers.service import TierMoves, update_tiers


@dataclass(frozen=True)
class RescoreReport:
    """What a rescore did: the population's scores and how many shown tiers moved."""

    summary: BatchSummary
    moves: TierMoves


def rescore(
    session: Session, edition: Edition, at: datetime, *, progress: Progress | None = None
) -> RescoreReport:
    """Score everyone as of ``at``, store the snapshot and move shown tiers; the caller
    commits."""
    summary, population = rescore_everyone(session, edition, at, progress=progress)
    moves = update_tiers(
        session,
        edition.rulebook,
        at,
        zip(
            population.subject_ids.tolist(),
            population.totals.tolist(),
            population.against.tolist(),
            strict=True,
        ),
    )
    return RescoreReport(summary=summary, moves=moves)
