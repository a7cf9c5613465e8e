"""The batch scorer agrees with the online scorer, subject by subject."""

from __future__ import annotations

import math
import random
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.ledger import service as ledger
from credence.ledger.tables import Record, Subject
from credence.rulebook.model import CATEGORIES
from credence.scoring.batch import rescore_everyone, score_population
from credence.scoring.online import score_subject
from credence.scoring.tables import ScoreSnapshot
from tests.world import build_world, rec, submit

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
    for source, types in SOURCE_TYPES.items():
        batch = []
        for _ in range(40):
            code, ref = rnd.choice(types)
            person = rnd.choice(world.people)
            extra: dict[str, object] = {"decision_ref": f"{ref}-{n}"} if ref else {}
            if code in ("tax_arrears", "volunteer_service"):
                extra["quantity"] = rnd.uniform(0, 50)
            day = start + timedelta(days=rnd.uniform(0, 5 * 365 - 1))
            batch.append(rec(f"{source}-{n}", person, code, day, **extra))
            n += 1
        statuses = submit(sessions, world, source, clock.now(), *batch)
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
        summary = rescore_everyone(session, world.edition, at)
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
