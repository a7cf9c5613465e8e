"""``credence import FILE --source S --backfill-run RUN``, on SQLite and PostgreSQL: a
bank's history (more positives about one person than the rulebook's burst limit) is
held whole when imported bare, and stored counting when imported under a run an
operator approved for the bank; another source's run or an unknown one refuses the
file, and nothing is stored."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.ledger.holds import RecordHold
from credence.ledger.tables import Record
from tests.cli.conftest import Invoke
from tests.cli.conftest import cli as cli  # the fixture, re-exported
from tests.due_process import journal_kinds
from tests.world import World

#: More loan repayments from one bank about one person than the default rulebook's
#: burst limit lets in at once (12 positives in 30 days).
HISTORY = 20


def history(tmp_path: Path, world: World, clock: FixedClock, tag: str) -> Path:
    """A CSV of the bank's past loan repayments about the first person, a month apart."""
    path = tmp_path / f"{tag}.csv"
    lines = ["source_ref,subject_id,record_type,occurred_at"]
    for i in range(HISTORY):
        day = clock.now() - timedelta(days=30 * (i + 2))
        lines.append(f"{tag}-{i},{world.people[0].public_id},loan_repaid,{day:%Y-%m-%d}")
    path.write_text("\n".join(lines) + "\n")
    return path


def approve(cli: Invoke, source: str, expected: int = 1000) -> str:
    done = cli(
        "backfill", "approve", "--source", source, "--from", "2015-01-01",
        "--until", "2026-05-01", "--expected", str(expected),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    [run] = re.findall(r"\bbkf_\w+", done.output)
    return str(run)


def counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """Records stored and records held."""
    with sessions() as session:
        records = session.scalar(select(func.count()).select_from(Record)) or 0
        held = session.scalar(select(func.count()).select_from(RecordHold)) or 0
    return records, held


def test_an_approved_run_exempts_the_history_from_the_burst_limit(
    cli: Invoke,
    sessions: sessionmaker[Session],
    world: World,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    records, held = counts(sessions)
    bare = cli("import", str(history(tmp_path, world, clock, "BARE")), "--source", "bank")
    assert bare.exit_code == 0, bare.output
    assert f"{HISTORY} held" in bare.output
    assert counts(sessions) == (records + HISTORY, held + HISTORY)

    run = approve(cli, "bank")
    path = history(tmp_path, world, clock, "RUN")
    done = cli("import", str(path), "--source", "bank", "--backfill-run", run, columns=200)
    assert done.exit_code == 0, done.output
    assert "held" not in done.output
    assert f"{HISTORY} exempted" in done.output
    assert counts(sessions) == (records + 2 * HISTORY, held + HISTORY)
    [shown] = json.loads(cli("backfill", "list", "--json").output)
    assert shown["run_id"] == run
    assert shown["exempted"] == HISTORY
    assert journal_kinds(sessions)["backfill_delivered"] == 1

    # Imported again: duplicates, nothing exempted twice.
    again = cli("import", str(path), "--source", "bank", "--backfill-run", run)
    assert again.exit_code == 0, again.output
    [shown] = json.loads(cli("backfill", "list", "--json").output)
    assert shown["exempted"] == HISTORY
    assert cli("log", "verify").exit_code == 0


def test_a_run_exempts_no_more_than_its_scope(
    cli: Invoke,
    sessions: sessionmaker[Session],
    world: World,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    records, held = counts(sessions)
    run = approve(cli, "bank", expected=5)
    done = cli("import", str(history(tmp_path, world, clock, "RUN")), "--source", "bank",
               "--backfill-run", run)  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "5 exempted" in done.output
    # The rest, beyond the run's volume, are checked like any others: more than the
    # burst limit, so held.
    assert f"{HISTORY - 5} held" in done.output
    assert counts(sessions) == (records + HISTORY, held + HISTORY - 5)


def test_an_unknown_run_or_another_sources_refuses_the_file(
    cli: Invoke,
    sessions: sessionmaker[Session],
    world: World,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    before = counts(sessions)
    path = history(tmp_path, world, clock, "RUN")
    unknown = cli("import", str(path), "--source", "bank", "--backfill-run", "bkf_nope")
    assert unknown.exit_code == 1
    assert "unknown_backfill_run" in unknown.output
    courts = approve(cli, "court")
    other = cli("import", str(path), "--source", "bank", "--backfill-run", courts)
    assert other.exit_code == 1
    assert "backfill_run_of_another_source" in other.output
    assert counts(sessions) == before
    [shown] = json.loads(cli("backfill", "list", "--json").output)
    assert shown["exempted"] == 0
    assert journal_kinds(sessions)["backfill_delivered"] == 0
