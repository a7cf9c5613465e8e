"""Tier hysteresis: no flapping at a boundary, and the raw tier away from boundaries."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.journal import JournalEntry
from credence.notifications.tables import Notification
from credence.rulebook.loader import default_rulebook
from credence.tiers.hysteresis import next_tier
from credence.tiers.service import shown_tier, update_tiers
from tests.world import build_world, tier_for

BOOK = default_rulebook()
BAND = BOOK.tier_hysteresis
TIER_CODES = [t.code for t in BOOK.tiers]
BOUNDARIES = [t.min_score for t in BOOK.tiers[:-1]]
#: No negative record weighs against the subject (counts by severity, least first).
CLEAN = (0, 0, 0)


def test_the_default_rulebook_has_a_band() -> None:
    assert BAND > 0


@given(
    st.sampled_from(BOUNDARIES),
    st.lists(st.floats(-0.999, 0.999), min_size=1, max_size=60),
    st.sampled_from([None, *TIER_CODES]),
)
def test_hovering_within_the_band_changes_tier_at_most_once(
    boundary: float, offsets: list[float], start: str | None
) -> None:
    shown = start
    changes = 0
    for offset in offsets:
        tier = next_tier(BOOK, shown, boundary + offset * BAND, CLEAN)
        if shown is not None and tier != shown:
            changes += 1
        shown = tier
    assert changes <= 1


@given(st.floats(200, 1400), st.sampled_from([None, *TIER_CODES]))
def test_away_from_every_boundary_the_shown_tier_is_the_raw_tier(
    total: float, previous: str | None
) -> None:
    if min(abs(total - b) for b in BOUNDARIES) < BAND:
        return
    assert next_tier(BOOK, previous, total, CLEAN) == tier_for(BOOK, total)


@given(st.floats(200, 1400), st.sampled_from(TIER_CODES))
def test_without_a_band_hysteresis_is_the_raw_tier(total: float, previous: str) -> None:
    book = BOOK.model_copy(update={"tier_hysteresis": 0.0})
    assert next_tier(book, previous, total, CLEAN) == tier_for(book, total)


@given(
    st.floats(200, 1400),
    st.sampled_from([None, *TIER_CODES]),
    st.tuples(*[st.integers(0, 2)] * 3),
)
def test_the_band_never_softens_a_condition(
    total: float, previous: str | None, against: tuple[int, int, int]
) -> None:
    shown = next_tier(BOOK, previous, total, against)
    tier = next(t for t in BOOK.tiers if t.code == shown)
    if tier.max_negative_records is not None:
        assert sum(against) <= tier.max_negative_records
    if tier.no_negative_at_or_above is not None:
        assert against[2] == 0  # the default rulebook's AA: nothing serious


def test_a_negative_record_takes_the_top_tier_away_at_once() -> None:
    # Shown AAA, total well above it: a minor negative (AAA allows none) moves the
    # subject to AA now, a serious one (AA allows none) to A, band or not.
    assert next_tier(BOOK, "AAA", 1100.0, CLEAN) == "AAA"
    assert next_tier(BOOK, "AAA", 1100.0, (1, 0, 0)) == "AA"
    assert next_tier(BOOK, "AAA", 1100.0, (0, 0, 1)) == "A"
    assert next_tier(BOOK, "AA", 1100.0, (0, 0, 1)) == "A"
    # Within the band of AA's threshold, a subject shown A stays A whatever happens.
    assert next_tier(BOOK, "A", 1031.0, (1, 0, 0)) == "A"


def test_changes_are_stored_notified_and_journalled(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    world = build_world(sessions, clock, people=2)
    a, b = world.people[0].id, world.people[1].id
    aa = next(t for t in BOOK.tiers if t.code == "AA").min_score
    with sessions.begin() as session:
        assert (
            update_tiers(
                session, BOOK, clock.now(), [(a, 1000.0, CLEAN), (b, 1000.0, CLEAN)]
            ).changed
            == 0
        )
    clock.advance(timedelta(days=1))
    with sessions.begin() as session:
        # a crosses into AA by less than the band: stays A; b clears it: moves up.
        changed = update_tiers(
            session, BOOK, clock.now(), [(a, aa + BAND / 2, CLEAN), (b, aa + BAND + 1, CLEAN)]
        )
        assert (changed.up, changed.down) == (1, 0)
    with sessions() as session:
        assert shown_tier(session, a) == "A"
        assert shown_tier(session, b) == "AA"
        texts = session.scalars(select(Notification.text).where(Notification.subject_id == b))
        assert any("from A to AA" in t for t in texts)
        # A first tier is an entry too (it writes the row); a move is one more.
        kinds = session.scalars(select(JournalEntry.kind)).all()
        assert kinds.count("tier_changed") == 3
