"""Ids are never cut short: in ``explain`` and ``disputes list``, in an 80-column
terminal as in a wide one, every id prints whole on one line, so it can be copied into
the next command."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.cli.terminal import Column, show
from credence.clock import FixedClock
from credence.disputes.tables import Dispute
from credence.ledger.tables import Record
from tests.cli.conftest import Invoke
from tests.disputes.test_disputes import default, open_
from tests.world import World, build_world, rec, submit

#: Anything that looks like an opaque id, or the start of one.
ID = re.compile(r"\b(?:sub|rec|dsp)_[0-9A-Za-z]*")


def copyable(output: str, ids: set[str]) -> None:
    """Every id of ``ids`` is on one line of ``output``, whole; and every id-like word
    in the output is one of them, whole (nothing like ``rec_661f…``)."""
    lines = output.splitlines()
    for wanted in ids:
        assert any(wanted in line for line in lines), f"{wanted} not whole in:\n{output}"
    for found in ID.findall(output):
        assert found in ids, f"{found!r} is not a whole id, in:\n{output}"
    assert not re.search(r"(?:sub|rec|dsp)_[0-9a-f]*…", output), output


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    """Person 0 with records from three sources, two of them disputed."""
    world = build_world(sessions, clock)
    p = world.people[0]
    day = clock.now() - timedelta(days=30)
    for source, record in (
        ("bank", rec("B-1", p, "loan_repaid", day)),
        ("tax_office", rec("T-1", p, "tax_arrears", day, decision_ref="T-1", quantity=3)),
        ("traffic_police", rec("P-1", p, "traffic_violation", day, decision_ref="P-1")),
    ):
        assert submit(sessions, world, source, clock.now(), record) == ["created"]
    open_(sessions, world, clock, default(sessions, world, clock, "L-1"))
    open_(sessions, world, clock, default(sessions, world, clock, "L-2"))
    return world


def _record_ids(sessions: sessionmaker[Session], world: World) -> set[str]:
    with sessions() as session:
        return set(
            session.scalars(select(Record.public_id).where(Record.subject_id == world.people[0].id))
        )


@pytest.mark.parametrize("columns", [80, 200])
def test_explain_prints_every_record_id_whole(
    cli: Invoke, sessions: sessionmaker[Session], world: World, columns: int
) -> None:
    subject = world.people[0].public_id
    result = cli("explain", subject, columns=columns)
    assert result.exit_code == 0, result.output
    records = _record_ids(sessions, world)
    assert len(records) == 5
    copyable(result.output, {subject, *records})
    assert world.edition.content_hash in result.output


@pytest.mark.parametrize("columns", [80, 200])
def test_disputes_list_prints_every_id_whole(
    cli: Invoke, sessions: sessionmaker[Session], world: World, columns: int
) -> None:
    result = cli("disputes", "list", "--status", "all", columns=columns)
    assert result.exit_code == 0, result.output
    with sessions() as session:
        disputes = set(session.scalars(select(Dispute.public_id)))
        disputed = set(
            session.scalars(select(Record.public_id).join(Dispute, Dispute.record_id == Record.id))
        )
    assert len(disputes) == len(disputed) == 2
    copyable(result.output, disputes | disputed)


IDS = (
    Column("dispute_id", "dispute", is_id=True),
    Column("record_id", "record", is_id=True),
    Column("note"),
)


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_a_listing_keeps_ids_whole_at_any_width(width: int) -> None:
    rows = [
        {
            "dispute_id": f"dsp_{n:020x}",
            "record_id": f"rec_{n:033x}",
            "note": "a long explanation that has to wrap " * 3,
        }
        for n in range(3)
    ]
    out = Console(file=io.StringIO(), width=width)
    show(rows, IDS, out=out)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    copyable(text, {r["dispute_id"] for r in rows} | {r["record_id"] for r in rows})
    assert all(len(line) <= max(width, 4 + 20 + 2 + 37) for line in text.splitlines())
