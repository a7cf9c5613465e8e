"""``credence holds``: the reviewers' queue from the command line, on SQLite and
PostgreSQL: list, release, reject, with the same refusals as the API, and a log that
verifies after."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.ledger import holds
from credence.ledger.tables import Record
from tests.cli.conftest import Invoke
from tests.cli.conftest import cli as cli  # the fixture, re-exported
from tests.due_process import journal_kinds
from tests.world import World, rec, submit


def held(sessions: sessionmaker[Session], world: World, clock: FixedClock, *refs: str) -> list[str]:
    """Loan repayments from the bank about the first person, held; the holds' ids."""
    day = clock.now() - timedelta(days=3)
    statuses = submit(
        sessions,
        world,
        "bank",
        clock.now(),
        *(rec(r, world.people[0], "loan_repaid", day) for r in refs),
    )
    assert statuses == ["created"] * len(refs)
    with sessions.begin() as session:
        rows = session.execute(
            select(Record.id, Record.subject_id, Record.source_id)
            .where(Record.source_ref.in_(refs))
            .order_by(Record.id)
        ).all()
        placed = holds.place(
            session,
            [holds.ToHold(r.id, r.subject_id, r.source_id, holds.BURST) for r in rows],
            at=clock.now(),
        )
        return [p.public_id for p in placed]


def test_holds_list_release_and_reject(
    cli: Invoke, sessions: sessionmaker[Session], world: World, clock: FixedClock
) -> None:
    first, second, third = held(sessions, world, clock, "H-1", "H-2", "H-3")
    listing = cli("holds", "list", columns=200)
    assert listing.exit_code == 0, listing.output
    for hold in (first, second, third):
        assert hold in listing.output
    assert "burst" in listing.output

    released = cli("holds", "release", first, "--reasons", "Statements checked.")
    assert released.exit_code == 0, released.output
    assert first in released.output
    assert "released" in released.output
    rejected = cli("holds", "reject", second, "--reasons", "A refinancing, not a repayment.")
    assert rejected.exit_code == 0, rejected.output
    assert "rejected" in rejected.output

    as_json = cli("holds", "list", "--status", "all", "--json")
    assert as_json.exit_code == 0, as_json.output
    rows = {h["hold_id"]: h for h in json.loads(as_json.output)}
    assert {k: v["status"] for k, v in rows.items()} == {
        first: "released",
        second: "rejected",
        third: "held",
    }
    assert rows[second]["decided_reason"] == "A refinancing, not a repayment."
    decided = json.loads(cli("holds", "list", "--status", "decided", "--json").output)
    assert [h["hold_id"] for h in decided] == [first, second]
    waiting = json.loads(cli("holds", "list", "--json").output)
    assert [h["hold_id"] for h in waiting] == [third]

    # The same decision again is a resend; the other, a conflict; an unknown hold, named.
    again = cli("holds", "release", first, "--reasons", "Statements checked.")
    assert again.exit_code == 0, again.output
    conflict = cli("holds", "reject", first, "--reasons", "No.")
    assert conflict.exit_code == 1
    assert "hold_decided" in conflict.output
    unknown = cli("holds", "release", "hld_nope", "--reasons", "Yes.")
    assert unknown.exit_code == 1
    assert "unknown_hold" in unknown.output
    blank = cli("holds", "release", third, "--reasons", "  ")
    assert blank.exit_code == 1
    assert "reasons_required" in blank.output

    kinds = journal_kinds(sessions)
    assert kinds["hold_released"] == kinds["hold_rejected"] == 1
    verified = cli("log", "verify")
    assert verified.exit_code == 0, verified.output
    assert "log verified" in verified.output
