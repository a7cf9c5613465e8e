"""Every engine, one answer: the demo city, with every way a record stops counting,
exported and scored by the columnar engine and by Spark, equals the online score of
every subject (≤ 1e-9 relative, same tier), as does the nightly engine reading the
store, on SQLite and PostgreSQL, under the edition in force at each instant.

The city is the one ``credence demo`` builds (its sizes and seed) on SQLite, and a fifth
of it (same seed, same records per subject) on PostgreSQL: what differs between the
stores is how they are read, which the smaller city covers; the full size is proven
once, where it is cheaper to build (it took 173 s of the suite on PostgreSQL). On top of it: two
editions (the second with other weights, published after the city), records retracted,
disputed (deleted, corrected, verified, left to lapse), repaired and erased.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.disputes import repair
from credence.disputes import service as disputes
from credence.errors import CredenceError
from credence.export.service import export_ledger
from credence.lab.city import build_city
from credence.ledger import erasure, freshness
from credence.ledger.registry import subject_ref
from credence.ledger.schemas import RecordIn
from credence.ledger.service import retract_record
from credence.ledger.tables import Record, Source, Subject
from credence.rulebook import store
from credence.rulebook.loader import default_rulebook, default_text
from credence.scoring import layout
from credence.scoring.batch import score_population
from credence.scoring.columnar import read_scores, score_parquet
from credence.scoring.online import score_subject
from tests.cities import demo_city
from tests.world import store_context

pytestmark = pytest.mark.slow

#: The demo city (``credence demo``'s defaults).
PERSONS, ORGANISATIONS, RECORDS, SEED = 10_000, 500, 200_000, 7
#: The share of it built on each store (see the module docstring).
SHARE = {"sqlite": 1, "postgresql": 5}
#: Records of each fate drawn from the city.
EACH = 40


def second_edition() -> str:
    """The default rulebook with another version, heavier penalties and rewards, and
    other bounds (bounded returns)."""
    text, replaced = re.subn(
        r'^version = "[^"]+"', 'version = "2026.9"', default_text(), count=1, flags=re.M
    )
    assert replaced == 1
    text = text.replace("points = -120", "points = -150").replace("points = 10", "points = 13")
    tighter = text.replace("max_points = 40", "max_points = 25").replace(
        "commercial = 60", "commercial = 45"
    )
    assert tighter.count("max_points = 25") >= 2
    assert "commercial = 45" in tighter
    return tighter


def city_with_every_ending(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    share: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The demo city (``1/share`` of it; the whole one is the run's shared build,
    :mod:`tests.cities`), then a year of due process on it (see the module docstring)."""
    t0 = clock.now()
    if share == 1:
        assert (PERSONS, ORGANISATIONS, RECORDS, SEED) == (10_000, 500, 200_000, 7)
        demo_city(engine, tmp_path_factory, t0)
    else:
        build_city(
            sessions,
            persons=PERSONS // share,
            organisations=ORGANISATIONS // share,
            records=RECORDS // share,
            seed=SEED,
            now=t0,
        )
    rng = np.random.default_rng(5)
    with sessions() as session:
        ids = np.array(session.scalars(select(Record.id).order_by(Record.id)).all())
    # Each record meets one fate at most: a random order, taken from the front.
    chosen = iter(int(i) for i in rng.permutation(ids))
    answerer = disputes.Answerer(kind="source", name="test")

    def each(fate: Any, at: datetime) -> None:
        done = 0
        while done < EACH:
            record_id = next(chosen)
            with sessions.begin() as session:
                record = session.get_one(Record, record_id)
                subject = session.get_one(Subject, record.subject_id)
                book = store.in_force(session, at).rulebook
                try:
                    fate(session, record, subject, book, at)
                    done += 1
                except CredenceError:
                    # Not open to this record (a repair of a positive record, or too early).
                    session.rollback()

    def retract(s: Session, r: Record, _subject: Subject, _book: Any, at: datetime) -> None:
        retract_record(
            s,
            source=s.get_one(Source, r.source_id),
            record_id=r.public_id,
            reason="sent in error",
            at=at,
        )

    def dispute(outcome: str | None) -> Any:
        def run(s: Session, r: Record, subject: Subject, book: Any, at: datetime) -> None:
            opened = disputes.open_dispute(
                s, subject=subject, record_id=r.public_id, reason="not mine",
                new_information=None, rulebook=book, at=at,
            )  # fmt: skip
            if outcome is None:
                return  # left to lapse at its deadline
            correction = None
            if outcome == "corrected":
                correction = RecordIn.model_validate(
                    {
                        "source_ref": f"{r.source_ref}-corrected",
                        "subject_id": subject.public_id,
                        "record_type": r.record_type,
                        "occurred_at": r.occurred_at.isoformat(),
                        "quantity": r.quantity,
                        "decision_ref": r.decision_ref,
                    }
                )
            disputes.answer_dispute(
                s, dispute_id=opened.dispute_id, outcome=outcome, explanation="checked",
                by=answerer, rulebook=book, at=at + timedelta(days=2), correction=correction,
            )  # fmt: skip

        return run

    def repaired(s: Session, r: Record, subject: Subject, book: Any, at: datetime) -> None:
        applied = repair.apply_for_repair(
            s,
            subject=subject,
            record_id=r.public_id,
            commitment="paid in full",
            rulebook=book,
            at=at,
        )
        repair.decide_repair(
            s, repair_id=applied.repair_id, approve=True, reasons="performed",
            principal_id=None, at=at + timedelta(days=3),
        )  # fmt: skip

    def erased(s: Session, r: Record, _subject: Subject, _book: Any, at: datetime) -> None:
        erasure.erase(s, r, reason="retention_ended", at=at)

    with sessions.begin() as session:
        store.publish(session, text=second_edition(), at=t0 + timedelta(days=20))
    each(retract, t0 + timedelta(days=1))
    each(dispute("deleted"), t0 + timedelta(days=2))
    each(dispute("corrected"), t0 + timedelta(days=3))
    each(dispute("verified"), t0 + timedelta(days=4))
    each(dispute(None), t0 + timedelta(days=5))
    each(repaired, t0 + timedelta(days=6))
    each(erased, t0 + timedelta(days=7))


def online_totals(
    sessions: sessionmaker[Session], public_ids: list[str], at: datetime
) -> tuple[np.ndarray, list[str], str, Counter[str]]:
    """Every subject's online total and tier, the edition's version, and how many
    subjects each kind of bound cut (bounded returns: a record type's, a category's)."""
    with sessions() as session:
        edition = store.in_force(session, at)
        totals, tiers = [], []
        cut: Counter[str] = Counter()
        outages = freshness.outages(session, at)  # once for every subject, as of at
        for public_id in public_ids:
            subject = subject_ref(session, public_id=public_id)
            score = score_subject(session, subject, edition, at, outages=outages)
            totals.append(score.total)
            tiers.append(score.tier)
            cut.update({b.scope for b in score.bounds})
    return np.array(totals), tiers, edition.version, cut


def assert_same(scores: Any, totals: np.ndarray, tiers: list[str]) -> None:
    batch = scores.column("total").to_numpy()
    assert batch.shape == totals.shape
    worst = np.max(np.abs(batch - totals) / np.maximum(np.abs(totals), 1.0))
    assert worst <= 1e-9, worst
    assert scores.column("tier").to_pylist() == tiers


@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")
def test_every_engine_scores_the_exported_city_as_the_online_path_does(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    spark: Any,
) -> None:
    share = SHARE[engine.dialect.name]
    city_with_every_ending(engine, sessions, clock, share, tmp_path_factory)
    clock.advance(timedelta(days=90))  # past every lapse, after the second edition
    ctx = store_context(engine, sessions, clock, tmp_path / "log.key")
    out = tmp_path / "export"
    summary = export_ledger(ctx, out, part_subjects=4_000 // share)
    assert summary.subjects == (PERSONS + ORGANISATIONS) // share
    assert summary.parts == 3

    records = pq.read_table(out / layout.RECORDS_DIR, columns=["ended_by"]).column("ended_by")
    causes = {c for c in records.to_pylist() if c is not None}
    # Every cause of an ending is in the city (the lapse is exact: after its deadline).
    assert causes == {
        "retraction",
        "dispute_deleted",
        "dispute_corrected",
        "dispute_lapsed",
        "repair",
    }
    with sessions() as session:
        kept = session.scalars(select(func.count()).where(Record.record_type.is_not(None))).one()
        # A correction of a record that restricts someone waits for a second reviewer
        # (four eyes): only the others are appended now.
        corrected = session.scalars(
            select(func.count()).where(Record.source_ref.like("%-corrected"))
        ).one()
    assert 0 < corrected <= EACH
    assert (
        summary.records == kept == RECORDS // share + corrected - EACH
    )  # corrections in, erasures out

    subjects = pq.read_table(out / layout.SUBJECTS_DIR).sort_by("subject_id")
    public_ids = subjects.column("public_id").to_pylist()
    from credence.scoring.spark import score_parquet_spark

    # Now (the second edition), and a day before it was published (the first).
    for at in (summary.as_of, clock.now() - timedelta(days=71)):
        edition = layout.edition_in_force(out, at)
        assert edition is not None
        totals, tiers, version, cut = online_totals(sessions, public_ids, at)
        assert edition.version == version
        # Bounded returns bite in the city: the engines must agree on bounded scores.
        assert cut["record_type"] >= 100 // share, cut
        assert cut["category"] >= 20 // share, cut
        local = score_parquet(out, tmp_path / "local", at=at, rulebook=edition)
        assert local.rulebook_version == version
        assert_same(read_scores(tmp_path / "local"), totals, tiers)
        remote = score_parquet_spark(out, tmp_path / "spark", at=at, rulebook=edition, spark=spark)
        assert remote.rulebook_version == version
        assert_same(read_scores(tmp_path / "spark"), totals, tiers)
        # And the nightly engine, which scores from the store itself.
        with sessions() as session:
            nightly = score_population(session, store.in_force(session, at), at)
        assert np.max(np.abs(nightly.totals - totals) / np.maximum(np.abs(totals), 1.0)) <= 1e-9
        assert nightly.tiers == tiers
    first = default_rulebook().version
    assert [e.version for e in layout.editions_of(out)] == [first, "2026.9"]
