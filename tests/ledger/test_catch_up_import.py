"""An outage's catch-up delivered as a file (``credence import``), chunk by chunk in one
transaction, on SQLite and PostgreSQL: the run opened by the first chunk exempts the
later ones too, never beyond its volume (each chunk's use logged as it is planned)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.ledger.backfill import OUTAGE_CATCH_UP, BackfillDelivery, BackfillRun
from credence.ledger.holds import RecordHold
from credence.ledger.importer import import_file
from credence.ledger.tables import Record
from tests.api.test_outage_catch_up import LAST, missed, steady_history
from tests.world import World


def test_a_catch_up_imported_in_chunks_exempts_at_most_its_volume(
    sessions: sessionmaker[Session], clock: FixedClock, world: World, tmp_path: Path
) -> None:
    people = world.people
    steady_history(sessions, world, people)  # 60 missed
    lines = ["source_ref,subject_id,record_type,occurred_at"]
    for who, tag in zip(people, "ABC", strict=True):
        lines += [
            f"{r['source_ref']},{r['subject_id']},{r['record_type']},{r['occurred_at']}"
            for r in missed(who, tag)
        ]
    # 13 more for the first person within the silence, past the volume: checked as usual,
    # chunk by chunk (they come 3, 7 and 3 in the last three chunks: the first 10 stay
    # under the burst limit's own 12, the chunk that crosses it is held).
    lines += [f"X-{i},{people[0].public_id},loan_repaid,{LAST.isoformat()}" for i in range(13)]
    path = tmp_path / "catch-up.csv"
    path.write_text("\n".join(lines) + "\n")
    report = import_file(sessions, path, source_code="bank", clock=clock, chunk=7)
    assert report.stored, report.errors
    with sessions() as session:
        [run] = session.scalars(select(BackfillRun).where(BackfillRun.kind == OUTAGE_CATCH_UP))
        assert run.expected_records == 60
        exempted = session.scalar(select(func.sum(BackfillDelivery.exempted))) or 0
        marked = session.scalar(select(func.count()).where(Record.backfill_run_id == run.id))
        held = session.scalar(select(func.count()).select_from(RecordHold))
    assert (exempted, marked, held) == (60, 60, 3)
