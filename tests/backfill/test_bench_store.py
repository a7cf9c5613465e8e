"""The benchmarks' store (``bench.store``, behind ``python -m bench.online``, ``bench.ingest``
and the A/Bs) builds at the current schema on SQLite and PostgreSQL, its history loaded
through one approved backfill run per source, and the log verifies: every covered
column the builder does not write (one a later release added) is encoded as the store
holds it."""

from __future__ import annotations

from pathlib import Path

from bench.store import build
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from credence.db import make_engine, session_factory
from credence.translog.verify import verify_log


def test_the_bench_store_builds_through_backfill_runs_and_verifies(
    db_url: str, tmp_path: Path
) -> None:
    manifest = build(db_url, subjects=60, per_subject=2, seed=7, ids_file=tmp_path / "ids")
    engine = make_engine(db_url)
    try:
        sessions: sessionmaker[Session] = session_factory(engine)
        with sessions() as session:
            report = verify_log(session)
            assert report.ok, [p.message for p in report.problems]
            unexempt = session.scalar(
                text("SELECT count(*) FROM records WHERE backfill_run_id IS NULL")
            )
            held = session.scalar(text("SELECT count(*) FROM record_holds"))
            runs = session.scalars(text("SELECT public_id FROM backfill_runs")).all()
    finally:
        engine.dispose()
    assert manifest["records"] > 0
    assert (unexempt, held) == (0, 0)
    assert sorted(runs) == sorted(manifest["backfill_runs"].values())
