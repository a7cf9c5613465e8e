"""The scoring formula and the online scorer: known answers and the laws it obeys."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from credence.ledger.subject_file import RecordView
from credence.rulebook.loader import content_hash, default_rulebook, default_text
from credence.rulebook.model import Category
from credence.rulebook.store import edition_of
from credence.scoring import formula
from credence.scoring.online import compute
from tests.world import tier_for

BOOK = default_rulebook()
EDITION = edition_of(
    BOOK.version, content_hash(default_text()), datetime(2020, 1, 1, tzinfo=UTC), default_text()
)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def view(
    record_type: str,
    occurred: datetime,
    *,
    received: datetime | None = None,
    quantity: float | None = None,
    ended: datetime | None = None,
    ref: str = "r1",
    source: str = "src",
) -> RecordView:
    return RecordView(
        record_id=f"rec_{ref}",
        source_code=source,
        source_name=source.title(),
        source_ref=ref,
        record_type=record_type,
        occurred_at=occurred,
        received_at=received or occurred,
        quantity=quantity,
        decision_ref="D-1",
        ended_at=ended,
    )


def test_no_records_is_the_base_score_and_its_tier() -> None:
    score = compute([], EDITION, NOW)
    assert score.total == BOOK.scale.base
    assert score.tier == tier_for(BOOK, BOOK.scale.base)
    assert all(v == 0.0 for v in score.sub_scores.values())
    assert score.reasons == []


def test_a_record_halves_after_one_half_life_and_ends_at_retention() -> None:
    rt = BOOK.record_type("traffic_violation")
    assert rt is not None
    at_half = NOW - timedelta(days=rt.half_life_days)
    score = compute([view("traffic_violation", at_half)], EDITION, NOW)
    assert math.isclose(score.sub_scores[Category.SOCIAL], rt.points / 2, rel_tol=1e-12)
    assert math.isclose(score.total, BOOK.scale.base + rt.points / 2, rel_tol=1e-12)
    expired = NOW - timedelta(days=rt.retention_days)
    gone = compute([view("traffic_violation", expired)], EDITION, NOW)
    assert gone.total == BOOK.scale.base
    assert gone.contributions[0].status == "expired"


def test_quantities_are_capped() -> None:
    rt = BOOK.record_type("volunteer_service")
    assert rt is not None
    assert rt.quantity is not None
    many = compute([view("volunteer_service", NOW, quantity=1e6)], EDITION, NOW)
    (record,) = many.contributions
    assert math.isclose(record.weight, rt.points * rt.quantity.max_units)
    # The record's weight stops at max_units; the type's bound, if lower, then applies.
    assert rt.max_points is not None
    expected = min(rt.points * rt.quantity.max_units, rt.max_points)
    assert math.isclose(many.total - BOOK.scale.base, expected)
    few = compute([view("volunteer_service", NOW, quantity=10)], EDITION, NOW)
    assert math.isclose(few.total - BOOK.scale.base, rt.points * 10)


def test_explanation_orders_by_effect_and_names_reasons() -> None:
    records = [
        view("traffic_violation", NOW - timedelta(days=1), ref="a"),
        view("loan_default", NOW - timedelta(days=1), ref="b"),
        view("blood_donation", NOW - timedelta(days=1), ref="c"),
        view("heroic_act", NOW - timedelta(days=1), ref="d"),
        view("loan_repaid", NOW - timedelta(days=1), ref="e"),
    ]
    score = compute(records, EDITION, NOW)
    effects = [abs(c.points) for c in score.contributions]
    assert effects == sorted(effects, reverse=True)
    assert len(score.reasons) == 4
    assert score.reasons[0].code == "LOAN_DEFAULT"
    assert "lowers the score" in score.reasons[0].text


def test_tiers_follow_the_published_cut_offs() -> None:
    totals = np.array([1300.0, 1050.0, 1049.99, 1030.0, 960.0, 959.0, 850.0, 600.0, 599.9, 300.0])
    clean = np.zeros((totals.size, 3))
    codes = list(formula.tier_order(BOOK)[formula.tier_index(totals, BOOK, clean)])
    assert codes == [tier_for(BOOK, float(t)) for t in totals]
    assert codes[:2] == ["AAA", "AAA"]
    assert codes[-2:] == ["D", "D"]


# --- properties ----------------------------------------------------------------------

TYPES = [rt.code for rt in BOOK.record_types]


@st.composite
def records(draw: st.DrawFn) -> list[RecordView]:
    n = draw(st.integers(min_value=0, max_value=25))
    out = []
    for i in range(n):
        code = draw(st.sampled_from(TYPES))
        rt = BOOK.record_type(code)
        assert rt is not None
        occurred = NOW - timedelta(minutes=draw(st.integers(0, 60 * 24 * 365 * 6)))
        received = occurred + timedelta(minutes=draw(st.integers(0, 60 * 24 * 30)))
        ended = None
        if draw(st.booleans()) and draw(st.booleans()):
            ended = received + timedelta(minutes=draw(st.integers(0, 60 * 24 * 400)))
        quantity = draw(st.floats(0, 500)) if rt.quantity is not None else None
        out.append(
            view(
                code,
                occurred,
                received=received,
                quantity=quantity,
                ended=ended,
                ref=f"r{i}",
                source=draw(st.sampled_from(["bank", "court", "tax"])),
            )
        )
    return out


instants = st.integers(0, 60 * 24 * 365 * 6).map(lambda m: NOW - timedelta(minutes=m))


@settings(max_examples=150, deadline=None)
@given(records(), instants)
def test_score_as_of_t_ignores_records_received_after_t(
    recs: list[RecordView], at: datetime
) -> None:
    known = [r for r in recs if r.received_at <= at]
    assert compute(recs, EDITION, at).total == compute(known, EDITION, at).total
    assert compute(recs, EDITION, at).sub_scores == compute(known, EDITION, at).sub_scores


@settings(max_examples=150, deadline=None)
@given(records(), st.randoms(use_true_random=False))
def test_ingestion_order_does_not_matter(recs: list[RecordView], rnd: random.Random) -> None:
    shuffled = list(recs)
    rnd.shuffle(shuffled)
    a, b = compute(recs, EDITION, NOW), compute(shuffled, EDITION, NOW)
    assert a.total == b.total
    assert a.sub_scores == b.sub_scores
    assert a.tier == b.tier


@settings(max_examples=150, deadline=None)
@given(records(), st.data())
def test_a_retracted_record_contributes_nothing(
    recs: list[RecordView], data: st.DataObject
) -> None:
    if not recs:
        return
    i = data.draw(st.integers(0, len(recs) - 1))
    target = recs[i]
    retracted = RecordView(**{**target.__dict__, "ended_at": target.received_at})
    with_retracted = [*recs[:i], retracted, *recs[i + 1 :]]
    without = [*recs[:i], *recs[i + 1 :]]
    at = max(r.received_at for r in recs)
    assert (
        compute(with_retracted, EDITION, at).sub_scores == compute(without, EDITION, at).sub_scores
    )


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(TYPES), st.lists(st.integers(0, 3000), min_size=2, max_size=10))
def test_contributions_decay_monotonically_and_end_at_retention(code: str, ages: list[int]) -> None:
    rt = BOOK.record_type(code)
    assert rt is not None
    occurred = NOW - timedelta(days=3000)
    quantity = 1.0 if rt.quantity is not None else None
    points = []
    for age in sorted(ages):
        at = occurred + timedelta(days=age)
        score = compute([view(code, occurred, quantity=quantity)], EDITION, at)
        points.append(abs(score.total - BOOK.scale.base))
        if age >= rt.retention_days:
            assert score.total == BOOK.scale.base
    assert all(later <= earlier for earlier, later in itertools.pairwise(points))
