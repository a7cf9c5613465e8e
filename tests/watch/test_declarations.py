"""Cadence declarations on SQLite and PostgreSQL: each is a journal entry listing its
rows, ``credence log verify`` passes over them and fails when one is tampered with; and
whatever bytes a source's name carries, the status shows them as data, never obeyed."""

from __future__ import annotations

import json
from datetime import timedelta

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.journal import JournalEntry
from credence.ledger import freshness, registry
from credence.ledger.freshness import Cadence
from credence.ledger.tables import SourceCadence
from credence.models import metadata
from credence.translog.verify import verify_log
from credence.watch.status import status
from tests import tamper
from tests.cli.conftest import Invoke
from tests.cli.conftest import cli as cli  # the fixture, re-exported
from tests.client import Api
from tests.world import World

DAY = timedelta(days=1)


def entries(sessions: sessionmaker[Session], kind: str) -> list[JournalEntry]:
    with sessions() as session:
        found = session.scalars(
            select(JournalEntry).where(JournalEntry.kind == kind).order_by(JournalEntry.seq)
        ).all()
        session.expunge_all()
        return list(found)


def problems(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return [p.message for p in verify_log(session).problems]


def test_declarations_are_journalled_and_verified(
    engine: Engine, sessions: sessionmaker[Session], world: World, clock: FixedClock
) -> None:
    book = world.edition.rulebook
    with sessions.begin() as session:
        registry.register_source(
            session,
            code="new_bank",
            name="New Bank",
            kind="bank",
            record_types=["loan_repaid", "loan_default"],
            rulebook=book,
            at=clock.now() - 10 * DAY,
            cadences=[Cadence("loan_repaid", 7, 7)],
        )
    with sessions.begin() as session:
        source = registry.source_by_code(session, "new_bank")
        freshness.declare(
            session,
            source=source,
            cadences=[Cadence("loan_repaid", 14, 0), Cadence("loan_default", 90, 30)],
            at=clock.now(),
        )
    # The first declaration is part of the registration's entry; the second has its own,
    # listing both rows.
    registered = entries(sessions, "source_registered")[-1]
    assert "source_cadences" in {table for table, _, _ in orjson.loads(registered.rows)}
    (declared,) = entries(sessions, "source_cadence_declared")
    assert orjson.loads(declared.data) == {
        "record_types": ["loan_default", "loan_repaid"],
        "source": "new_bank",
    }
    listed = [(table, key) for table, key, _ in orjson.loads(declared.rows)]
    with sessions() as session:
        rows = session.scalars(
            select(SourceCadence)
            .where(SourceCadence.seq == declared.seq)
            .order_by(SourceCadence.id)
        ).all()
        assert listed == [("source_cadences", r.id) for r in rows]
        assert [(r.record_type, r.cadence_days, r.grace_days) for r in rows] == [
            ("loan_repaid", 14, 0),
            ("loan_default", 90, 30),
        ]
        target = {"id": rows[0].id}
        # Three rows in all: the one of the registration stays.
        assert len(session.scalars(select(SourceCadence)).all()) == 3
    assert problems(sessions) == []

    # An attacker makes the bank's promise looser, in place: verify names the row.
    table = metadata.tables["source_cadences"]
    with tamper.attacker(engine) as conn:
        tamper.update(conn, table, target, {"cadence_days": 365})
    found = problems(sessions)
    assert found
    assert all("source_cadences" in p for p in found), found
    with tamper.attacker(engine) as conn:
        tamper.update(conn, table, target, {"cadence_days": 14})
    assert problems(sessions) == []
    # ... or deletes the newer declaration, so that the older one reads as in force.
    with tamper.attacker(engine) as conn:
        kept = tamper.read(conn, table, target)
        assert kept is not None
        tamper.delete(conn, table, target)
    assert any("source_cadences" in p for p in problems(sessions))
    with tamper.attacker(engine) as conn:
        tamper.insert(conn, table, kept)
    assert problems(sessions) == []


HOSTILE = "\x1b[31mRed\x1b[0m \u202eevil\u202c [bold]x[/bold] \x07\x85 <b>&amp;</b> 新"


def test_hostile_bytes_in_a_source_are_shown_as_data(
    api: Api, cli: Invoke, sessions: sessionmaker[Session], world: World, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        registry.register_source(
            session,
            code="odd\x1b[2J",
            name=HOSTILE,
            kind=f"kind {HOSTILE}",
            record_types=["loan_repaid"],
            rulebook=world.edition.rulebook,
            at=clock.now() - DAY,
            cadences=[Cadence("loan_repaid", 7, 0)],
        )
    # The API and --json give the bytes back exactly, as JSON strings.
    body = api.get("/v1/sources/status").json()
    odd = next(s for s in body["sources"] if s["code"] == "odd\x1b[2J")
    assert (odd["name"], odd["kind"]) == (HOSTILE, f"kind {HOSTILE}")
    assert odd["types"][0]["cadence_days"] == 7
    shown = cli("sources", "status", "--json")
    assert shown.exit_code == 0, shown.output
    odd_json = next(s for s in json.loads(shown.output)["sources"] if s["code"] == "odd\x1b[2J")
    assert odd_json["name"] == HOSTILE
    # The table shows them escaped: nothing a terminal would act on, no markup obeyed.
    table = cli("sources", "status", columns=250)
    assert table.exit_code == 0, table.output
    for raw in ("\x1b", "\u202e", "\u202c", "\x07", "\x85"):
        assert raw not in table.output
    assert "\\x1b[31mRed\\x1b[0m" in table.output
    assert "[bold]x[/bold]" in table.output
    assert "odd\\x1b[2J" in table.output
    # A cadence named with hostile bytes is refused without echoing them raw.
    for text in ("loan_repaid\x1b[2J=7", "loan_repaid=7\u202e", HOSTILE):
        refused = cli("sources", "cadence", "bank", text)
        assert refused.exit_code == 1
        assert "invalid_cadence" in refused.output
        assert "\x1b" not in refused.output
        assert "\u202e" not in refused.output
    with sessions() as session:
        assert any(s.name == HOSTILE for s in status(session, clock.now()).sources)
