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

from bisect import bisect_right
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
    Tier,
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
    column if it weighs against the subject (contribution < 0). Two bincounts.

    Stored column by column (the array is Fortran-ordered): :func:`finish` works a
    column at a time, and a column of a batch's tally is contiguous.
    """
    width = types.width
    flat = types.column[type_idx] * n_subjects + subject_idx
    out = np.bincount(flat, weights=contrib, minlength=width * n_subjects)
    columns = out.astype(np.float64, copy=False).reshape(width, n_subjects)
    against = (contrib < 0.0).nonzero()[0]
    if against.size:
        n = len(SEVERITIES)
        slots = types.severity[type_idx[against]] * n_subjects + subject_idx[against]
        columns[width - n :] += np.bincount(slots, minlength=n * n_subjects).reshape(n, -1)
    return columns.T


def empty_tally(n_subjects: int, types: TypeTable) -> FloatArray:
    """A tally of no records for ``n_subjects`` (column by column, as :func:`tally`)."""
    return np.zeros((n_subjects, types.width), order="F")


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


#: Subjects finished at a time: a block's temporaries stay in the core's cache, and no
#: temporary the size of a part is made.
FINISH_BLOCK = 1 << 14


def finish(rows: FloatArray, rulebook: Rulebook) -> Finished:
    """Sub-scores, totals and tiers of tally rows (:func:`tally`), by the bounds and the
    tier conditions of ``rulebook``: a block of subjects at a time, a column at a time
    (fastest on a tally stored column by column, as :func:`tally` makes them)."""
    types = type_table(rulebook)
    n = rows.shape[0]
    columns = rows.T
    first = 2 * N_CATEGORIES
    bounded = len(types.bounded_types)
    severities = types.width - len(SEVERITIES)
    caps = types.positive_caps[:, None]
    scale = rulebook.scale
    sub = np.empty((N_CATEGORIES, n))
    positive = np.empty((N_CATEGORIES, n))
    total = np.empty(n)
    tiers = np.empty(n, dtype=np.intp)
    for lo in range(0, n, FINISH_BLOCK):
        hi = min(lo + FINISH_BLOCK, n)
        block = columns[:, lo:hi]
        signed = block[:first].copy()  # (positive, negative) per category
        if bounded:
            # Each bounded type's effect clamped to its bound (in a copy), then each
            # group's clamped effects added into its category and sign's column, in
            # column order.
            clamped = np.minimum(block[first : first + bounded], types.upper)
            if types.negative_bounded:
                np.maximum(clamped, types.lower, out=clamped)
            for into, start, end in types.groups:
                target = signed[into]
                for j in range(start, end):
                    target += clamped[j]
        up = positive[:, lo:hi]
        up[:] = signed[0::2]
        part = sub[:, lo:hi]
        np.minimum(up, caps, out=part)
        part += signed[1::2]
        # total = clamp(base + Σ sub-scores, scale.min, scale.max), summed in category
        # order.
        t = total[lo:hi]
        np.add(part[0], part[1], out=t)
        for c in range(2, N_CATEGORIES):
            t += part[c]
        t += scale.base
        np.maximum(t, scale.min, out=t)
        np.minimum(t, scale.max, out=t)
        tiers[lo:hi] = tier_index(t, rulebook, block[severities:].T)
    effects = columns[first : first + bounded].T
    return Finished(sub.T, total, tiers, effects, positive.T, columns[severities:].T)


def tier_of(total: float, rulebook: Rulebook, against: Sequence[float]) -> str:
    """The letter tier of one total, given how many negative records of each severity
    (least severe first) weigh against the subject: :func:`tier_index` on one subject."""
    code: str = tier_order(rulebook)[tier_index(total, rulebook, against)]
    return code


def tier_order(rulebook: Rulebook) -> npt.NDArray[Any]:
    """Tier codes lowest first: the codes :func:`tier_index` numbers."""
    return derived(rulebook, "tier_order", _tier_order)


def _tier_order(rulebook: Rulebook) -> npt.NDArray[Any]:
    return np.array([t.code for t in rulebook.tiers[::-1]], dtype=object)


def _thresholds(rulebook: Rulebook) -> FloatArray:
    # Tiers are ordered highest first; searchsorted wants ascending thresholds.
    return np.array([t.min_score for t in rulebook.tiers[::-1]][1:], dtype=np.float64)


def _threshold_list(rulebook: Rulebook) -> list[float]:
    return [float(t) for t in _thresholds(rulebook)]


def meets(tier: Tier, against: Sequence[float]) -> bool:
    """Whether one subject, with ``against`` negative records of each severity (least
    severe first) weighing against them, meets ``tier``'s conditions."""
    return not _misses(tier, against)


def _misses(tier: Tier, against: Any) -> Any:
    """Whether each subject misses a condition of ``tier``: ``against`` is ``(n, 3)``
    counts of the negative records that weigh against them, by severity, least severe
    first (an answer per subject), or one subject's three counts (one answer)."""
    columns = (
        [against[:, k] for k in range(len(SEVERITIES))]
        if isinstance(against, np.ndarray) and against.ndim == 2
        else list(against)
    )
    missed: Any = False
    if tier.no_negative_at_or_above is not None:
        for column in columns[SEVERITY_INDEX[tier.no_negative_at_or_above] :]:
            missed = missed | (column != 0)
    if tier.max_negative_records is not None:
        missed = missed | (sum(columns[1:], columns[0]) > tier.max_negative_records)
    return missed


def tier_index(total: Any, rulebook: Rulebook, against: Any) -> Any:
    """Number of each total's tier in :func:`tier_order` (0 = lowest tier): the one
    definition of a subject's tier, for a column of totals (``against``: ``(n, 3)``) or
    one total (``against``: its three counts). The highest tier whose threshold the total
    reaches and whose conditions hold (:func:`meets`); the lowest tier has no conditions.

    Columnar writers keep this integer code (a dictionary index) instead of building one
    Python string per subject.
    """
    if isinstance(total, float | int):  # one subject: no numpy call per comparison
        index = bisect_right(derived(rulebook, "tier_threshold_list", _threshold_list), total)
    else:
        index = np.searchsorted(derived(rulebook, "tier_thresholds", _thresholds), total, "right")
    # From the highest tier down: a subject placed in a tier whose conditions they miss
    # steps down one; the step is checked again at the tier below (the lowest tier has
    # no conditions, so everyone stops there).
    ordered = rulebook.tiers[::-1]
    for k in range(len(ordered) - 1, 0, -1):
        if ordered[k].conditional:
            index -= (index == k) & _misses(ordered[k], against)
    return index


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
        # Bounded types' columns are grouped by the (category, sign) column they go into,
        # so that finish adds each group's clamped effects into that column in turn.
        bounded = sorted(
            (i for i, rt in enumerate(types) if rt.max_points is not None),
            key=lambda i: (int(column[i]), i),
        )
        into = [int(column[i]) for i in bounded]
        for j, i in enumerate(bounded):
            column[i] = 2 * N_CATEGORIES + j
        #: Each type's tally column.
        self.column: IntArray = column
        #: Which type each bounded column is (its number), and its bound.
        self.bounded_types: list[int] = bounded
        self.bounds = np.array([types[i].max_points for i in bounded], dtype=np.float64)
        # What finish clamps each bounded column to: a positive type's effect is never
        # below 0 and a negative one's never above, so each has one side only.
        negative = sign[bounded].astype(bool)
        self.upper = np.where(negative, np.inf, self.bounds)[:, None]
        self.lower = np.where(negative, -self.bounds, -np.inf)[:, None]
        self.negative_bounded = bool(negative.any())
        #: The groups of bounded columns (among them: start, end) that go into the same
        #: (category, sign) column, and that column.
        starts = [j for j in range(len(into)) if j == 0 or into[j] != into[j - 1]]
        ends = [*starts[1:], len(into)] if starts else []
        self.groups: list[tuple[int, int, int]] = [
            (into[a], a, b) for a, b in zip(starts, ends, strict=True)
        ]
        self.width = 2 * N_CATEGORIES + len(bounded) + len(SEVERITIES)
        #: Each type's severity number (the tally's last columns count the records that
        #: weigh against the subject, by severity).
        self.severity: IntArray = np.array(
            [SEVERITY_INDEX[rt.severity] for rt in types], dtype=np.int64
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
