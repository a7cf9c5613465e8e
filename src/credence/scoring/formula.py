"""The scoring formula, defined once.

For a record of type ``T`` that occurred at ``o`` and counts as of instant ``t``::

    age          = (t - o) in days
    weight       = T.points × min(quantity, T.quantity.max_units)   (types with a quantity)
                 = T.points                                         (other types)
    contribution = weight × 2^(−age / T.half_life_days)   while 0 ≤ age < T.retention_days
                 = 0                                      otherwise

    sub-score(category) = Σ contributions of the subject's records in that category
    total               = clamp(base + Σ sub-scores, scale.min, scale.max)
    tier                = the highest tier whose min_score ≤ total

A record counts as of ``t`` only if it was received at or before ``t`` and not retracted
(or otherwise ended) at or before ``t``; selecting those is the caller's job (the online
path in :mod:`credence.scoring.online`, the batch path in :mod:`credence.scoring.batch`).
Every runner calls the array functions below, so there is no second copy of the formula.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from credence.rulebook.model import CATEGORIES, CATEGORY_INDEX, Rulebook

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

N_CATEGORIES = len(CATEGORIES)


def contributions(
    weights: FloatArray,
    age_days: FloatArray,
    half_life_days: FloatArray,
    retention_days: FloatArray,
) -> FloatArray:
    """Decayed contribution of each record (element-wise; zero outside [0, retention))."""
    active = (age_days >= 0.0) & (age_days < retention_days)
    decayed = weights * np.exp2(-np.maximum(age_days, 0.0) / half_life_days)
    return np.where(active, decayed, 0.0)


def category_sums(
    subject_idx: IntArray, category_idx: IntArray, contrib: FloatArray, n_subjects: int
) -> FloatArray:
    """Per-(subject, category) sums as an ``(n_subjects, 4)`` array, by one bincount."""
    flat = subject_idx * N_CATEGORIES + category_idx
    sums = np.bincount(flat, weights=contrib, minlength=n_subjects * N_CATEGORIES)
    return sums.astype(np.float64, copy=False).reshape(n_subjects, N_CATEGORIES)


def totals(sub_scores: FloatArray, rulebook: Rulebook) -> FloatArray:
    """Totals from sub-scores: base plus the sum over categories, clamped to the scale."""
    scale = rulebook.scale
    clipped: FloatArray = np.clip(scale.base + sub_scores.sum(axis=1), scale.min, scale.max)
    return clipped


def tier_codes(total: FloatArray, rulebook: Rulebook) -> npt.NDArray[Any]:
    """Letter tier of each total (vectorised :meth:`Rulebook.tier_for`)."""
    # Tiers are ordered highest first; searchsorted wants ascending thresholds.
    thresholds = np.array([t.min_score for t in rulebook.tiers[::-1]][1:], dtype=np.float64)
    codes = np.array([t.code for t in rulebook.tiers[::-1]], dtype=object)
    return codes[np.searchsorted(thresholds, total, side="right")]


class TypeTable:
    """Per-record-type parameters of a rulebook as arrays, indexed by type number."""

    def __init__(self, rulebook: Rulebook) -> None:
        types = rulebook.record_types
        self.codes: list[str] = [rt.code for rt in types]
        self.index: dict[str, int] = {c: i for i, c in enumerate(self.codes)}
        self.points = np.array([rt.points for rt in types], dtype=np.float64)
        self.has_quantity = np.array([rt.quantity is not None for rt in types], dtype=bool)
        self.max_units = np.array(
            [rt.quantity.max_units if rt.quantity else 1.0 for rt in types], dtype=np.float64
        )
        self.half_life = np.array([rt.half_life_days for rt in types], dtype=np.float64)
        self.retention = np.array([rt.retention_days for rt in types], dtype=np.float64)
        self.category = np.array([CATEGORY_INDEX[rt.category] for rt in types], dtype=np.int64)

    def weights(self, type_idx: IntArray, quantity: FloatArray) -> FloatArray:
        """Vectorised :func:`weight`; ``quantity`` is NaN where a record has none."""
        units = np.where(
            np.isnan(quantity), 1.0, np.minimum(np.maximum(quantity, 0.0), self.max_units[type_idx])
        )
        return np.where(
            self.has_quantity[type_idx], self.points[type_idx] * units, self.points[type_idx]
        )

    def contributions(
        self, type_idx: IntArray, quantity: FloatArray, age_days: FloatArray
    ) -> FloatArray:
        return contributions(
            self.weights(type_idx, quantity),
            age_days,
            self.half_life[type_idx],
            self.retention[type_idx],
        )
