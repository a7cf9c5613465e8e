"""One counting rule: replacing it changes every engine at once.

``credence.scoring.counting.counts`` is the only place that says whether a record counts
at an instant. Here it is replaced by a stub that ignores endings (a record counts once
received, even when retracted): online scoring, the batch scorer, the columnar scorer,
the Spark scorer and decisions all change with it, and agree again once it is back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock, to_micros
from credence.decisions.service import decide
from credence.ledger import service as ledger
from credence.ledger.tables import Record
from credence.rulebook.loader import default_rulebook
from credence.scoring import counting
from credence.scoring.batch import score_population
from credence.scoring.columnar import read_scores, score_parquet
from credence.scoring.online import score_subject
from tests.due_process import confirm_held
from tests.world import build_world, rec, submit

BOOK = default_rulebook()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY_US = 86_400_000_000


def ignores_endings(at_us: Any, received_us: Any, ended_us: Any) -> Any:
    """A stub rule: received by ``at`` is enough."""
    return received_us <= at_us


def _ledger_world(sessions: sessionmaker[Session], clock: FixedClock) -> tuple[Any, int]:
    """A person with a court's judgment default, retracted by the court."""
    world = build_world(sessions, clock, people=2)
    person = world.people[0]
    when = clock.now() - timedelta(days=30)
    assert submit(
        sessions,
        world,
        "court",
        clock.now(),
        rec("j-1", person, "judgment_default", when, decision_ref="J-1"),
    ) == ["created"]
    clock.advance(timedelta(days=1))
    with sessions.begin() as session:
        court = session.merge(world.sources["court"])
        record_id = session.scalars(
            select(Record.public_id).where(Record.source_id == court.id)
        ).one()
        ledger.retract_record(
            session, source=court, record_id=record_id, reason="paid", at=clock.now()
        )
    # The judgment restricts: its retraction takes effect once a reviewer confirms it.
    confirm_held(sessions, record_id, clock.now())
    clock.advance(timedelta(days=1))
    return world, person.id


def _engines(
    sessions: sessionmaker[Session], world: Any, person_id: int, at: datetime
) -> tuple[float, float, str]:
    with sessions.begin() as session:
        person = session.get(type(world.people[0]), person_id)
        assert person is not None
        online = score_subject(session, person, world.edition, at).total
        population = score_population(session, world.edition, at)
        batch = float(population.totals[list(population.subject_ids).index(person_id)])
        decision = decide(
            session,
            subject=person,
            service_code="air_travel",
            edition=world.edition,
            at=at,
            party_id=None,
            principal_id=None,
        )
    return online, batch, decision.outcome.value


def test_online_batch_and_decisions_follow_the_one_rule(
    sessions: sessionmaker[Session], clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, person_id = _ledger_world(sessions, clock)
    at = clock.now()
    online, batch, outcome = _engines(sessions, world, person_id, at)
    assert online == batch == BOOK.scale.base  # the retracted default does not count
    assert outcome == "allow"

    monkeypatch.setattr(counting, "counts", ignores_endings)
    online_s, batch_s, outcome_s = _engines(sessions, world, person_id, at)
    assert online_s < BOOK.scale.base  # now the retracted default counts, everywhere
    assert batch_s == pytest.approx(online_s, rel=1e-12)
    assert outcome_s == "deny"

    monkeypatch.undo()
    assert _engines(sessions, world, person_id, at) == (online, batch, outcome)


def write_population(out: Path) -> Path:
    """Two subjects on Parquet: subject 0 with a judgment default ended a day ago,
    subject 1 with one that has not ended."""
    at_us = to_micros(NOW)
    (out / "subjects").mkdir(parents=True)
    (out / "records").mkdir()
    pq.write_table(
        pa.table({"subject_id": pa.array([0, 1], pa.int64())}),
        out / "subjects" / "part-00000.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "subject_id": pa.array([0, 1], pa.int64()),
                "record_type": pa.array(["judgment_default"] * 2, pa.string()),
                "occurred_at": pa.array([at_us - 30 * DAY_US] * 2, pa.int64()),
                "received_at": pa.array([at_us - 29 * DAY_US] * 2, pa.int64()),
                "quantity": pa.array([float("nan")] * 2, pa.float64()),
                "ended_at": pa.array([at_us - DAY_US, None], pa.int64()),
            }
        ),
        out / "records" / "part-00000.parquet",
    )
    return out


def columnar_totals(pop: Path, out: Path) -> list[float]:
    score_parquet(pop, out, at=NOW, rulebook=BOOK)
    return [row["total"] for row in read_scores(out).to_pylist()]


def test_columnar_follows_the_one_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pop = write_population(tmp_path / "pop")
    real = columnar_totals(pop, tmp_path / "real")
    assert real[0] == BOOK.scale.base
    assert real[1] < BOOK.scale.base
    monkeypatch.setattr(counting, "counts", ignores_endings)
    stubbed = columnar_totals(pop, tmp_path / "stub")
    assert stubbed[0] == stubbed[1] == real[1]  # the ended default counts too
