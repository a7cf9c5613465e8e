"""Anomalies of a source raise alerts, on SQLite and PostgreSQL; honest history raises none.

The bank has an honest history: a weekly delivery of 430 records (420 loan repayments,
one per person, and 10 loan defaults) for twelve weeks. Into it, on the thirteenth
delivery day, go a bribe (20 positives for 5 people, under 5 % of its median day) or a
burst of retractions of its defaults; and the traffic police, a low-volume source that
reports every other day, stops. Each is alerted by a scan through the day of data (the
thresholds are README's, "Source anomalies: detectors and thresholds"), and none before.
The alerts are acknowledged and closed through the API and the command line, each step a
journal entry ``credence log verify`` covers. Scanning is idempotent, and two scans at
once raise each alert once.
"""

from __future__ import annotations

import threading
from datetime import datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.disputes import service as disputes
from credence.disputes.service import Answerer
from credence.identifiers import SubjectKind
from credence.journal import EventKind, JournalEntry
from credence.lab.city import build_city
from credence.ledger import freshness, registry
from credence.ledger import service as ledger
from credence.ledger.freshness import Cadence
from credence.ledger.schemas import SubjectIn
from credence.ledger.tables import Record, Subject
from credence.models import metadata
from credence.translog.verify import verify_log
from credence.watch import alerts, anomalies
from credence.watch.alerts import SourceAlert, SourceAlertScan
from tests import tamper
from tests.cities import demo_city
from tests.cli.conftest import Invoke
from tests.cli.conftest import cli as cli  # the fixture, re-exported
from tests.client import Api, assert_envelope
from tests.world import World, build_world, history_run, person_id, rec, submit

DAY = timedelta(days=1)
PEOPLE = 450
REPAID, DEFAULTS, WEEKS = 420, 10, 12


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    return build_world(sessions, clock, people=PEOPLE)


def noon(day: datetime) -> datetime:
    return datetime.combine(day.date(), time(12), day.tzinfo)


def end_of(day: datetime) -> datetime:
    return datetime.combine(day.date(), time.max, day.tzinfo)


class Honest:
    """The bank's honest weeks; ``bribe_day`` is the delivery day after them."""

    def __init__(self, clock: FixedClock) -> None:
        start = noon(clock.now() - 120 * DAY)
        self.deliveries = [start + 7 * k * DAY for k in range(WEEKS)]
        self.day = start + 7 * WEEKS * DAY
        self.defaults: list[str] = []


def delivery(world: World, k: int, at: datetime) -> list[dict[str, object]]:
    people = [world.people[(k * 37 + i) % PEOPLE] for i in range(REPAID + DEFAULTS)]
    return [
        rec(f"H-{k}-{i}", p, "loan_repaid", at - DAY)
        if i < REPAID
        else rec(f"H-{k}-{i}", p, "loan_default", at - DAY, decision_ref=f"LD-{k}-{i}")
        for i, p in enumerate(people)
    ]


@pytest.fixture
def honest(sessions: sessionmaker[Session], world: World, clock: FixedClock) -> Honest:
    h = Honest(clock)
    run = history_run(sessions, world, "bank", clock.now())
    for k, at in enumerate(h.deliveries):
        statuses = submit(sessions, world, "bank", at, *delivery(world, k, at), backfill_run=run)
        assert set(statuses) == {"created"}, set(statuses)
    with sessions() as session:
        h.defaults = list(
            session.scalars(
                select(Record.public_id)
                .where(Record.record_type == "loan_default")
                .order_by(Record.id)
            )
        )
    return h


def scan(sessions: sessionmaker[Session], clock: FixedClock, through: datetime) -> list[Any]:
    with sessions.begin() as session:
        found = alerts.scan(session, through=through, at=clock.now())
    return [(a.source, a.detector, a.day.date()) for a in found.raised]


def queue(api: Api, role: str | None = "operator", **params: str) -> Any:
    return api.call("GET", "/v1/sources/alerts", role, params=params)


def test_a_bribe_of_20_positives_for_5_people_is_alerted_the_day_it_arrives(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, honest: Honest, api: Api
) -> None:
    # The honest weeks raise nothing.
    assert scan(sessions, clock, end_of(honest.day - DAY)) == []
    bribed = world.people[:5]
    at = honest.day
    normal = delivery(world, WEEKS, at)
    bribe = [rec(f"B-{i}", bribed[i % 5], "loan_repaid", at - DAY) for i in range(20)]
    # 20 records, at most 5 % of the bank's median day (430 records).
    assert len(bribe) <= 0.05 * (REPAID + DEFAULTS)
    statuses = submit(sessions, world, "bank", at, *normal, *bribe)
    assert len(statuses) == len(normal) + len(bribe)
    assert scan(sessions, clock, end_of(at)) == [("bank", "concentration", at.date())]

    listed = queue(api)
    assert listed.status_code == 200, listed.text
    [alert] = listed.json()
    assert alert["detector"] == "concentration"
    assert alert["state"] == "open"
    # The honest days never gave anyone more than one positive: median and MAD 0, the
    # floors of README set the threshold (max(0 + 7 x 1.5, 10)); each bribed person got
    # three or four more than ever.
    assert (alert["median"], alert["mad"], alert["threshold"]) == (0.0, 0.0, 10.5)
    assert alert["value"] >= 15
    # No subject is named anywhere in it.
    for person in bribed:
        assert person.public_id not in listed.text
        assert person.identifier not in listed.text


def test_a_burst_of_retractions_of_negatives_is_alerted_the_day_it_comes(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, honest: Honest
) -> None:
    assert scan(sessions, clock, end_of(honest.day - DAY)) == []
    at = honest.day
    submit(sessions, world, "bank", at, *delivery(world, WEEKS, at))
    with sessions.begin() as session:
        bank = session.merge(world.sources["bank"])
        for public_id in honest.defaults[:8]:
            ledger.retract_record(
                session, source=bank, record_id=public_id, reason="withdrawn", at=at
            )
    assert scan(sessions, clock, end_of(at)) == [("bank", "negative_retractions", at.date())]
    with sessions() as session:
        [row] = session.scalars(select(SourceAlert))
    # Never a retraction before: median and MAD 0, threshold max(0 + 7 x 1, 5).
    assert (row.value, row.median, row.mad, row.threshold) == (8.0, 0.0, 0.0, 7.0)


def test_a_day_of_defaults_or_of_four_times_the_volume_is_alerted(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, honest: Honest
) -> None:
    # 200 defaults in a delivery of the usual size: the negative share jumps from 2 %.
    at = honest.day
    people = [world.people[i % PEOPLE] for i in range(REPAID + DEFAULTS)]
    skewed = [
        rec(f"M-{i}", p, "loan_repaid", at - DAY)
        if i < 230
        else rec(f"M-{i}", p, "loan_default", at - DAY, decision_ref=f"MD-{i}")
        for i, p in enumerate(people)
    ]
    submit(sessions, world, "bank", at, *skewed)
    assert scan(sessions, clock, end_of(at)) == [("bank", "negative_mix", at.date())]
    # A week later, four repayments for every person at once: over 4 x the median day
    # (and so many positives for each person as never before).
    later = at + 7 * DAY
    flood = [
        rec(f"F-{i}", world.people[i % PEOPLE], "loan_repaid", later - DAY)
        for i in range(4 * PEOPLE)
    ]
    submit(sessions, world, "bank", later, *flood)
    assert scan(sessions, clock, end_of(later)) == [
        ("bank", "volume", later.date()),
        ("bank", "concentration", later.date()),
    ]


def test_a_day_of_many_people_new_to_the_source_is_alerted(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, honest: Honest
) -> None:
    # Forty people the bank never reported on, each given a repayment with the usual
    # delivery: after the first weeks the bank met nobody new.
    at = honest.day
    with sessions.begin() as session:
        registry_source = session.merge(world.sources["civil_registry"])
        newcomers = [
            registry.register_subject(
                session,
                source=registry_source,
                data=SubjectIn(
                    kind=SubjectKind.PERSON, identifier=person_id(PEOPLE + n), name=f"N{n}"
                ),
                at=at - 30 * DAY,
            )[0]
            for n in range(40)
        ]
        session.expunge_all()
    met = [rec(f"N-{i}", p, "loan_repaid", at - DAY) for i, p in enumerate(newcomers)]
    submit(sessions, world, "bank", at, *delivery(world, WEEKS, at), *met)
    assert scan(sessions, clock, end_of(at)) == [("bank", "new_subjects", at.date())]
    with sessions() as session:
        [row] = session.scalars(select(SourceAlert))
    assert (row.value, row.median, row.mad, row.threshold) == (40.0, 0.0, 0.0, 10.0)


def test_a_day_of_disputes_upheld_against_a_source_is_alerted(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, honest: Honest
) -> None:
    at = honest.day
    submit(sessions, world, "bank", at, *delivery(world, WEEKS, at))
    # Eight people dispute a loan repayment the bank reported (the wrong person's); the
    # bank deletes them all in one day.
    with sessions() as session:
        disputed = session.execute(
            select(Record.public_id, Subject.id)
            .join(Subject, Subject.id == Record.subject_id)
            .where(Record.record_type == "loan_repaid")
            .order_by(Record.id)
            .limit(8)
        ).all()
    book = world.edition.rulebook
    with sessions.begin() as session:
        opened = [
            disputes.open_dispute(
                session,
                subject=session.get_one(Subject, subject_id),
                record_id=record_id,
                reason="not my loan",
                new_information=None,
                rulebook=book,
                at=at - 5 * DAY,
            ).dispute_id
            for record_id, subject_id in disputed
        ]
    assert scan(sessions, clock, end_of(at - DAY)) == []
    with sessions.begin() as session:
        for dispute_id in opened:
            disputes.answer_dispute(
                session,
                dispute_id=dispute_id,
                outcome="deleted",
                explanation="reported about the wrong person",
                by=Answerer("source", "bank"),
                rulebook=book,
                at=at,
            )
    assert scan(sessions, clock, end_of(at)) == [("bank", "disputes_upheld", at.date())]
    with sessions() as session:
        [row] = session.scalars(select(SourceAlert))
    assert (row.value, row.median, row.mad, row.threshold) == (8.0, 0.0, 0.0, 7.0)


def test_a_low_volume_source_that_stops_is_alerted_as_silent_and_in_outage(
    sessions: sessionmaker[Session], world: World, clock: FixedClock
) -> None:
    start = noon(clock.now() - 100 * DAY)
    with sessions.begin() as session:
        freshness.declare(
            session,
            source=session.merge(world.sources["traffic_police"]),
            cadences=[Cadence("traffic_violation", 3, 1)],
            at=start - DAY,
        )
    # A report every other day, one or two tickets, for 40 days; then nothing.
    reports = [start + 2 * k * DAY for k in range(21)]
    for k, at in enumerate(reports):
        tickets = [
            rec(
                f"T-{k}-{i}",
                world.people[(k + i) % PEOPLE],
                "traffic_violation",
                at - DAY,
                decision_ref=f"TV-{k}-{i}",
            )
            for i in range(1 + k % 2)
        ]
        assert set(submit(sessions, world, "traffic_police", at, *tickets)) == {"created"}
    last = reports[-1]
    assert scan(sessions, clock, end_of(last)) == []
    # Past cadence + grace (4 days) the freshness rule puts it in outage.
    assert scan(sessions, clock, end_of(last + 4 * DAY)) == [
        ("traffic_police", "outage", (last + 4 * DAY).date())
    ]
    # README's silence: slot 2 days (every gap), 20 slots none empty, so q = 1/22 and
    # 3 empty slots in a row (q^3 < 1/10,000): silent for more than 2 x 3 + 1 = 7 days.
    assert scan(sessions, clock, end_of(last + 7 * DAY)) == []
    assert scan(sessions, clock, end_of(last + 8 * DAY)) == [
        ("traffic_police", "silence", (last + 8 * DAY).date())
    ]
    with sessions() as session:
        silence = session.scalars(select(SourceAlert).where(SourceAlert.detector == "silence"))
        [row] = silence
    assert (row.value, row.median, row.mad, row.threshold) == (8.0, 2.0, 0.0, 7.0)


def test_scanning_again_raises_nothing_twice(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, honest: Honest
) -> None:
    at = honest.day
    submit(sessions, world, "bank", at, *delivery(world, WEEKS, at))
    with sessions.begin() as session:
        bank = session.merge(world.sources["bank"])
        for public_id in honest.defaults[:8]:
            ledger.retract_record(session, source=bank, record_id=public_id, reason="x", at=at)
    assert len(scan(sessions, clock, end_of(at))) == 1
    assert scan(sessions, clock, end_of(at)) == []
    # The days scanned forgotten: judged again, they raise nothing again.
    with sessions.begin() as session:
        session.execute(delete(SourceAlertScan))
    assert scan(sessions, clock, end_of(at)) == []
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(SourceAlert)) == 1
        raised = select(func.count()).where(JournalEntry.kind == EventKind.SOURCE_ALERT_RAISED)
        assert session.scalar(raised) == 1
    # A day not over yet is not judged; nor the future.
    with sessions.begin() as session, pytest.raises(Exception, match="future"):
        alerts.scan(session, through=clock.now() + DAY, at=clock.now())


def test_two_scans_at_once_raise_each_alert_once(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, honest: Honest
) -> None:
    at = honest.day
    submit(sessions, world, "bank", at, *delivery(world, WEEKS, at))
    with sessions.begin() as session:
        bank = session.merge(world.sources["bank"])
        for public_id in honest.defaults[:8]:
            ledger.retract_record(session, source=bank, record_id=public_id, reason="x", at=at)
    # The first scan raises its alert and holds its transaction open; the second starts
    # meanwhile, from the same days (the first's note of them is not committed).
    first = sessions()
    first.begin()
    assert len(alerts.scan(first, through=end_of(at), at=clock.now()).raised) == 1
    second: list[int] = []
    failed: list[BaseException] = []

    def rival() -> None:
        try:
            with sessions.begin() as session:
                found = alerts.scan(session, through=end_of(at), at=clock.now())
                second.append(len(found.raised))
        except BaseException as exc:  # pragma: no cover - reported below
            failed.append(exc)

    thread = threading.Thread(target=rival)
    thread.start()
    thread.join(timeout=1)  # the rival waits for the first transaction
    assert thread.is_alive()
    first.commit()
    first.close()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert failed == []
    assert second == [0]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(SourceAlert)) == 1
        raised = select(func.count()).where(JournalEntry.kind == EventKind.SOURCE_ALERT_RAISED)
        assert session.scalar(raised) == 1
        assert verify_log(session).ok


@pytest.fixture
def alerted(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, honest: Honest
) -> int:
    """The bank's retraction burst, alerted: the alert's id."""
    at = honest.day
    submit(sessions, world, "bank", at, *delivery(world, WEEKS, at))
    with sessions.begin() as session:
        bank = session.merge(world.sources["bank"])
        for public_id in honest.defaults[:8]:
            ledger.retract_record(session, source=bank, record_id=public_id, reason="x", at=at)
    assert len(scan(sessions, clock, end_of(at))) == 1
    with sessions() as session:
        return int(session.scalars(select(SourceAlert.id)).one())


def ack(api: Api, alert_id: int, body: Any, role: str | None = "operator") -> Any:
    return api.call("POST", f"/v1/sources/alerts/{alert_id}/acknowledgement", role, json=body)


def close(api: Api, alert_id: int, body: Any, role: str | None = "operator") -> Any:
    return api.call("POST", f"/v1/sources/alerts/{alert_id}/closure", role, json=body)


def test_operators_acknowledge_and_close_an_alert_with_a_note_logged(
    api: Api, alerted: int, sessions: sessionmaker[Session], engine: Engine
) -> None:
    for role in ("bank", "reviewer", "airline", "subject"):
        assert_envelope(queue(api, role), 403, "forbidden")
        assert_envelope(ack(api, alerted, {"note": "x"}, role), 403, "forbidden")
        assert_envelope(close(api, alerted, {"note": "x"}, role), 403, "forbidden")
    assert queue(api, None).status_code == 401
    assert "note" in assert_envelope(ack(api, alerted, {}), 422, "invalid_request")["message"]
    assert_envelope(ack(api, alerted, {"note": "  "}), 422, "note_required")
    assert_envelope(ack(api, alerted, {"note": "x" * 501}), 422, "note_too_long")
    # NUL is refused by the request guard before any handler, other controls here.
    assert_envelope(ack(api, alerted, {"note": "a\x00b"}), 422, "invalid_character")
    assert_envelope(ack(api, alerted, {"note": "a\x1b[2Jb"}), 422, "invalid_note")
    assert_envelope(ack(api, 999_999, {"note": "x"}), 404, "alert_not_found")
    assert_envelope(ack(api, 2**40, {"note": "x"}), 422)

    api.clock.advance(timedelta(hours=1))
    done = ack(api, alerted, {"note": "asked the bank why"})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "acknowledged"
    assert done.json()["acknowledged_note"] == "asked the bank why"
    assert_envelope(ack(api, alerted, {"note": "again"}), 409, "alert_not_open")
    assert [a["id"] for a in queue(api, state="acknowledged").json()] == [alerted]
    assert queue(api, state="open").json() == []
    assert queue(api, source="court").json() == []
    assert_envelope(queue(api, state="nonsense"), 422)

    api.clock.advance(timedelta(hours=1))
    closed = close(api, alerted, {"note": "clerical error, corrected at the source"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["state"] == "closed"
    assert_envelope(close(api, alerted, {"note": "again"}), 409, "alert_closed")
    assert_envelope(ack(api, alerted, {"note": "late"}), 409, "alert_not_open")

    with sessions() as session:
        assert verify_log(session).ok
        kinds = list(
            session.scalars(
                select(JournalEntry.kind)
                .where(JournalEntry.kind.like("source_alert_%"))
                .order_by(JournalEntry.seq)
            )
        )
        row = session.execute(text("SELECT id, seq FROM source_alerts")).one()
    assert kinds == ["source_alert_raised", "source_alert_acknowledged", "source_alert_closed"]
    # An alert reopened behind the log's back is named by verify.
    named = tamper.Named("source_alerts", str(row.id), row.seq)
    with tamper.attacker(engine) as conn:
        tamper.update(conn, metadata.tables["source_alerts"], {"id": row.id}, {"state": "open"})
    with sessions() as session:
        messages = [p.message for p in verify_log(session).problems]
    assert named.found_in(messages), messages


def test_the_cli_scans_lists_acknowledges_and_closes(
    cli: Invoke, sessions: sessionmaker[Session], world: World, honest: Honest
) -> None:
    at = honest.day
    submit(sessions, world, "bank", at, *delivery(world, WEEKS, at))
    with sessions.begin() as session:
        bank = session.merge(world.sources["bank"])
        for public_id in honest.defaults[:8]:
            ledger.retract_record(session, source=bank, record_id=public_id, reason="x", at=at)
    scanned = cli("sources", "scan", "--through", end_of(at).isoformat())
    assert scanned.exit_code == 0, scanned.output
    assert "1 alert(s) raised (1 negative_retractions)" in scanned.output
    again = cli("sources", "scan", "--through", end_of(at).isoformat())
    assert again.exit_code == 0, again.output
    assert "no whole day left to scan" in again.output
    listed = cli("sources", "alerts", columns=160)
    assert listed.exit_code == 0, listed.output
    assert "negative_retractions" in listed.output
    assert "open" in listed.output
    with sessions() as session:
        alert_id = str(session.scalars(select(SourceAlert.id)).one())
    refused = cli("sources", "alerts", "ack", alert_id, "--note", "bad\x1b[2J")
    assert refused.exit_code == 1
    assert "invalid_note" in refused.output
    assert "\x1b" not in refused.output
    acked = cli("sources", "alerts", "ack", alert_id, "--note", "looking into it")
    assert acked.exit_code == 0, acked.output
    assert "acknowledged" in acked.output
    closed = cli("sources", "alerts", "close", alert_id, "--note", "explained by the bank")
    assert closed.exit_code == 0, closed.output
    twice = cli("sources", "alerts", "close", alert_id, "--note", "again")
    assert twice.exit_code == 1
    assert "alert_closed" in twice.output
    shown = cli("sources", "alerts", "--state", "closed", columns=200)
    assert shown.exit_code == 0, shown.output
    assert "explained by the bank" in shown.output
    assert cli("sources", "alerts", "--state", "open", "--json").output.strip() == "[]"
    assert cli("log", "verify").exit_code == 0


def test_an_empty_store_scans_to_nothing(api: Api, cli: Invoke) -> None:
    assert queue(api).json() == []
    assert queue(api, source="nope").json() == []
    assert "no whole day left to scan" in cli("sources", "scan").output


# --- honest cities raise nothing ---------------------------------------------------------


def scan_city(sessions: sessionmaker[Session], now: datetime) -> list[Any]:
    with sessions.begin() as session:
        found = alerts.scan(session, through=now, at=now)
    assert found.first_day is not None
    return [(a.source, a.detector, a.day.date(), a.value, a.threshold) for a in found.raised]


def test_a_small_honest_city_raises_no_alert_over_five_years(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """The demo city's sources at a fiftieth of its size (few records a week: the
    silence detector's hardest case), on both stores."""
    stats = build_city(
        sessions, persons=300, organisations=30, records=6000, years=5, seed=11, now=clock.now()
    )
    assert scan_city(sessions, stats.now + 2 * DAY) == []


@pytest.mark.slow
def test_the_demo_city_raises_no_alert_over_its_five_years(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The demo's own city (``credence demo``'s defaults: 10,500 subjects, 200,000
    records, 14 sources), every day of its five years judged, the last one too. On
    SQLite only: the figures are the same grouped queries on both stores (the small
    city above runs on both), and the build is most of the time (the run's shared
    build, :mod:`tests.cities`)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the full-size city is built on SQLite only")
    stats = demo_city(engine, tmp_path_factory, clock.now())
    assert stats.records == 200_000
    assert scan_city(sessions, stats.now + 2 * DAY) == []


def test_a_days_figures_are_the_same_whenever_asked(
    sessions: sessionmaker[Session], world: World, clock: FixedClock, honest: Honest
) -> None:
    last = honest.deliveries[-1]
    positive, negative = ["loan_repaid"], ["loan_default"]
    with sessions() as session:
        then = anomalies.daily(session, end_of(last), positive=positive, negative=negative)
    at = honest.day
    submit(sessions, world, "bank", at, *delivery(world, WEEKS, at))
    with sessions.begin() as session:
        bank = session.merge(world.sources["bank"])
        ledger.retract_record(session, source=bank, record_id=honest.defaults[0], reason="x", at=at)
    with sessions() as session:
        now = anomalies.daily(session, end_of(at), positive=positive, negative=negative)
    bank_id = world.sources["bank"].id
    day = anomalies.day_of(last)
    assert now[bank_id].days[day] == then[bank_id].days[day]
    assert then[bank_id].days[day] == anomalies.Day(
        volume=REPAID + DEFAULTS, positives=REPAID, negatives=DEFAULTS
    )
    assert now[bank_id].days[anomalies.day_of(at)].negative_retractions == 1
