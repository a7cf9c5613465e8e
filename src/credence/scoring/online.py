"""Scoring one subject from their ledger entries, with the explanation.

:func:`compute` is pure: records, an edition of the rulebook and an instant in, a
:class:`Score` out. It applies the formula of :mod:`credence.scoring.formula` (the same
array functions the batch runner uses) to the records that count as of that instant.
:func:`score_subject` reads the records from the store first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

import numpy as np
from sqlalchemy.orm import Session

from credence.clock import MICROS_PER_DAY, to_micros
from credence.ledger import freshness
from credence.ledger.freshness import Outage
from credence.ledger.registry import SubjectKey
from credence.ledger.subject_file import RecordView, subject_records
from credence.rulebook.model import CATEGORIES, Category, Rulebook
from credence.rulebook.store import Edition
from credence.scoring import counting, formula
from credence.scoring.completeness import Completeness, per_category
from credence.wording import Coded, coded, render

#: How many reason codes an explanation (and an adverse decision) gives at most.
MAX_REASONS = 4

#: :func:`compute`'s ``outages`` when no source is in outage.
NO_OUTAGES: Mapping[int, Outage] = {}


@dataclass(frozen=True)
class Frozen:
    """Why a record's age stopped: its source was in outage at the instant scored
    (outages are not behaviour, :mod:`credence.scoring.counting`)."""

    source_name: str
    #: When the source's outage began.
    since: datetime
    #: Days of the record's age the freeze took away.
    days: float
    #: The edition's maximum freeze, in days.
    max_days: int
    #: When the maximum ran out and the record began to decay again; None while it has
    #: not.
    decaying_since: datetime | None

    @property
    def text(self) -> str:
        head = f"reported by {self.source_name}, in outage since {self.since:%Y-%m-%d}"
        if self.decaying_since is not None:
            return (
                f"{head}: its age was frozen for the maximum {self.max_days} days, decaying "
                f"again since {self.decaying_since:%Y-%m-%d}"
            )
        return (
            f"{head}: its age counts to that date ({self.days:.0f} of at most {self.max_days} days)"
        )


@dataclass(frozen=True)
class Contribution:
    """One record's part in a score as of an instant."""

    record: RecordView
    name: str
    category: Category | None
    weight: float
    points: float
    #: counting | expired (past retention) | not_in_rulebook | not_yet_received | held
    #: (at intake, awaiting review) | rejected (on review), or how
    #: its effect ended: retracted | deleted | corrected | unverifiable (dispute
    #: unanswered by its deadline) | repaired (see :data:`ENDED_STATUS`)
    status: str
    #: Set when its source's outage froze part of its age (counting records only).
    frozen: Frozen | None = None

    @property
    def frozen_days(self) -> float:
        """Days of its age an outage of its source took away (0: none)."""
        return 0.0 if self.frozen is None else self.frozen.days


@dataclass(frozen=True)
class Reason:
    """A plain-language reason code: a record type that moves the score most."""

    code: str
    text: str
    points: float
    #: The reason as a coded message (``factor_*`` of :mod:`credence.wording`), which
    #: ``text`` is in English: what a page renders in its reader's language.
    coded: Coded


@dataclass(frozen=True)
class Bound:
    """A bound of the rulebook (bounded returns) that cut what a subject's records add:
    a record type's ``max_points`` or a category's cap on positive points."""

    #: "record_type" or "category".
    scope: str
    #: The record type's code or the category.
    code: str
    #: Records behind the points (counting, worth something now).
    records: int
    #: How many of them, the weightiest first, fit within the bound (the last one may
    #: fit in part); the rest add nothing.
    within: int
    #: Points before the bound, and the points that count.
    before: float
    after: float
    text: str


@dataclass(frozen=True)
class Score:
    as_of: datetime
    rulebook_version: str
    rulebook_hash: str
    base: float
    minimum: float
    maximum: float
    sub_scores: dict[Category, float]
    total: float
    tier: str
    #: Every record considered, largest current effect first.
    contributions: list[Contribution] = field(default_factory=list)
    #: The bounds that cut something (bounded returns), as the explanation states them.
    bounds: list[Bound] = field(default_factory=list)
    #: How many negative records of each severity (least severe first) weigh against
    #: the subject: what the tiers' conditions read.
    against: tuple[int, ...] = (0, 0, 0)
    #: Each category: complete, or the sources in outage that report on it.
    completeness: tuple[Completeness, ...] = ()

    @cached_property
    def reasons(self) -> list[Reason]:
        """The reason codes of the score (:func:`reasons_for`); worked out when first
        read (a decision gives its own reasons and never reads these)."""
        return reasons_for(self.contributions, self.bounds)


#: The status of a record whose effect ended, by the cause that ended it.
ENDED_STATUS = {
    "retraction": "retracted",
    "dispute_deleted": "deleted",
    "dispute_corrected": "corrected",
    "dispute_lapsed": "unverifiable",
    "repair": "repaired",
    "identity_voided": "voided",
}


def _statuses(records: Sequence[RecordView], at: datetime) -> list[str]:
    """Each record's status as of ``at``: counting, as the one counting rule says
    (:data:`credence.scoring.counting.counts`, one record at a time: the online path
    scores a handful), or why not."""
    counts, never = counting.counts, counting.NEVER
    return [
        "counting" if counts(at, v.counts_from, v.ended_at or never) else _why_not(v, at)
        for v in records
    ]


def _why_not(view: RecordView, at: datetime) -> str:
    """Why a record the rule leaves out does not count: not received yet, held for
    review (or rejected on review), or ended."""
    if view.received_at > at:
        return "not_yet_received"
    if view.hold_status is not None and view.counts_from > at:
        return "rejected" if view.hold_status == "rejected" else "held"
    return ENDED_STATUS.get(view.ended_by or "retraction", "retracted")


def _canonical_order(view: RecordView) -> tuple[datetime, str, str, str]:
    # Sums are taken in a canonical order so that the same ledger gives the same
    # float result whatever order its records were ingested in.
    return (view.occurred_at, view.record_type, view.source_code, view.source_ref)


@dataclass(frozen=True)
class _Freeze:
    start_us: int
    end_us: int
    outage: Outage


def _freezes(outages: Mapping[int, Outage], max_days: int | None, at_us: int) -> dict[str, _Freeze]:
    """The freeze interval (:func:`credence.scoring.counting.freeze`) of each source in
    outage, by source code; empty when the edition never freezes."""
    if not outages or max_days is None:
        return {}
    out = {}
    for outage in outages.values():
        start, end = counting.freeze(at_us, to_micros(outage.since), max_days)
        if end > start:
            out[outage.code] = _Freeze(start, end, outage)
    return out


def compute(
    records: Sequence[RecordView],
    edition: Edition,
    at: datetime,
    *,
    outages: Mapping[int, Outage] = NO_OUTAGES,
) -> Score:
    """The score as of ``at`` under ``edition``: a pure function of its arguments.

    ``outages``: the sources in outage at ``at``, by source id
    (:func:`credence.ledger.freshness.outages` as of ``at``); the age of their records
    is frozen as the edition says (:mod:`credence.scoring.counting`). By default none
    is in outage."""
    book = edition.rulebook
    types = formula.type_table(book)
    index = types.index
    ordered = sorted(records, key=_canonical_order) if len(records) > 1 else records
    statuses = _statuses(ordered, at)
    # Positions (in ``ordered``) of the records that count, and their type numbers.
    scored: list[int] = []
    type_list: list[int] = []
    for i, view in enumerate(ordered):
        if statuses[i] == "counting":
            t = index.get(view.record_type)
            if t is not None:
                scored.append(i)
                type_list.append(t)
    point_list: list[float] = []
    weight_list: list[float] = []
    age_list: list[float] = []
    retention_list: list[float] = []
    max_days = counting.max_freeze_days(book)
    at_us = to_micros(at)
    freezes = _freezes(outages, max_days, at_us)
    #: Microseconds of age frozen, per position in ``scored`` (empty: none frozen).
    frozen_list: list[int] = []
    if not scored:
        finished = _nothing_counts(book)
    else:
        type_idx = np.array(type_list, dtype=np.int64)
        counted = [ordered[i] for i in scored]
        quantity = np.array(
            [np.nan if v.quantity is None else v.quantity for v in counted], dtype=np.float64
        )
        occurred = [to_micros(v.occurred_at) for v in counted]
        if freezes:
            frozen_list = [
                _frozen_us(v, us, freezes) for v, us in zip(counted, occurred, strict=True)
            ]
            age_list = [
                counting.age_of(at_us, us, f) for us, f in zip(occurred, frozen_list, strict=True)
            ]
        else:
            age_list = [counting.age_of(at_us, us) for us in occurred]
        ages = np.array(age_list, dtype=np.float64)
        weights = types.weights(type_idx, quantity)
        retention = types.retention[type_idx]
        # types.contributions(type_idx, quantity, age), with the weights computed once.
        points = formula.contributions(weights, ages, types.half_life[type_idx], retention)
        point_list, weight_list = points.tolist(), weights.tolist()
        retention_list = retention.tolist()
        subject_idx = np.zeros(len(scored), dtype=np.int64)
        finished = formula.finish(formula.tally(subject_idx, type_idx, points, 1, types), book)
    row = finished.sub_scores[0].tolist()
    total = float(finished.totals[0])
    sub_scores = {c: row[i] for i, c in enumerate(CATEGORIES)}

    by_position = {pos: k for k, pos in enumerate(scored)}
    contributions: list[Contribution] = []
    record_type = book.record_type
    for i, view in enumerate(ordered):
        rt = record_type(view.record_type)
        k = by_position.get(i)
        if k is None:
            contributions.append(
                Contribution(
                    record=view,
                    name=rt.name if rt is not None else view.record_type,
                    category=rt.category if rt is not None else None,
                    weight=0.0,
                    points=0.0,
                    status=statuses[i] if rt is not None else "not_in_rulebook",
                )
            )
            continue
        assert rt is not None  # it counts: its type is in the rulebook
        pts = point_list[k]
        # Past its retention a record counts no more (the formula's own test: its age
        # is at least the retention). Nothing else makes it expired: a record worth 0
        # points (quantity 0) counts, for 0 points, until its retention ends.
        status = "expired" if age_list[k] >= retention_list[k] else statuses[i]
        frozen = None
        if frozen_list and frozen_list[k] > 0:
            assert max_days is not None  # something froze: the edition freezes
            frozen = _frozen_of(freezes[view.source_code], frozen_list[k], max_days, at_us)
        contributions.append(
            Contribution(
                record=view,
                name=rt.name,
                category=rt.category,
                weight=weight_list[k],
                points=pts,
                status=status,
                frozen=frozen,
            )
        )
    if len(contributions) > 1:
        contributions.sort(key=lambda c: (-abs(c.points), c.record.occurred_at))
    return Score(
        as_of=at,
        rulebook_version=edition.version,
        rulebook_hash=edition.content_hash,
        base=book.scale.base,
        minimum=book.scale.min,
        maximum=book.scale.max,
        sub_scores=sub_scores,
        total=total,
        tier=str(formula.tier_order(book)[finished.tiers[0]]),
        contributions=contributions,
        bounds=_bounds(finished, book, contributions) if scored else [],
        against=tuple(int(n) for n in finished.against[0]),
        completeness=_completeness(outages, book),
    )


def _completeness(outages: Mapping[int, Outage], book: Rulebook) -> tuple[Completeness, ...]:
    """Every category's completeness (that of a complete ledger worked out once per
    rulebook: no source is in outage almost always)."""
    if not outages:
        return formula.derived(book, "complete", lambda b: per_category(NO_OUTAGES, b))
    return per_category(outages, book)


def _frozen_us(view: RecordView, occurred_us: int, freezes: dict[str, _Freeze]) -> int:
    """Microseconds of the record's age its source's outage takes away (the one
    freeze, :data:`credence.scoring.counting.frozen`)."""
    found = freezes.get(view.source_code)
    if found is None:
        return 0
    return int(counting.frozen(occurred_us, found.start_us, found.end_us))


def _frozen_of(freeze: _Freeze, frozen_us: int, max_days: int, at_us: int) -> Frozen:
    since = freeze.outage.since
    limit = since + timedelta(days=max_days)
    return Frozen(
        source_name=freeze.outage.name,
        since=since,
        days=frozen_us / MICROS_PER_DAY,
        max_days=max_days,
        decaying_since=limit if freeze.end_us < at_us else None,
    )


def _nothing_counts(book: Rulebook) -> formula.Finished:
    """The score of a subject none of whose records count: the formula's finish of an
    empty tally, worked out once per rulebook (most decisions find no record of the
    service's categories)."""
    return formula.derived(book, "nothing", _no_contributions)


def _no_contributions(book: Rulebook) -> formula.Finished:
    none = np.zeros(0, dtype=np.int64)
    types = formula.type_table(book)
    rows = formula.tally(none, none, np.zeros(0, dtype=np.float64), 1, types)
    return formula.finish(rows, book)


def _bounds(
    finished: formula.Finished, book: Rulebook, contributions: Sequence[Contribution]
) -> list[Bound]:
    """The bounds that cut something, in words: for a record type, how many of its
    records (the weightiest first) fit within its bound; for a category, its positive
    points before and after its cap."""
    types = formula.type_table(book)
    out: list[Bound] = []
    for j, bound in enumerate(types.bounds.tolist()):
        before = float(finished.type_effects[0, j])
        if abs(before) <= bound:
            continue
        rt = book.record_types[types.bounded_types[j]]
        sizes = sorted(
            (abs(c.points) for c in contributions if c.record.record_type == rt.code and c.points),
            reverse=True,
        )
        within = int(np.searchsorted(np.cumsum(sizes), bound, side="left")) + 1
        within = min(within, len(sizes))
        after = bound if before > 0 else -bound
        out.append(
            Bound(
                scope="record_type",
                code=rt.code,
                records=len(sizes),
                within=within,
                before=before,
                after=after,
                text=f"{rt.name}: {within} of {len(sizes)} records count (this type moves "
                f"the score by at most {bound:g} points); the rest add nothing",
            )
        )
    for c, category in enumerate(CATEGORIES):
        cap = float(types.positive_caps[c])
        before = float(finished.positive[0, c])
        if before <= cap:
            continue
        records = sum(1 for x in contributions if x.category is category and x.points > 0)
        out.append(
            Bound(
                scope="category",
                code=category.value,
                records=records,
                within=records,
                before=before,
                after=cap,
                text=f"{book.categories.get(category, category.value)}: positive records "
                f"add {before:.1f} points, of which {cap:g} count (the category's cap); "
                "the rest add nothing",
            )
        )
    return out


def reasons_for(
    contributions: Sequence[Contribution],
    bounds: Sequence[Bound] = (),
    *,
    limit: int = MAX_REASONS,
) -> list[Reason]:
    """Up to ``limit`` reason codes: the record types that move the score most, by size of
    their combined current effect (after the type's bound), each in plain language."""
    effect: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    names: dict[str, str] = {}
    for c in contributions:
        if c.points != 0.0:
            effect[c.record.record_type] += c.points
            count[c.record.record_type] += 1
            names[c.record.record_type] = c.name
    bounded = {b.code: b for b in bounds if b.scope == "record_type"}
    for code, bound in bounded.items():
        effect[code] = bound.after
    ranked = sorted(effect, key=lambda code: (-abs(effect[code]), code))[:limit]
    reasons = []
    for code in ranked:
        n = count[code]
        what = {"record_type": {"code": code, "name": names[code]}, "points": abs(effect[code])}
        if code in bounded:
            message = coded("factor_bounded", **what, count=n, within=bounded[code].within)
        elif n == 1:
            message = coded("factor_raises" if effect[code] > 0 else "factor_lowers", **what)
        else:
            message = coded("factor_raise" if effect[code] > 0 else "factor_lower", **what, count=n)
        reasons.append(
            Reason(
                code=code.upper(),
                text=render(message["code"], message["params"]),
                points=effect[code],
                coded=message,
            )
        )
    return reasons


def score_subject(
    session: Session,
    subject: SubjectKey,
    edition: Edition,
    at: datetime,
    *,
    categories: frozenset[Category] | None = None,
    outages: Mapping[int, Outage] | None = None,
) -> Score:
    """Read a subject's records (only those of ``categories``, if given) and the sources
    in outage at ``at`` (what the edition freezes, and what the score says is missing),
    and score them. A caller scoring many subjects as of one instant reads ``outages``
    once (:func:`credence.ledger.freshness.outages`) and passes them."""
    record_types = None
    if categories is not None:
        record_types = category_types(edition.rulebook, categories)
    records = subject_records(session, subject.id, record_types=record_types, at=at)
    if outages is None:
        outages = freshness.outages(session, at)
    return compute(records, edition, at, outages=outages)


def category_types(book: Rulebook, categories: frozenset[Category]) -> list[str]:
    """The codes of ``book``'s record types in ``categories`` (remembered per rulebook)."""
    by_categories: dict[frozenset[Category], list[str]] = formula.derived(
        book, "category_types", lambda _: {}
    )
    codes = by_categories.get(categories)
    if codes is None:
        codes = by_categories[categories] = [
            rt.code for rt in book.record_types if rt.category in categories
        ]
    return codes
