"""``freshness.outages``, the cheap as-of reading of which sources are in outage that
scoring and decisions call per request, gives the answer of ``freshness.freshness``
(the public status's) as of every instant, on SQLite and PostgreSQL: before a
declaration, during silences, after a report, under a relaxed or tightened
declaration, for a declared type never reported."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.db import Direct
from credence.ledger import freshness
from credence.ledger.freshness import Cadence
from tests.watch.test_freshness import DAY, US, Stopped, declare, repaid
from tests.watch.test_freshness import stopped as stopped  # the fixture, re-exported
from tests.world import World, submit


def expected(session: Session, at: datetime) -> dict[int, tuple[str, datetime, tuple[str, ...]]]:
    """The sources in outage at ``at`` as the public status reads them."""
    return {
        s.source_id: (
            s.code,
            s.outage_since,
            tuple(sorted(t.record_type for t in s.types if t.in_outage)),
        )
        for s in freshness.freshness(session, at)
        if s.outage_since is not None
    }


def cheap(session: Session, at: datetime) -> dict[int, tuple[str, datetime, tuple[str, ...]]]:
    """``outages`` on the session, checked against ``outages_direct`` on its connection
    (the API's decision path): the same statements, read through both drivers' rows."""
    found = {
        source_id: (o.code, o.since, o.record_types)
        for source_id, o in freshness.outages(session, at).items()
    }
    direct = freshness.outages_direct(Direct.within(session), at)
    assert {s: (o.code, o.since, o.record_types) for s, o in direct.items()} == found
    return found


def test_outages_as_of_any_instant_are_the_status_s(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, stopped: Stopped
) -> None:
    t = stopped
    instants = [
        t.declared - US,
        t.declared,
        t.reports[3],
        t.last,
        t.since,
        t.since + US,
        t.since + 20 * DAY,
        t.declared + 30 * DAY,
        t.declared + 30 * DAY + US,
        t.back - US,
        t.back,
        t.back + 10 * DAY,
        t.back + 10 * DAY + US,
        clock.now(),
    ]
    seen = []
    with sessions() as session:
        for at in instants:
            got = cheap(session, at)
            assert got == expected(session, at), at
            seen.append(sorted(o[0] for o in got.values()))
    bank = world.sources["bank"].id
    with sessions() as session:
        during = freshness.outages(session, t.since + US)
    assert during[bank].since == t.since
    assert during[bank].record_types == ("loan_repaid",)
    assert during[bank].name == world.sources["bank"].name
    # Both kinds of answer occur: nobody, the court alone, the bank and the court.
    assert [] in seen
    assert ["court"] in seen
    assert ["bank", "court"] in seen


def test_outages_follow_the_declaration_in_force(
    sessions: sessionmaker[Session], world: World, clock: FixedClock
) -> None:
    declared = clock.now() - 100 * DAY
    declare(sessions, world, "bank", declared, Cadence("loan_repaid", 7, 3))
    last = declared + DAY
    assert submit(sessions, world, "bank", last, repaid(world, 0, last)) == ["created"]
    relaxed, tightened = declared + 20 * DAY, declared + 40 * DAY
    declare(sessions, world, "bank", relaxed, Cadence("loan_repaid", 30, 0))
    declare(sessions, world, "bank", tightened, Cadence("loan_repaid", 2, 0))
    # Two declarations at one instant: the later row is in force.
    declare(sessions, world, "bank", tightened + DAY, Cadence("loan_default", 5, 0))
    declare(sessions, world, "bank", tightened + DAY, Cadence("loan_default", 50, 0))
    bank = world.sources["bank"].id
    with sessions() as session:
        for at in (
            last + 10 * DAY + US,
            relaxed - US,
            relaxed,
            last + 30 * DAY + US,
            tightened,
            tightened + US,
            tightened + 7 * DAY,
        ):
            assert cheap(session, at) == expected(session, at), at
        assert freshness.outages(session, relaxed) == {}
        assert freshness.outages(session, tightened + US)[bank].since == tightened
        # loan_default: 50 days in force, not 5.
        assert freshness.outages(session, tightened + 7 * DAY)[bank].record_types == (
            "loan_repaid",
        )
