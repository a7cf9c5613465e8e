"""One counting rule: replacing it changes every engine at once.

``credence.scoring.counting.counts`` is the only place that says whether a record counts
at an instant. Here it is replaced by a stub that ignores endings (a record counts once
received, even when retracted): online scoring, the batch scorer, the columnar scorer,
the Spark scorer and decisions all change with it, and agree again once it is back.
Likewise ``counting.frozen``, the one place an outage freezes a record's age: replaced by
a stub that freezes nothing, every engine lets the silent bank's records decay.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock, to_micros
from credence.decisions.service import decide
from credence.export.service import export_ledger
from credence.ledger import service as ledger
from credence.ledger.registry import subject_ref
from credence.ledger.tables import Record
from credence.rulebook.loader import default_rulebook
from credence.scoring import counting
from credence.scoring.batch import score_population
from credence.scoring.columnar import read_scores, score_parquet
from credence.scoring.layout import SUBJECTS_DIR
from credence.scoring.online import score_subject
from tests.due_process import confirm_held
from tests.scoring.outage_world import DAY, Timeline, stopped_bank
from tests.world import build_world, rec, store_context, submit

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


def freezes_nothing(occurred_us: Any, start_us: Any, end_us: Any) -> Any:
    """A stub freeze: an outage takes nothing from any record's age."""
    return np.zeros(np.shape(occurred_us), dtype=np.int64) if np.ndim(occurred_us) else 0


def _frozen_engines(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    timeline: Timeline,
    out: Path,
    at: datetime,
    spark: Any = None,
) -> dict[str, list[float]]:
    """Every subject's total as of ``at``, by engine: online, nightly, decisions (the
    score the decision read), columnar and (if given) Spark, the last two through an
    export."""
    edition = timeline.world.edition
    export_ledger(store_context(engine, sessions, clock, out.parent / "log.key"), out)
    public_ids = pq.read_table(out / SUBJECTS_DIR).sort_by("subject_id")["public_id"].to_pylist()
    got: dict[str, list[float]] = {}
    with sessions() as session:
        subjects = [subject_ref(session, public_id=p) for p in public_ids]
        got["online"] = [score_subject(session, s, edition, at).total for s in subjects]
        population = score_population(session, edition, at)
        row = {int(s): k for k, s in enumerate(population.subject_ids)}
        got["nightly"] = [float(population.totals[row[s.id]]) for s in subjects]
        # A decision reads the score of its service's categories: as the online path
        # scores them.
        service = "loan_rate_discount"
        read = edition.rulebook.service(service)
        assert read is not None
        categories = frozenset(read.categories)
        got["decisions"] = [
            decide(
                session,
                subject=s,
                service_code=service,
                edition=edition,
                at=at,
                party_id=None,
                principal_id=None,
            ).score
            for s in subjects[:4]
        ]
        got["online, its categories"] = [
            score_subject(session, s, edition, at, categories=categories).total
            for s in subjects[:4]
        ]
        session.rollback()
    score_parquet(out, out.parent / "columnar", at=at, rulebook=edition)
    got["columnar"] = read_scores(out.parent / "columnar")["total"].to_pylist()
    if spark is not None:
        from credence.scoring.spark import score_parquet_spark

        score_parquet_spark(out, out.parent / "spark", at=at, rulebook=edition, spark=spark)
        got["spark"] = read_scores(out.parent / "spark")["total"].to_pylist()
    return got


def _agree(got: dict[str, list[float]]) -> list[float]:
    """The engines' totals, once checked equal (and the decisions' scores equal to the
    online scores of their service's categories)."""
    assert got.pop("decisions") == pytest.approx(got.pop("online, its categories"), rel=1e-12)
    first = got["online"]
    for name, totals in got.items():
        assert totals == pytest.approx(first, rel=1e-12), name
    return first


def test_every_engine_follows_the_one_freeze(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``counting.frozen`` replaced by a stub that freezes nothing: every engine scores
    the bank's people, 30 days into its outage, as if it were not in outage."""
    t = stopped_bank(sessions, clock)
    at = t.since + 30 * DAY
    real = _agree(_frozen_engines(engine, sessions, clock, t, tmp_path / "real", at))
    monkeypatch.setattr(counting, "frozen", freezes_nothing)
    stubbed = _agree(_frozen_engines(engine, sessions, clock, t, tmp_path / "stub", at))
    assert stubbed != real
    assert sum(s < r for s, r in zip(stubbed, real, strict=True)) >= 3  # they decayed
    monkeypatch.undo()
    assert _agree(_frozen_engines(engine, sessions, clock, t, tmp_path / "again", at)) == real


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")
def test_spark_follows_the_one_freeze(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spark: Any,
) -> None:
    """The kernel ships the freeze it was built with to Spark's executors."""
    t = stopped_bank(sessions, clock)
    at = t.since + 30 * DAY
    real = _agree(_frozen_engines(engine, sessions, clock, t, tmp_path / "real", at, spark))
    monkeypatch.setattr(counting, "frozen", freezes_nothing)
    stubbed = _agree(_frozen_engines(engine, sessions, clock, t, tmp_path / "stub", at, spark))
    assert stubbed != real
