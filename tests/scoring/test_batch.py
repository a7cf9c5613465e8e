"""The batch scorer agrees with the online scorer, subject by subject."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.ledger import service as ledger
from credence.ledger.schemas import RecordIn
from credence.ledger.tables import Record, Subject
from credence.rulebook.model import CATEGORIES
from credence.scoring.batch import score_population
from credence.scoring.online import score_subject
from credence.scoring.tables import ScoreSnapshot
from credence.tiers.rescore import rescore
from tests.world import build_world, history_run, rec, submit

SOURCE_TYPES: dict[str, list[tuple[str, str | None]]] = {
    "bank": [("loan_repaid", None), ("loan_default", "REG"), ("on_time_payment_streak", None)],
    "court": [("judgment_default", "J"), ("judgment_satisfied", None), ("fraud_judgment", "F")],
    "tax_office": [("tax_paid_on_time", None), ("tax_arrears", "T")],
    "traffic_police": [("traffic_violation", "TP")],
    "volunteers": [("volunteer_service", None), ("heroic_act", None)],
}


def test_batch_and_online_scores_agree(sessions: sessionmaker[Session], clock: FixedClock) -> None:
    world = build_world(sessions, clock, people=12)
    rnd = random.Random(3)
    start = clock.now() - timedelta(days=5 * 365)
    n = 0
    # A year's streak or taxes at most once a year per person and source (the intake's
    # spacing check): the k-th of a person's is dated in the k-th year.
    yearly: Counter[tuple[str, str]] = Counter()
    for source, types in SOURCE_TYPES.items():
        batch = []
        for _ in range(40):
            code, ref = rnd.choice(types)
            person = rnd.choice(world.people)
            extra: dict[str, object] = {"decision_ref": f"{ref}-{n}"} if ref else {}
            if code in ("tax_arrears", "volunteer_service"):
                extra["quantity"] = rnd.uniform(0, 50)
            day = start + timedelta(days=rnd.uniform(0, 5 * 365 - 1))
            if code in ("on_time_payment_streak", "tax_paid_on_time"):
                k = yearly[(person.public_id, code)]
                if k >= 5:
                    continue
                yearly[(person.public_id, code)] += 1
                day = start + timedelta(days=366 * k + rnd.uniform(0, 0.5))
            batch.append(rec(f"{source}-{n}", person, code, day, **extra))
            n += 1
        # A five-year history in one go: through an approved backfill run.
        run = history_run(sessions, world, source, clock.now())
        statuses = submit(sessions, world, source, clock.now(), *batch, backfill_run=run)
        assert set(statuses) == {"created"}
    # retract a few, one of them after the scoring instant below
    with sessions.begin() as session:
        bank = session.merge(world.sources["bank"])
        bank_records = session.scalars(
            select(Record.public_id).where(Record.source_id == bank.id).order_by(Record.id)
        ).all()
        for i, record_id in enumerate(bank_records[:3]):
            clock.advance(timedelta(days=1))
            ledger.retract_record(
                session, source=bank, record_id=record_id, reason=f"r{i}", at=clock.now()
            )
    at = clock.now() - timedelta(hours=12)  # between the 2nd and 3rd retraction
    with sessions.begin() as session:
        summary = rescore(session, world.edition, at).summary
    assert summary.subjects == len(world.people) + 1
    assert sum(summary.tiers.values()) == summary.subjects
    with sessions() as session:
        population = score_population(session, world.edition, at)
        snapshot = {s.subject_id: s for s in session.scalars(select(ScoreSnapshot))}
        for subject in session.scalars(select(Subject)):
            online = score_subject(session, subject, world.edition, at)
            row = snapshot[subject.id]
            assert math.isclose(row.total, online.total, rel_tol=1e-9)
            assert row.tier == online.tier
            for j, category in enumerate(CATEGORIES):
                i = list(population.subject_ids).index(subject.id)
                assert math.isclose(
                    population.sub_scores[i, j],
                    online.sub_scores[category],
                    rel_tol=1e-9,
                    abs_tol=1e-9,
                )


def test_batch_and_online_agree_on_every_way_an_effect_ends(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """Dispute deleted, dispute corrected, dispute lapsed (lazily, at the deadline, with
    and without the sweep's entry), repair approved and retraction: one definition of
    "effect ended" (credence.ledger.endings), so both runners agree at every instant."""
    from credence.disputes import repair, service

    world = build_world(sessions, clock, people=4)
    p = world.people
    day = clock.now() - timedelta(days=100)
    refs = ["deleted", "corrected", "lapsed", "swept", "repaired", "retracted", "kept"]
    submit(
        sessions,
        world,
        "bank",
        clock.now(),
        *[
            rec(r, p[i % 4], "loan_default", day, decision_ref=f"REG-{r}")
            for i, r in enumerate(refs)
        ],
        rec("good", p[0], "loan_repaid", day),
    )
    with sessions() as session:
        ids = {
            ref: rid for ref, rid in session.execute(select(Record.source_ref, Record.public_id))
        }
    opened: dict[str, str] = {}
    with sessions.begin() as session:
        for i, ref in enumerate(refs[:4]):
            opened[ref] = service.open_dispute(
                session,
                subject=session.merge(p[i % 4]),
                record_id=ids[ref],
                reason="not mine",
                new_information=None,
                rulebook=world.edition.rulebook,
                at=clock.now(),
            ).dispute_id
        applied = repair.apply_for_repair(
            session,
            subject=session.merge(p[refs.index("repaired") % 4]),
            record_id=ids["repaired"],
            commitment="repaid",
            rulebook=world.edition.rulebook,
            at=clock.now(),
        )
    start = clock.now()
    clock.advance(timedelta(days=3))
    bank = service.Answerer(kind="source", name="bank")
    with sessions.begin() as session:
        service.answer_dispute(
            session,
            dispute_id=opened["deleted"],
            outcome="deleted",
            explanation="error",
            by=bank,
            rulebook=world.edition.rulebook,
            at=clock.now(),
        )
        service.answer_dispute(
            session,
            dispute_id=opened["corrected"],
            outcome="corrected",
            explanation="amount",
            by=bank,
            rulebook=world.edition.rulebook,
            at=clock.now(),
            correction=RecordIn.model_validate(
                rec("corrected-2", p[1], "credit_card_default", day, decision_ref="REG-c2")
            ),
        )
        repair.decide_repair(
            session,
            repair_id=applied.repair_id,
            approve=True,
            reasons="repaid",
            principal_id=None,
            at=clock.now(),
        )
        ledger.retract_record(
            session,
            source=session.merge(world.sources["bank"]),
            record_id=ids["retracted"],
            reason="error",
            at=clock.now(),
        )
    deadline = start + timedelta(days=30)
    clock.set(deadline + timedelta(days=1))
    with sessions.begin() as session:
        service.sweep(session, deadline)  # writes "swept"'s and "lapsed"'s entries both
    instants = [start, start + timedelta(days=3), deadline - timedelta(microseconds=1), deadline]
    with sessions() as session:
        for at in instants:
            population = score_population(session, world.edition, at)
            for subject in session.scalars(select(Subject)):
                online = score_subject(session, subject, world.edition, at)
                i = list(population.subject_ids).index(subject.id)
                assert math.isclose(population.totals[i], online.total, rel_tol=1e-12), at
        statuses = {
            c.record.source_ref: c.status
            for s in session.scalars(select(Subject))
            for c in score_subject(session, s, world.edition, deadline).contributions
        }
    assert statuses == {
        "deleted": "deleted",
        "corrected": "corrected",
        "corrected-2": "counting",
        "lapsed": "unverifiable",
        "swept": "unverifiable",
        "repaired": "repaired",
        "retracted": "retracted",
        "kept": "counting",
        "good": "counting",
    }
