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

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from credence.rulebook.model import CATEGORIES, CATEGORY_INDEX, Rulebook

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

N_CATEGORIES = len(CATEGORIES)

T = TypeVar("T")


def contributions(
    weights: FloatArray,
    age_days: FloatArray,
    half_life_days: FloatArray,
    retention_days: FloatArray,
) -> FloatArray:
    """Decayed contribution of each record (element-wise; zero outside [0, retention))."""
    active = (age_days >= 0.0) & (age_days < retention_days)
    # weights × 2^(−max(age, 0) / half_life), computed in place in one scratch array:
    # the batch runners call this on millions of records, and every temporary costs a
    # pass over memory. −(a / h) and (−a) / h round identically, so the bits are those
    # of the plain expression. The scratch array takes the broadcast shape of all four
    # arguments, in float64, as the plain expression would.
    decayed = np.empty(_broadcast_shape(weights, age_days, half_life_days, retention_days))
    np.maximum(age_days, 0.0, out=decayed)
    np.divide(decayed, half_life_days, out=decayed)
    np.negative(decayed, out=decayed)
    np.exp2(decayed, out=decayed)
    np.multiply(weights, decayed, out=decayed)
    return np.where(active, decayed, 0.0)


def _broadcast_shape(*operands: Any) -> tuple[int, ...]:
    """The shape the operands broadcast to: that of the arrays, when they share one (the
    online path scores a handful of records, where ``np.broadcast_shapes`` would cost
    more than the arithmetic)."""
    shape = getattr(operands[0], "shape", None)
    for operand in operands[1:]:
        if getattr(operand, "shape", None) != shape:
            return np.broadcast_shapes(*(np.shape(o) for o in operands))
    assert shape is not None
    return tuple(shape)


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
    # clamp(x) = min(max(x, scale.min), scale.max), as np.clip computes it, in place:
    # np.clip's dispatch costs more than the arithmetic on a handful of subjects.
    total: FloatArray = np.add.reduce(sub_scores, axis=1)
    np.add(total, scale.base, out=total)  # base + Σ: addition commutes exactly
    np.maximum(total, scale.min, out=total)
    np.minimum(total, scale.max, out=total)
    return total


def tier_codes(total: FloatArray, rulebook: Rulebook) -> npt.NDArray[Any]:
    """Letter tier of each total."""
    codes: npt.NDArray[Any] = tier_order(rulebook)[tier_index(total, rulebook)]
    return codes


def tier_of(total: float, rulebook: Rulebook) -> str:
    """The letter tier of one total: the highest tier whose ``min_score`` it reaches."""
    code: str = tier_order(rulebook)[tier_index(total, rulebook)]
    return code


def tier_order(rulebook: Rulebook) -> npt.NDArray[Any]:
    """Tier codes lowest first: the codes :func:`tier_index` numbers."""
    return derived(rulebook, "tier_order", _tier_order)


def _tier_order(rulebook: Rulebook) -> npt.NDArray[Any]:
    return np.array([t.code for t in rulebook.tiers[::-1]], dtype=object)


def _thresholds(rulebook: Rulebook) -> FloatArray:
    # Tiers are ordered highest first; searchsorted wants ascending thresholds.
    return np.array([t.min_score for t in rulebook.tiers[::-1]][1:], dtype=np.float64)


def tier_index(total: Any, rulebook: Rulebook) -> Any:
    """Number of each total's tier in :func:`tier_order` (0 = lowest tier): the one
    definition of the tier of a total, for one total or an array of them.

    Columnar writers keep this integer code (a dictionary index) instead of building one
    Python string per subject.
    """
    thresholds = derived(rulebook, "tier_thresholds", _thresholds)
    return np.searchsorted(thresholds, total, side="right")


_derived: dict[tuple[int, str], tuple[Rulebook, Any]] = {}


def derived(book: Rulebook, name: str, build: Callable[[Rulebook], T]) -> T:
    """What scoring derives from a rulebook (its :class:`TypeTable`, say), built once per
    rulebook: the one cache of scoring, with one rule (an entry lives as long as its
    rulebook object; a rulebook is immutable, so it never goes stale)."""
    key = (id(book), name)
    hit = _derived.get(key)
    if hit is None or hit[0] is not book:
        hit = _derived[key] = (book, build(book))
    value: T = hit[1]
    return value


def type_table(book: Rulebook) -> TypeTable:
    """The per-type parameters of ``book`` as arrays (built once per rulebook)."""
    return derived(book, "types", TypeTable)


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
        """Weight of each record: ``points × min(max(quantity, 0), max_units)`` for a type
        with a quantity and a record that gives one (``quantity`` is NaN where it has
        none), ``points`` otherwise."""
        weights = self.points[type_idx]
        # Most records carry no quantity: work out units only for those that do (same
        # expression, same bits, a fraction of the passes over a large batch).
        given = (quantity == quantity).nonzero()[0]  # not NaN (1-D: np.flatnonzero)
        if given.size:
            scaled = given[self.has_quantity[type_idx[given]]]
            t = type_idx[scaled]
            units = np.minimum(np.maximum(quantity[scaled], 0.0), self.max_units[t])
            weights[scaled] = self.points[t] * units
        return weights

    def contributions(
        self, type_idx: IntArray, quantity: FloatArray, age_days: FloatArray
    ) -> FloatArray:
        return contributions(
            self.weights(type_idx, quantity),
            age_days,
            self.half_life[type_idx],
            self.retention[type_idx],
        )
