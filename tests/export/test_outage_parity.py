"""Outages are not behaviour in every engine: the bank that stops reporting
(:mod:`tests.scoring.outage_world`), exported, is scored by the columnar engine and by
Spark exactly as the online path and the nightly engine score it, as of instants before,
during, past the maximum freeze of and after its outage, on SQLite and PostgreSQL; the
export carries the declarations and the receipts the rule reads, and the engines find the
same outages as the store does."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from credence.cli import app
from credence.clock import FixedClock
from credence.export.service import export_ledger
from credence.ledger import freshness
from credence.ledger.registry import subject_ref
from credence.rulebook.store import Edition
from credence.scoring import layout
from credence.scoring.batch import score_population
from credence.scoring.columnar import read_scores, score_parquet
from credence.scoring.online import score_subject
from tests.scoring.outage_world import DAY, Timeline, stopped_bank, without_freeze
from tests.world import store_context


def exported(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> tuple[Timeline, Path, list[str]]:
    t = stopped_bank(sessions, clock)
    out = tmp_path / "export"
    export_ledger(store_context(engine, sessions, clock, tmp_path / "log.key"), out)
    subjects = pq.read_table(out / layout.SUBJECTS_DIR).sort_by("subject_id")
    return t, out, subjects.column("public_id").to_pylist()


def online(
    sessions: sessionmaker[Session], public_ids: list[str], edition: Edition, at: datetime
) -> list[tuple[float, str]]:
    with sessions() as session:
        scored = [
            score_subject(session, subject_ref(session, public_id=p), edition, at)
            for p in public_ids
        ]
    return [(s.total, s.tier) for s in scored]


def nightly(
    sessions: sessionmaker[Session], public_ids: list[str], edition: Edition, at: datetime
) -> list[tuple[float, str]]:
    with sessions() as session:
        ids = [subject_ref(session, public_id=p).id for p in public_ids]
        population = score_population(session, edition, at)
    row = {int(s): k for k, s in enumerate(population.subject_ids)}
    return [(float(population.totals[row[i]]), population.tiers[row[i]]) for i in ids]


def columnar(out: Path, scores: Path, edition: Edition, at: datetime) -> list[tuple[float, str]]:
    score_parquet(out, scores, at=at, rulebook=edition)
    table = read_scores(scores)
    return scored(table)


def scored(table: Any) -> list[tuple[float, str]]:
    totals, tiers = table.column("total").to_pylist(), table.column("tier").to_pylist()
    return list(zip(totals, tiers, strict=True))


def same(a: list[tuple[float, str]], b: list[tuple[float, str]]) -> None:
    assert [tier for _, tier in a] == [tier for _, tier in b]
    assert [total for total, _ in a] == pytest.approx([total for total, _ in b], rel=1e-12)


def test_the_export_carries_what_the_outage_rule_reads(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    t, out, _ = exported(engine, sessions, clock, tmp_path)
    bank = t.world.sources["bank"].id
    with sessions() as session:
        for at in t.instants():
            store = {o.code: o.since for o in freshness.outages(session, at).values()}
            assert layout.outages_at(out, at) == store, at
        assert freshness.outages(session, t.since + DAY)[bank].since == t.since
    assert layout.outages_at(out, t.since + DAY)["bank"] == t.since
    manifest = layout.read_manifest(out)
    assert manifest is not None
    assert manifest["watch"]["cadences"] == 2
    assert manifest["watch"]["receipts"] == len(t.reports) + 2  # and the court's default
    # A generated population carries none: no source in outage.
    assert layout.outages_at(tmp_path, t.since + DAY) == {}


def test_every_engine_freezes_the_bank_s_records_alike(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    t, out, public_ids = exported(engine, sessions, clock, tmp_path)
    edition = t.world.edition
    plain = without_freeze(edition)
    moved = 0
    for k, at in enumerate(t.instants()):
        expected = online(sessions, public_ids, edition, at)
        same(nightly(sessions, public_ids, edition, at), expected)
        same(columnar(out, tmp_path / f"c{k}", edition, at), expected)
        unfrozen = online(sessions, public_ids, plain, at)
        same(columnar(out, tmp_path / f"p{k}", plain, at), unfrozen)
        moved += expected != unfrozen
    assert moved >= 5


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")
def test_spark_freezes_the_bank_s_records_as_the_online_path_does(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path, spark: Any
) -> None:
    from credence.scoring.spark import score_parquet_spark

    t, out, public_ids = exported(engine, sessions, clock, tmp_path)
    edition = t.world.edition
    for k, at in enumerate((t.since - 3 * DAY, t.since + 30 * DAY, t.limit + 10 * DAY)):
        expected = online(sessions, public_ids, edition, at)
        score_parquet_spark(out, tmp_path / f"s{k}", at=at, rulebook=edition, spark=spark)
        same(scored(read_scores(tmp_path / f"s{k}")), expected)


def test_a_batch_run_names_the_sources_it_froze(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    t, out, _ = exported(engine, sessions, clock, tmp_path)
    at = t.since + 30 * DAY
    result = CliRunner().invoke(
        app, ["score", "--input", str(out), "--out", str(tmp_path / "s"), "--as-of", at.isoformat()]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"source bank in outage since {t.since:%Y-%m-%d}: its records' age frozen to then "
        f"(until {at:%Y-%m-%d})"
    ) in result.output
    run = json.loads((tmp_path / "s" / layout.RUN).read_text())
    assert run["frozen_sources"] == {
        "bank": {"outage_since": t.since.isoformat(), "frozen_until": at.isoformat()}
    }
    before = score_parquet(out, tmp_path / "b", at=t.since - DAY, rulebook=t.world.edition)
    assert before.frozen == {}
    assert before.as_json()["frozen_sources"] == {}
