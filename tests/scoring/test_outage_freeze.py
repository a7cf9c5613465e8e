"""Outages are not behaviour, online and in the nightly engine, on SQLite and
PostgreSQL: while the bank is in outage its records stop decaying (the age counts to the
outage's start) for at most the edition's 60 days, then decay again and the file says
why; a fresh default from the working court counts at once; once the bank reports again
its records age as any other. Both engines agree at every instant."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.ledger.tables import Subject
from credence.rulebook.store import Edition
from credence.scoring.batch import score_population
from credence.scoring.online import Score, score_subject
from tests.scoring.outage_world import DAY, MAX_FREEZE, Timeline, stopped_bank, without_freeze


@pytest.fixture
def timeline(sessions: sessionmaker[Session], clock: FixedClock) -> Timeline:
    return stopped_bank(sessions, clock)


def online(
    sessions: sessionmaker[Session], t: Timeline, at: datetime, edition: Edition | None = None
) -> list[Score]:
    with sessions() as session:
        return [
            score_subject(session, session.get_one(Subject, p.id), edition or t.world.edition, at)
            for p in t.world.people
        ]


def batch(
    sessions: sessionmaker[Session], t: Timeline, at: datetime, edition: Edition | None = None
) -> list[float]:
    with sessions() as session:
        population = score_population(session, edition or t.world.edition, at)
    ids = population.subject_ids.tolist()
    return [float(population.totals[ids.index(p.id)]) for p in t.world.people]


def totals(scores: list[Score]) -> list[float]:
    return [s.total for s in scores]


def test_the_bank_s_records_stop_decaying_during_its_outage(
    sessions: sessionmaker[Session], timeline: Timeline
) -> None:
    t = timeline
    at_start = online(sessions, t, t.since)
    plain = without_freeze(t.world.edition)
    for days in (1, 30, 59):
        at = t.since + days * DAY
        scores = online(sessions, t, at)
        # The bank's people (the second has the court's default too: not yet at day 1).
        for k in (0, 2):
            assert scores[k].total == at_start[k].total, (days, k)
            assert scores[k].tier == at_start[k].tier
            # Without the freeze, the same records would have decayed.
            assert online(sessions, t, at, plain)[k].total < at_start[k].total
        repaid = [
            c for c in scores[0].contributions if c.record.record_type == "loan_repaid" and c.points
        ]
        assert repaid
        for c in repaid:
            assert c.frozen is not None
            assert c.frozen.since == t.since
            assert c.frozen.days == pytest.approx(days)
            assert c.frozen.decaying_since is None
            assert c.frozen.text == (
                f"reported by Bank, in outage since {t.since:%Y-%m-%d}: its age counts to "
                f"that date ({days} of at most {MAX_FREEZE} days)"
            )
        # The fourth person has nothing of the bank's: the outage changes nothing.
        assert scores[3].total == online(sessions, t, at, plain)[3].total
    # Before the outage, nothing is frozen.
    for at in (t.since - 3 * DAY, t.since):
        assert online(sessions, t, at) == online(sessions, t, at, plain)


def test_past_the_maximum_the_records_decay_again_and_the_file_says_why(
    sessions: sessionmaker[Session], timeline: Timeline
) -> None:
    t = timeline
    at = t.limit + 10 * DAY
    scores = online(sessions, t, at)
    plain = without_freeze(t.world.edition)
    # Sixty days younger than their plain age: the score the plain rule gives 60 days
    # earlier, for the bank's people (none of whose records came in since).
    assert totals(scores)[0] == online(sessions, t, at - MAX_FREEZE * DAY, plain)[0].total
    assert scores[0].total < online(sessions, t, t.limit)[0].total
    assert scores[0].total > online(sessions, t, at, plain)[0].total
    frozen = [c.frozen for c in scores[0].contributions if c.frozen is not None]
    assert frozen
    for f in frozen:
        assert f.days == MAX_FREEZE
        assert f.decaying_since == t.limit
        assert f.text == (
            f"reported by Bank, in outage since {t.since:%Y-%m-%d}: its age was frozen for "
            f"the maximum {MAX_FREEZE} days, decaying again since {t.limit:%Y-%m-%d}"
        )


def test_a_fresh_default_from_a_working_source_counts_at_once(
    sessions: sessionmaker[Session], timeline: Timeline
) -> None:
    t = timeline
    before = online(sessions, t, t.default_at - DAY)[1]
    after = online(sessions, t, t.default_at + DAY)[1]
    default = next(c for c in after.contributions if c.record.record_type == "judgment_default")
    assert default.frozen is None
    assert default.status == "counting"
    assert default.points == pytest.approx(default.weight * 2 ** (-2 / 730))  # two days old
    assert after.total == pytest.approx(before.total + default.points, abs=1e-9)


def test_a_source_reporting_again_ages_normally_again(
    sessions: sessionmaker[Session], timeline: Timeline
) -> None:
    t = timeline
    plain = without_freeze(t.world.edition)
    for at in (t.back, t.back + DAY, t.back + 10 * DAY):  # silent again past that
        scores = online(sessions, t, at)
        assert scores == online(sessions, t, at, plain), at
        assert all(c.frozen is None for s in scores for c in s.contributions)


def test_online_and_nightly_agree_at_every_instant(
    sessions: sessionmaker[Session], timeline: Timeline
) -> None:
    t = timeline
    plain = without_freeze(t.world.edition)
    moved = 0
    for at in t.instants():
        on = totals(online(sessions, t, at))
        assert batch(sessions, t, at) == pytest.approx(on, rel=1e-12, abs=1e-12), at
        off = totals(online(sessions, t, at, plain))
        assert batch(sessions, t, at, plain) == pytest.approx(off, rel=1e-12, abs=1e-12), at
        moved += on != off
    assert moved >= 5  # the freeze changed the scores at the instants in outage
