"""The scoring formula, defined once.

For a record of type ``T`` that occurred at ``o`` and counts as of instant ``t``::

    age          = (t - o) in days
    weight       = T.points × min(quantity, T.quantity.max_units)   (types with a quantity)
                 = T.points                                         (other types)
    contribution = weight × 2^(−age / T.half_life_days)   while 0 ≤ age < T.retention_days
                 = 0                                      otherwise

Bounded returns (the rulebook declares them; repetition buys nothing past them)::

    type effect(T)       = Σ contributions of the subject's records of type T,
                           clamped to ±T.max_points when T declares it
    positive(category)   = min(Σ type effects of its positive types, positive_caps[category])
    negative(category)   = Σ type effects of its negative types (never bounded)
    sub-score(category)  = positive(category) + negative(category)
    total                = clamp(base + Σ sub-scores, scale.min, scale.max)
    tier                 = the highest tier whose min_score ≤ total and whose conditions
                           hold (conditions read the negative records that weigh against
                           the subject: contribution < 0), the lowest tier otherwise

A record counts as of ``t`` only if it was received at or before ``t`` and not retracted
(or otherwise ended) at or before ``t``; selecting those is the caller's job (the online
path in :mod:`credence.scoring.online`, the batch paths in :mod:`credence.scoring.batch`
and :mod:`credence.scoring.columnar`).

Every engine reduces its records to a **tally** (:func:`tally`): per subject, one row of
additive columns (positive and negative sums per category for types without a bound of
their own, one sum per bounded type, and counts of the negative records that weigh
against the subject, by severity). Tallies add: an engine may tally batches, partitions
or chunks separately and add the rows of a subject up. :func:`finish` turns tally rows
into sub-scores, totals and tiers. So there is no second copy of the formula.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from credence.rulebook.model import (
    CATEGORIES,
    CATEGORY_INDEX,
    SEVERITIES,
    SEVERITY_INDEX,
    Rulebook,
)

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


def tally(
    subject_idx: IntArray,
    type_idx: IntArray,
    contrib: FloatArray,
    n_subjects: int,
    types: TypeTable,
) -> FloatArray:
    """The ``(n_subjects, types.width)`` tally of records (see the module docstring):
    each record's contribution added into its type's column, and 1 into its severity's
    column if it weighs against the subject (contribution < 0). Two bincounts."""
    width = types.width
    flat = subject_idx * width + types.column[type_idx]
    out = np.bincount(flat, weights=contrib, minlength=n_subjects * width)
    against = (contrib < 0.0).nonzero()[0]
    if against.size:
        slots = subject_idx[against] * width + types.against_column[type_idx[against]]
        out += np.bincount(slots, minlength=n_subjects * width)
    return out.astype(np.float64, copy=False).reshape(n_subjects, width)


@dataclass(frozen=True)
class Finished:
    """Sub-scores ``(n, 4)``, totals and tier numbers (:func:`tier_index`) of tally rows,
    and what the explanation of a bound reads."""

    sub_scores: FloatArray
    totals: FloatArray
    tiers: IntArray
    #: ``(n, n_bounded_types)``: each bounded type's effect before its bound (a view of
    #: the tally).
    type_effects: FloatArray
    #: ``(n, 4)``: each category's positive points before its cap.
    positive: FloatArray
    #: ``(n, 3)``: how many negative records of each severity (least severe first) weigh
    #: against each subject: what the tiers' conditions read (a view of the tally).
    against: FloatArray


#: Tally rows finished at a time: a block's temporaries stay in the core's cache (4,096
#: rows of a 26-column tally are 832 KiB), and no temporary the size of a part is made.
FINISH_BLOCK = 1 << 12


def finish(rows: FloatArray, rulebook: Rulebook) -> Finished:
    """Sub-scores, totals and tiers of tally rows (:func:`tally`), by the bounds and the
    tier conditions of ``rulebook``, a block of rows at a time."""
    types = type_table(rulebook)
    n = rows.shape[0]
    first = 2 * N_CATEGORIES
    bounded = len(types.bounded)
    sub = np.empty((n, N_CATEGORIES))
    positive = np.empty((n, N_CATEGORIES))
    total = np.empty(n)
    tiers = np.empty(n, dtype=np.intp)
    for lo in range(0, n, FINISH_BLOCK):
        block = rows[lo : lo + FINISH_BLOCK]
        signed = block[:, :first].copy()  # (positive, negative) per category
        if bounded:
            # Each bounded type's effect clamped to ±its bound, added into its category
            # and sign's column (a 0/1 matrix: products are exact).
            clamped = np.clip(block[:, first : first + bounded], -types.bounds, types.bounds)
            signed += clamped @ types.bounded_into
        up = positive[lo : lo + FINISH_BLOCK]
        up[:] = signed[:, 0::2]
        capped = np.minimum(up, types.positive_caps)
        part = sub[lo : lo + FINISH_BLOCK]
        np.add(capped, signed[:, 1::2], out=part)
        total[lo : lo + FINISH_BLOCK] = totals(part, rulebook)
        against = block[:, types.width - len(SEVERITIES) :]
        tiers[lo : lo + FINISH_BLOCK] = tier_index(total[lo : lo + FINISH_BLOCK], rulebook, against)
    effects = rows[:, first : first + bounded]
    return Finished(sub, total, tiers, effects, positive, rows[:, types.width - len(SEVERITIES) :])


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


def tier_of(total: float, rulebook: Rulebook, against: Sequence[float]) -> str:
    """The letter tier of one total, given how many negative records of each severity
    (least severe first) weigh against the subject."""
    rows = np.array([against], dtype=np.float64).reshape(1, len(SEVERITIES))
    code: str = tier_order(rulebook)[tier_index(np.array([total]), rulebook, rows)[0]]
    return code


def tier_order(rulebook: Rulebook) -> npt.NDArray[Any]:
    """Tier codes lowest first: the codes :func:`tier_index` numbers."""
    return derived(rulebook, "tier_order", _tier_order)


def _tier_order(rulebook: Rulebook) -> npt.NDArray[Any]:
    return np.array([t.code for t in rulebook.tiers[::-1]], dtype=object)


def _thresholds(rulebook: Rulebook) -> FloatArray:
    # Tiers are ordered highest first; searchsorted wants ascending thresholds.
    return np.array([t.min_score for t in rulebook.tiers[::-1]][1:], dtype=np.float64)


def eligible(rulebook: Rulebook, against: FloatArray) -> npt.NDArray[np.bool_]:
    """``(n, tiers)``: whether each subject meets each tier's conditions (tiers numbered
    as :func:`tier_order`, lowest first), from the counts of negative records that weigh
    against them, by severity (``(n, 3)``, least severe first)."""
    ordered = rulebook.tiers[::-1]
    ok = np.ones((against.shape[0], len(ordered)), dtype=bool)
    columns = [against[:, k] for k in range(len(SEVERITIES))]
    for k, tier in enumerate(ordered):
        if tier.no_negative_at_or_above is not None:
            worst = SEVERITY_INDEX[tier.no_negative_at_or_above]
            for column in columns[worst:]:
                ok[:, k] &= column == 0
        if tier.max_negative_records is not None:
            count = sum(columns[1:], columns[0])
            ok[:, k] &= count <= tier.max_negative_records
    return ok


def tier_index(total: Any, rulebook: Rulebook, against: FloatArray) -> Any:
    """Number of each total's tier in :func:`tier_order` (0 = lowest tier): the one
    definition of a subject's tier. The highest tier whose threshold the total reaches
    and whose conditions hold (:func:`eligible`); the lowest tier has no conditions.

    Columnar writers keep this integer code (a dictionary index) instead of building one
    Python string per subject.
    """
    thresholds = derived(rulebook, "tier_thresholds", _thresholds)
    index = np.searchsorted(thresholds, total, side="right")
    if derived(rulebook, "tier_conditions", _has_conditions):
        ok = eligible(rulebook, against)
        rows = np.arange(index.shape[0])
        # Step down, highest tier first, while the tier reached is one whose conditions
        # fail; the lowest tier (0) always holds.
        for _ in range(len(rulebook.tiers) - 1):
            down = (index > 0) & ~ok[rows, index]
            if not down.any():
                break
            index = index - down
    return index


def _has_conditions(rulebook: Rulebook) -> bool:
    return any(t.conditional for t in rulebook.tiers)


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
        # The tally's columns (:func:`tally`): 2 per category (positive, negative), one
        # per type with a bound of its own, then one per severity.
        sign = np.array([1 if rt.points < 0 else 0 for rt in types], dtype=np.int64)
        column = 2 * self.category + sign
        bounded = [i for i, rt in enumerate(types) if rt.max_points is not None]
        for j, i in enumerate(bounded):
            column[i] = 2 * N_CATEGORIES + j
        #: Each type's tally column.
        self.column: IntArray = column
        self.bounded: list[tuple[int, int, float]] = [
            (int(self.category[i]), int(sign[i]), float(types[i].max_points or 0.0))
            for i in bounded
        ]
        #: Which type each bounded column is (its number).
        self.bounded_types: list[int] = bounded
        #: Each bounded type's bound, and the 0/1 matrix that adds its column into its
        #: category and sign's (``(bounded, 8)``).
        self.bounds = np.array([b for *_, b in self.bounded], dtype=np.float64)
        self.bounded_into = np.zeros((len(bounded), 2 * N_CATEGORIES), dtype=np.float64)
        for j, (category, sign_of, _) in enumerate(self.bounded):
            self.bounded_into[j, 2 * category + sign_of] = 1.0
        self.width = 2 * N_CATEGORIES + len(bounded) + len(SEVERITIES)
        #: The column a record of each type adds 1 to when it weighs against the subject.
        self.against_column: IntArray = np.array(
            [self.width - len(SEVERITIES) + SEVERITY_INDEX[rt.severity] for rt in types],
            dtype=np.int64,
        )
        caps = rulebook.positive_caps
        #: Each category's cap on positive points (inf where it has none).
        self.positive_caps = np.array([caps.get(c, np.inf) for c in CATEGORIES], dtype=np.float64)

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
