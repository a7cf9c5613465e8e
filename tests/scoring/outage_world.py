"""A bank that stops reporting, for the tests of outages (not behaviour): a plain
builder, not a fixture, so the scoring, export and API tests share one timeline.

The bank declares loan repayments weekly (7 days + 3 of grace) 400 days back and
reports one a week, two for each of three people (and a streak for the third) and the
rest for the company, until
``last``; it is in outage from ``since`` = last + 10 days. The court declares judgment
defaults yearly at the same instant (watched, and working throughout) and reports one
default of the second person 5 days into the bank's outage. The bank reports again at
``back``, 80 days into its outage (past the 60 days of the default edition's maximum
freeze)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.ledger import freshness
from credence.ledger.freshness import Cadence
from credence.rulebook.store import Edition
from tests.world import World, build_world, rec, submit

DAY = timedelta(days=1)
US = timedelta(microseconds=1)
#: The default edition's maximum freeze.
MAX_FREEZE = 60


@dataclass
class Timeline:
    world: World
    declared: datetime
    last: datetime
    since: datetime
    default_at: datetime
    back: datetime
    reports: list[datetime] = field(default_factory=list)

    @property
    def limit(self) -> datetime:
        """When the maximum freeze runs out."""
        return self.since + MAX_FREEZE * DAY

    def instants(self) -> list[datetime]:
        """Before, at and after the outage's start, within and past the maximum, the
        report that ends it and after."""
        return [
            self.since - 3 * DAY,
            self.since,
            self.since + US,
            self.since + DAY,
            self.default_at + DAY,
            self.since + 30 * DAY,
            self.since + 59 * DAY,
            self.limit,
            self.limit + 10 * DAY,
            self.back - US,
            self.back,
            self.back + DAY,
        ]


def declare(
    sessions: sessionmaker[Session], world: World, source: str, at: datetime, *cad: Cadence
) -> None:
    with sessions.begin() as session:
        freshness.declare(session, source=session.merge(world.sources[source]), cadences=cad, at=at)


def stopped_bank(sessions: sessionmaker[Session], clock: FixedClock) -> Timeline:
    world = build_world(sessions, clock, people=4)
    declared = clock.now() - 400 * DAY
    declare(sessions, world, "bank", declared, Cadence("loan_repaid", 7, 3))
    declare(sessions, world, "court", declared, Cadence("judgment_default", 365, 0))
    reports = [declared + DAY + 7 * k * DAY for k in range(30)]
    people = world.people
    for n, at in enumerate(reports):
        # Two repayments each for three people (under the type's bound), the rest for
        # the company.
        person = people[(n // 5) % 3] if n % 5 == 0 else world.company
        assert submit(
            sessions, world, "bank", at, rec(f"R-{n}", person, "loan_repaid", at - DAY)
        ) == ["created"], n
    # A streak for the third person; the fourth has none of the bank's records.
    at = reports[-2] + DAY
    assert submit(
        sessions, world, "bank", at, rec("S-1", people[2], "on_time_payment_streak", at - DAY)
    ) == ["created"]
    last = reports[-1]
    since = last + 10 * DAY
    default_at = since + 5 * DAY
    judgment = rec("J-1", people[1], "judgment_default", default_at - DAY, decision_ref="J-1")
    assert submit(sessions, world, "court", default_at, judgment) == ["created"]
    back = since + 80 * DAY
    again = rec("R-back", people[0], "loan_repaid", back - DAY)
    assert submit(sessions, world, "bank", back, again) == ["created"]
    return Timeline(world, declared, last, since, default_at, back, reports)


def without_freeze(edition: Edition) -> Edition:
    """The same edition with no maximum freeze: outages freeze nothing (as an edition
    published before outages were part of the rulebook)."""
    book = edition.rulebook.model_copy(update={"outages": None})
    return replace(edition, rulebook=book)
