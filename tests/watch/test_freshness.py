"""Freshness on SQLite and PostgreSQL: a source that stops reporting is in outage from
last report + cadence + grace until it reports again, as of any instant, asked before or
after it came back; declarations are read as of the instant, and a new one never dates
an outage before it was made."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.errors import InvalidInput
from credence.ledger import freshness
from credence.ledger.freshness import Cadence
from credence.watch.status import SourceStatus, Status, TypeStatus, status
from tests.cli.conftest import Invoke
from tests.cli.conftest import cli as cli  # the fixture, re-exported
from tests.client import Api
from tests.world import World, rec, submit

DAY = timedelta(days=1)
US = timedelta(microseconds=1)


def declare(
    sessions: sessionmaker[Session], world: World, source: str, at: datetime, *cadences: Cadence
) -> None:
    with sessions.begin() as session:
        freshness.declare(
            session, source=session.merge(world.sources[source]), cadences=cadences, at=at
        )


def status_at(sessions: sessionmaker[Session], at: datetime) -> Status:
    with sessions() as session:
        return status(session, at)


def source_at(sessions: sessionmaker[Session], code: str, at: datetime) -> SourceStatus:
    return next(s for s in status_at(sessions, at).sources if s.code == code)


def type_at(
    sessions: sessionmaker[Session], code: str, record_type: str, at: datetime
) -> TypeStatus:
    return next(t for t in source_at(sessions, code, at).types if t.record_type == record_type)


def repaid(world: World, n: int, at: datetime) -> dict[str, object]:
    return rec(f"R-{n}", world.people[n % 3], "loan_repaid", at - DAY)


class Stopped:
    """The bank's timeline: cadence 7 days + 3 of grace for loan repayments declared at
    ``declared``; a report every 7 days from a day later, the last at ``last``; silent
    until ``back``, when it reports again. The court declared judgment defaults every 30
    days at ``declared`` and never reports one."""

    def __init__(self, clock: FixedClock) -> None:
        self.declared = clock.now() - 200 * DAY
        self.reports = [self.declared + DAY + 7 * k * DAY for k in range(14)]
        self.last = self.reports[-1]
        self.since = self.last + 10 * DAY
        self.back = clock.now() - 30 * DAY


@pytest.fixture
def stopped(sessions: sessionmaker[Session], world: World, clock: FixedClock) -> Stopped:
    t = Stopped(clock)
    declare(sessions, world, "bank", t.declared, Cadence("loan_repaid", 7, 3))
    declare(sessions, world, "court", t.declared, Cadence("judgment_default", 30, 0))
    for n, at in enumerate([*t.reports, t.back]):
        assert submit(sessions, world, "bank", at, repaid(world, n, at)) == ["created"]
    return t


def test_a_source_stopped_mid_history_is_in_outage_from_the_right_instant(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, stopped: Stopped
) -> None:
    t = stopped
    assert t.since == t.last + 10 * DAY
    # Before the declaration: not watched. Everything below is asked after the bank came
    # back, of instants before: the answers are those of their own instant.
    before = type_at(sessions, "bank", "loan_repaid", t.declared - US)
    assert (before.cadence_days, before.in_outage, before.outage_since) == (None, False, None)
    assert before.last_report is None
    # Reporting every week: never in outage, whatever the instant.
    for at in (t.declared, t.reports[0], t.reports[5] + 9 * DAY, t.last - US, t.last):
        seen = type_at(sessions, "bank", "loan_repaid", at)
        assert not seen.in_outage, at
        assert (seen.cadence_days, seen.grace_days, seen.declared_at) == (7, 3, t.declared)
    assert type_at(sessions, "bank", "loan_repaid", t.last - US).last_report == t.reports[-2]
    # Silent for exactly cadence + grace: not yet; a microsecond more: in outage, since
    # last report + cadence + grace.
    assert not type_at(sessions, "bank", "loan_repaid", t.since).in_outage
    for at in (t.since + US, t.since + 20 * DAY, t.back - US):
        seen = type_at(sessions, "bank", "loan_repaid", at)
        assert seen.in_outage, at
        assert seen.outage_since == t.since
        assert seen.last_report == t.last
        bank = source_at(sessions, "bank", at)
        assert (bank.in_outage, bank.outage_since, bank.last_report) == (True, t.since, t.last)
    # It reports again: the outage is over from that report on.
    for at in (t.back, t.back + 10 * DAY):
        seen = type_at(sessions, "bank", "loan_repaid", at)
        assert (seen.in_outage, seen.outage_since, seen.last_report) == (False, None, t.back)
        assert not source_at(sessions, "bank", at).in_outage
    # ... and silent again since: a new outage.
    again = type_at(sessions, "bank", "loan_repaid", clock.now())
    assert (again.in_outage, again.outage_since) == (True, t.back + 10 * DAY)
    # A type without a declaration is never in outage; a declared one never reported is
    # silent from its declaration.
    card = type_at(sessions, "bank", "credit_card_default", clock.now())
    assert (card.cadence_days, card.in_outage, card.last_report) == (None, False, None)
    assert not type_at(sessions, "court", "judgment_default", t.declared + 30 * DAY).in_outage
    court = type_at(sessions, "court", "judgment_default", t.declared + 30 * DAY + US)
    assert (court.in_outage, court.outage_since) == (True, t.declared + 30 * DAY)
    # Sources without a declaration are shown, never in outage.
    back = status_at(sessions, t.back)
    assert [s.code for s in back.sources] == sorted(world.sources)
    assert [s.code for s in back.sources if s.in_outage] == ["court"]


def test_volume_is_counted_over_the_window_before_the_instant(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, stopped: Stopped
) -> None:
    t = stopped
    seen = status_at(sessions, t.last)
    assert seen.window_days == freshness.WINDOW_DAYS == 28
    bank = next(s for s in seen.sources if s.code == "bank")
    assert bank.window_from == t.last - 28 * DAY
    # Reports at last - 27, -20, -13, -6 and 0 days... the window is (from, at]: the one
    # 28 days before is out.
    inside = [r for r in t.reports if t.last - 28 * DAY < r <= t.last]
    assert len(inside) == 4
    assert bank.records_per_day == pytest.approx(4 / 28)
    repaid_ = next(x for x in bank.types if x.record_type == "loan_repaid")
    assert repaid_.records_per_day == pytest.approx(4 / 28)
    assert next(x for x in bank.types if x.record_type == "loan_default").records_per_day == 0
    # In the outage, nothing comes in.
    assert source_at(sessions, "bank", t.back - US).records_per_day == 0


def test_a_declaration_is_read_as_of_the_instant_and_never_dates_an_outage_before_it(
    sessions: sessionmaker[Session], world: World, clock: FixedClock
) -> None:
    declared = clock.now() - 100 * DAY
    declare(sessions, world, "bank", declared, Cadence("loan_repaid", 7, 3))
    last = declared + DAY
    assert submit(sessions, world, "bank", last, repaid(world, 0, last)) == ["created"]
    relaxed, tightened = declared + 20 * DAY, declared + 40 * DAY
    declare(sessions, world, "bank", relaxed, Cadence("loan_repaid", 30, 0))
    declare(sessions, world, "bank", tightened, Cadence("loan_repaid", 2, 0))

    def seen(at: datetime) -> tuple[int | None, bool, datetime | None]:
        t = type_at(sessions, "bank", "loan_repaid", at)
        return t.cadence_days, t.in_outage, t.outage_since

    # Under the first declaration: in outage 10 days after the report, asked later too.
    assert seen(last + 10 * DAY + US) == (7, True, last + 10 * DAY)
    assert seen(relaxed - US) == (7, True, last + 10 * DAY)
    # Relaxed to 30 days: the same silence is no outage under it, until 30 days.
    assert seen(relaxed) == (30, False, None)
    assert seen(last + 30 * DAY + US) == (30, True, last + 30 * DAY)
    # Tightened to 2 days, long after the report: in outage from the declaration on,
    # never before it.
    assert seen(tightened) == (2, False, None)
    assert seen(tightened + US) == (2, True, tightened)
    assert type_at(sessions, "bank", "loan_repaid", tightened).declared_at == tightened


def test_declarations_are_checked(
    sessions: sessionmaker[Session], world: World, clock: FixedClock
) -> None:
    def refused(*cadences: Cadence) -> str:
        with pytest.raises(InvalidInput) as err:
            declare(sessions, world, "bank", clock.now(), *cadences)
        return err.value.code

    assert refused(Cadence("tax_arrears", 7, 0)) == "type_not_registered"
    assert refused(Cadence("no_such_type", 7, 0)) == "type_not_registered"
    assert refused(Cadence("loan_repaid", 0, 0)) == "invalid_cadence"
    assert refused(Cadence("loan_repaid", 7, -1)) == "invalid_cadence"
    assert refused(Cadence("loan_repaid", freshness.MAX_DAYS + 1, 0)) == "invalid_cadence"
    assert refused(Cadence("loan_repaid", 7, 0), Cadence("loan_repaid", 8, 0)) == "invalid_cadence"
    assert refused() == "no_cadence"
    assert freshness.parse_cadence("loan_repaid=7+3") == Cadence("loan_repaid", 7, 3)
    assert freshness.parse_cadence(" loan_repaid = 7 ") == Cadence("loan_repaid", 7, 0)
    for text in ("loan_repaid", "loan_repaid=", "=7", "loan_repaid=-7", "loan_repaid=7+", "a b=7"):
        with pytest.raises(InvalidInput):
            freshness.parse_cadence(text)


def _public(body: Any, world: World) -> None:
    """Nothing in ``body`` (the status, as JSON text) names a subject."""
    for subject in (*world.people, world.company):
        for value in (subject.public_id, subject.identifier, subject.name):
            assert value not in body


def test_the_status_is_public_as_of_any_instant(
    api: Api, world: World, clock: FixedClock, stopped: Stopped
) -> None:
    t = stopped
    at = t.since + 5 * DAY
    reply = api.get("/v1/sources/status", params={"at": at.isoformat()})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["at"] == at.isoformat().replace("+00:00", "Z")
    assert (body["window_days"], body["min_cases"]) == (28, 10)
    bank = next(s for s in body["sources"] if s["code"] == "bank")
    assert bank["in_outage"] is True
    assert datetime.fromisoformat(bank["outage_since"]) == t.since
    repaid_ = next(x for x in bank["types"] if x["record_type"] == "loan_repaid")
    assert (repaid_["cadence_days"], repaid_["grace_days"], repaid_["in_outage"]) == (7, 3, True)
    assert datetime.fromisoformat(repaid_["last_report"]) == t.last
    # 14 records reported, none retracted; no dispute.
    assert bank["retraction_rate"] == {"value": 0.0, "cases": 14, "suppressed": None}
    assert bank["disputes_upheld"] == {
        "value": None,
        "cases": None,
        "suppressed": "fewer than 10 disputes decided",
    }
    _public(reply.text, world)
    # With a key or without, the same; by default, now.
    assert api.get("/v1/sources/status", "airline", params={"at": at.isoformat()}).json() == body
    now = api.get("/v1/sources/status").json()
    assert datetime.fromisoformat(now["at"]) == clock.now()
    bank_now = next(s for s in now["sources"] if s["code"] == "bank")
    assert datetime.fromisoformat(bank_now["outage_since"]) == t.back + 10 * DAY
    # Not of the future.
    later = api.get("/v1/sources/status", params={"at": (clock.now() + DAY).isoformat()})
    assert later.status_code == 422
    assert later.json()["error"]["code"] == "at_in_future"


def test_credence_sources_status(
    cli: Invoke, world: World, clock: FixedClock, stopped: Stopped
) -> None:
    t = stopped
    at = (t.since + 5 * DAY).isoformat()
    shown = cli("sources", "status", "--at", at, columns=200)
    assert shown.exit_code == 0, shown.output
    bank = next(line for line in shown.output.splitlines() if "│ bank " in line)
    assert f"since {t.since:%Y-%m-%d %H:%M}" in bank
    assert "0.0 % of 14" in bank
    assert "— (fewer than 10 disputes decided)" in bank
    repaid_ = next(line for line in shown.output.splitlines() if "loan_repaid" in line)
    assert "7 d + 3 d grace" in repaid_
    assert f"since {t.since:%Y-%m-%d %H:%M}" in repaid_
    _public(shown.output, world)
    as_json = cli("sources", "status", "--json", "--as-of", at)
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    bank_json = next(s for s in body["sources"] if s["code"] == "bank")
    assert datetime.fromisoformat(bank_json["outage_since"]) == t.since
    _public(as_json.output, world)
    future = cli("sources", "status", "--at", (clock.now() + DAY).isoformat())
    assert future.exit_code == 1
    assert "at_in_future" in future.output


def test_credence_sources_cadence_declares_anew(
    cli: Invoke, sessions: sessionmaker[Session], world: World, clock: FixedClock
) -> None:
    done = cli("sources", "cadence", "bank", "loan_repaid=14+7", "loan_default=60")
    assert done.exit_code == 0, done.output
    assert "loan_repaid every 14 d + 7 d grace" in done.output
    seen = source_at(sessions, "bank", clock.now())
    declared = {t.record_type: (t.cadence_days, t.grace_days) for t in seen.types}
    assert declared["loan_repaid"] == (14, 7)
    assert declared["loan_default"] == (60, 0)
    refused = cli("sources", "cadence", "bank", "tax_arrears=7")
    assert refused.exit_code == 1
    assert "type_not_registered" in refused.output
    added = cli(
        "sources",
        "add",
        "new_bank",
        "--name",
        "New Bank",
        "--kind",
        "bank",
        "--types",
        "loan_repaid,loan_default",
        "--cadence",
        "loan_repaid=7+7",
    )
    assert added.exit_code == 0, added.output
    new = source_at(sessions, "new_bank", clock.now())
    assert {t.record_type: t.cadence_days for t in new.types} == {
        "loan_default": None,
        "loan_repaid": 7,
    }
