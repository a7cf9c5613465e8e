"""A fresh identity bought to the top: the attack the intake's volume limits answer.

A second person is registered today, and a bank sends about them, in HTTP batches, 150
twelve-month on-time streaks dated within five days and 150 loan repayments, the same
burst again dated years before the registration. Without defences (rulebook 2026.2 and
before) that bought a total far above the reward threshold and a loan rate discount.

Now: the streaks closer together than their twelve-month period are refused with a
reason the source can act on; every other record of the burst is stored but held (the
batch takes a new identity past the rulebook's new-identity limit and the bank past its
burst limit), so none of it counts, in the decision, the score or the nightly engine,
and the lender hears "no discount". A reviewer's release makes a record count from the
release on, and a rejection never. The log covers every hold.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, create_relying_party, issue_key
from credence.access.policy import Role
from credence.identifiers import make_resident_id
from credence.ledger import holds
from credence.ledger.holds import RecordHold
from credence.ledger.tables import Record, Subject
from credence.notifications.service import for_subject
from credence.rulebook import store
from credence.scoring.batch import score_population
from credence.scoring.online import Score, score_subject
from credence.translog.verify import verify_log
from tests.client import Api

#: The bought identity: same birth date and region as nobody in particular, born 1990.
IDENTIFIER = make_resident_id("110105", date(1990, 5, 17), 417)
BATCH = 100  # the test API's largest batch


def _register(api: Api) -> str:
    response = api.call(
        "POST",
        "/v1/subjects",
        "registry",
        json={"kind": "person", "identifier": IDENTIFIER, "name": "Zhang Wei"},
    )
    assert response.status_code == 201, response.text
    subject_id: str = response.json()["subject_id"]
    return subject_id


def _burst(subject_id: str, first_day: datetime, tag: str) -> list[dict[str, Any]]:
    """150 streaks dated within five days and 150 loan repayments, as a bank's batch file
    lists them (by account: a streak, a repayment, a streak, ...)."""
    streaks = [
        {
            "source_ref": f"{tag}-streak-{i}",
            "subject_id": subject_id,
            "record_type": "on_time_payment_streak",
            "occurred_at": (first_day + timedelta(hours=i * 0.8)).isoformat(),
        }
        for i in range(150)
    ]
    repaid = [
        {
            "source_ref": f"{tag}-repaid-{i}",
            "subject_id": subject_id,
            "record_type": "loan_repaid",
            "occurred_at": (first_day + timedelta(hours=i * 0.8)).isoformat(),
        }
        for i in range(150)
    ]
    return [record for pair in zip(streaks, repaid, strict=True) for record in pair]


def _send(api: Api, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for start in range(0, len(records), BATCH):
        response = api.call(
            "POST", "/v1/records", "bank", json={"records": records[start : start + BATCH]}
        )
        assert response.status_code == 200, response.text
        results.extend(response.json()["results"])
    return results


def _lender(api: Api, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        party = create_relying_party(
            session,
            code="lender",
            name="Harbour Bank Lending",
            services=["loan_rate_discount"],
            clock=api.clock,
        )
        principal = create_principal(
            session, role=Role.RELYING_PARTY, name="lender", clock=api.clock, party_id=party.id
        )
        api.keys["lender"] = issue_key(session, principal=principal, clock=api.clock)


def _discount(api: Api, subject_id: str) -> dict[str, Any]:
    response = api.call(
        "POST",
        "/v1/decisions",
        "lender",
        json={"subject_id": subject_id, "service": "loan_rate_discount"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _nightly_total(sessions: sessionmaker[Session], api: Api, subject_id: str) -> float:
    with sessions() as session:
        edition = store.in_force(session, api.clock.now())
        population = score_population(session, edition, api.clock.now())
        row = session.scalars(select(Subject.id).where(Subject.public_id == subject_id)).one()
    index = list(population.subject_ids).index(row)
    return float(population.totals[index])


def _online(sessions: sessionmaker[Session], api: Api, subject_id: str, at: datetime) -> Score:
    with sessions() as session:
        subject = session.scalars(select(Subject).where(Subject.public_id == subject_id)).one()
        return score_subject(session, subject, store.in_force(session, at), at)


def notice_kinds(sessions: sessionmaker[Session], subject_id: str) -> set[str]:
    with sessions() as session:
        subject = session.scalars(select(Subject).where(Subject.public_id == subject_id)).one()
        return {n.kind for n in for_subject(session, subject.id)}


def test_a_bought_identity_burst_is_held_and_buys_no_reward(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    _lender(api, sessions)
    subject_id = _register(api)
    now = api.clock.now()
    fresh = _send(api, _burst(subject_id, now - timedelta(days=5), "fresh"))
    # The same burst backdated years before the registration: "new" is by registration.
    backdated = _send(api, _burst(subject_id, now - timedelta(days=3 * 365), "old"))

    for results in (fresh, backdated):
        statuses = Counter(r["status"] for r in results)
        # One streak per year at most: the other 149 are refused, with a reason.
        refused = [r for r in results if r["status"] == "rejected"]
        assert {r["error"]["code"] for r in refused} == {"closer_than_period"}
        assert statuses == {"rejected": 149, "held": 151}, statuses
        assert {r["hold"]["code"] for r in results if r["status"] == "held"} <= {
            "new_identity",
            "burst",
        }

    # Nothing of it counts: no discount, and the score is the base, online and nightly.
    assert _discount(api, subject_id)["outcome"] == "deny"
    online = _online(sessions, api, subject_id, api.clock.now())
    assert online.total == 1000.0
    assert Counter(c.status for c in online.contributions) == {"held": 302}
    assert _nightly_total(sessions, api, subject_id) == 1000.0
    with sessions() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(RecordHold).where(RecordHold.status == "held")
            )
            == 302
        )
    assert "records_held" in notice_kinds(sessions, subject_id)

    # A reviewer releases one repayment (it counts from the release on, not before) and
    # rejects another (it never counts).
    held_repaid = [
        r["record_id"] for r in fresh if r["status"] == "held" and "repaid" in r["source_ref"]
    ]
    released, rejected = held_repaid[:2]
    before = api.clock.now()
    api.clock.advance(timedelta(hours=1))
    with sessions.begin() as session:
        decisions: tuple[tuple[str, holds.Outcome], ...] = (
            (released, "released"),
            (rejected, "rejected"),
        )
        for record, outcome in decisions:
            hold = session.scalars(
                select(RecordHold.public_id)
                .join(Record, Record.id == RecordHold.record_id)
                .where(Record.public_id == record)
            ).one()
            holds.decide(
                session,
                hold_id=hold,
                outcome=outcome,
                principal_id=None,
                reason="Checked with the bank.",
                at=api.clock.now(),
            )
    after = _online(sessions, api, subject_id, api.clock.now())
    status_of = {c.record.record_id: c.status for c in after.contributions}
    assert status_of[released] == "counting"
    assert status_of[rejected] == "rejected"
    assert after.total > 1000.0
    assert _online(sessions, api, subject_id, before).total == 1000.0
    assert _nightly_total(sessions, api, subject_id) == after.total

    with sessions() as session:
        report = verify_log(session)
    assert report.ok, [p.message for p in report.problems]


def test_without_a_limit_the_burst_would_buy_a_discount(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    """The control: a long-registered person with a modest, plausible history from the
    bank gets the discount; so the refusal above is the limits' doing, not the service's."""
    _lender(api, sessions)
    person = api.world.people[2].public_id
    now = api.clock.now()
    records = [
        {
            "source_ref": f"ok-{i}",
            "subject_id": person,
            "record_type": "loan_repaid",
            "occurred_at": (now - timedelta(days=40 * i + 1)).isoformat(),
        }
        for i in range(6)
    ]
    results = _send(api, records)
    assert Counter(r["status"] for r in results) == {"created": 6}
    assert _discount(api, person)["outcome"] == "reward"
