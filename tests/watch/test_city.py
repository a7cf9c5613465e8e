"""The demo city's honest sources, on SQLite and PostgreSQL: each declares the cadence
its volume makes honest, and none is ever in outage over the city's five years; the
same city with one source stopped shows it in outage from the right instant."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import EPOCH, FixedClock
from credence.lab.city import DELIVERY_EVERY_DAYS, build_city, honest_cadences, plan_city
from credence.ledger.freshness import Declared, SourceFreshness, freshness, outage_since
from credence.ledger.tables import Record, Source
from credence.rulebook.loader import default_rulebook
from credence.watch.status import status

DAY = timedelta(days=1)
US = timedelta(microseconds=1)
#: A small city, with some record types too rare for a cadence within five years.
PERSONS, ORGANISATIONS, RECORDS, YEARS, SEED = 300, 30, 6000, 5, 11


def fresh(sessions: sessionmaker[Session], at: datetime) -> list[SourceFreshness]:
    with sessions() as session:
        return freshness(session, at)


def test_the_honest_city_is_never_in_outage_and_a_stopped_source_is(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    # One city for both halves: building it is most of the time.
    stats = build_city(
        sessions,
        persons=PERSONS,
        organisations=ORGANISATIONS,
        records=RECORDS,
        years=YEARS,
        seed=SEED,
        now=clock.now(),
    )
    end = fresh(sessions, stats.now)
    watched = [(s.code, t.record_type) for s in end for t in s.types if t.declared is not None]
    reported = {(s.code, t.record_type) for s in end for t in s.types if t.records}
    # Most types that report at all are watched; cadences are whole weeks, grace a week.
    assert len(watched) >= 20
    assert set(watched) <= reported
    for s in end:
        for t in s.types:
            if t.declared is not None:
                assert t.declared.cadence_days % DELIVERY_EVERY_DAYS == 0
                assert t.declared.grace_days == DELIVERY_EVERY_DAYS
    # Deliveries come at the end of a day (23:59:59): a silence is longest just before
    # one, so asking every day a second before covers every outage there could be.
    day = datetime.combine(stats.start.date(), time(23, 59, 58), stats.start.tzinfo)
    asked = 0
    while day <= stats.now:
        for s in fresh(sessions, day):
            assert not s.in_outage, (s.code, [t.record_type for t in s.types if t.in_outage], day)
        day += DAY
        asked += 1
    assert asked > 5 * 365
    with sessions() as session:
        assert not any(s.in_outage for s in status(session, stats.now).sources)

    # The city bank's records of the last year taken away, as if it had stopped then
    # (this store is the test's own; nothing else reads it).
    stop = stats.now - 365 * DAY
    with sessions.begin() as session:
        bank = session.scalars(select(Source.id).where(Source.code == "city_bank")).one()
        session.execute(delete(Record).where(Record.source_id == bank, Record.received_at > stop))
    before = next(s for s in fresh(sessions, stop) if s.code == "city_bank")
    assert not before.in_outage
    repaid = next(t for t in before.types if t.record_type == "loan_repaid")
    assert repaid.declared is not None
    assert repaid.last_report is not None
    assert repaid.last_report == before.last_report
    # Loan repayments, its most frequent type, are the first to be late.
    since = repaid.last_report + repaid.declared.allowed_silence
    assert not next(s for s in fresh(sessions, since) if s.code == "city_bank").in_outage
    after = next(s for s in fresh(sessions, since + US) if s.code == "city_bank")
    assert (after.in_outage, after.outage_since) == (True, since)
    assert [t.record_type for t in after.types if t.in_outage] == ["loan_repaid"]
    # A year on it is still in outage since that instant; every other source is not.
    with sessions() as session:
        now = status(session, stats.now)
    assert [s.code for s in now.sources if s.in_outage] == ["city_bank"]
    assert next(s for s in now.sources if s.code == "city_bank").outage_since == since


def test_the_demo_city_at_its_full_size_would_never_be_in_outage(clock: FixedClock) -> None:
    """The demo's own city (10,000 persons, 200,000 records), planned without a store:
    by the ledger's rule, no declared type is ever silent long enough, just before any of
    its reports or at the end, for an outage. (A judgment satisfied, declared from the
    start, would be: the court has none to report in the city's first weeks.)"""
    plan = plan_city(default_rulebook(), now=clock.now())
    declarations = honest_cadences(plan)
    assert len(declarations) == len({(d.source, d.cadence.record_type) for d in declarations})
    assert len(declarations) >= 35
    for d in declarations:
        declared = Declared(d.cadence.cadence_days, d.cadence.grace_days, d.at, d.at)
        s = plan.source_codes.index(d.source)
        t = plan.type_codes.index(d.cadence.record_type)
        seconds = sorted(
            r for r, si, ti in zip(plan.received.tolist(), plan.source_idx.tolist(),
                                   plan.type_idx.tolist(), strict=True)
            if si == s and ti == t
        )  # fmt: skip
        reports = [EPOCH + timedelta(seconds=r) for r in seconds]
        last = None
        for report in [r for r in reports if r >= d.at]:
            assert outage_since(report - US, last, declared) is None, (d, report)
            last = report
        assert outage_since(plan.now, last, declared) is None, d
