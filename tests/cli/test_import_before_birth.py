"""``credence import`` refuses a file with a record before its subject's birth, whole.

The import is all or nothing (README: "The import file"): a line dated before the
subject's birth (the birth date of their resident identity number, a date in China)
refuses the file, and the report names the line and its source_ref, never the
identifier or the birth date.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.identifiers import SubjectKind, make_resident_id
from credence.ledger import registry
from credence.ledger.schemas import SubjectIn
from credence.ledger.tables import Record
from tests.cli.conftest import Invoke
from tests.world import World

BORN = date(2023, 11, 20)
IDENTIFIER = make_resident_id("110105", BORN, 31)
SECRETS = (IDENTIFIER, "2023-11-20", "20231120", "2023-11-19", "20231119")


def _register(sessions: sessionmaker[Session], world: World, clock: FixedClock) -> str:
    with sessions.begin() as session:
        subject, _ = registry.register_subject(
            session,
            source=session.merge(world.sources["civil_registry"]),
            data=SubjectIn(kind=SubjectKind.PERSON, identifier=IDENTIFIER, name="Newborn"),
            at=clock.now(),
        )
        return subject.public_id


def _count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(Record.id))) or 0


def test_import_refuses_a_file_with_a_record_before_birth(
    cli: Invoke,
    sessions: sessionmaker[Session],
    world: World,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    subject_id = _register(sessions, world, clock)
    before = _count(sessions)
    bad = tmp_path / "records.csv"
    bad.write_text(
        "source_ref,subject_id,identifier,record_type,occurred_at\n"
        f"IMP-1,{subject_id},,loan_repaid,2023-11-20\n"
        f"IMP-2,{subject_id},,loan_repaid,2023-11-19\n"
        f"IMP-3,,{IDENTIFIER},loan_repaid,2023-11-19T15:00:00Z\n"
        f"IMP-4,{world.people[0].public_id},,loan_repaid,2023-11-01\n"
    )
    result = cli("import", str(bad), "--source", "bank", columns=200)
    assert result.exit_code == 1, result.output
    assert "nothing stored" in result.output
    assert "occurred_before_birth" in result.output
    assert "occurred before the subject was born" in result.output
    lines = [line for line in result.output.splitlines() if "occurred_before_birth" in line]
    assert len(lines) == 2
    assert any(" 3 " in line and "IMP-2" in line for line in lines)
    assert any(" 4 " in line and "IMP-3" in line for line in lines)
    for secret in SECRETS:
        assert secret not in result.output
    assert _count(sessions) == before  # all or nothing: not even the good lines

    good = tmp_path / "good.csv"
    good.write_text(
        "source_ref,subject_id,identifier,record_type,occurred_at\n"
        f"IMP-1,{subject_id},,loan_repaid,2023-11-20\n"
        f"IMP-3,,{IDENTIFIER},loan_repaid,2023-11-19T16:00:00Z\n"
        f"IMP-4,{world.people[0].public_id},,loan_repaid,2023-11-01\n"
    )
    result = cli("import", str(good), "--source", "bank", columns=200)
    assert result.exit_code == 0, result.output
    assert _count(sessions) == before + 3
