"""``credence identities`` on SQLite and PostgreSQL: the flags listed, answered on the
word of the identity authority named (and refused on anyone else's), a merge undone, and
a log that verifies after."""

from __future__ import annotations

import json
from datetime import date, timedelta

from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.identifiers import SubjectKind, make_resident_id
from credence.ledger import registry
from credence.ledger.schemas import SubjectIn
from credence.translog.verify import verify_log
from tests.cli.conftest import Invoke
from tests.cli.conftest import cli as cli  # the fixture, re-exported
from tests.due_process import journal_kinds
from tests.world import World


def flagged(sessions: sessionmaker[Session], world: World, clock: FixedClock, n: int) -> None:
    """Two persons named alike, born the same day in the same region."""
    with sessions.begin() as session:
        civil = session.merge(world.sources["civil_registry"])
        for sequence in (10 * n, 10 * n + 5):
            registry.register_subject(
                session,
                source=civil,
                data=SubjectIn(
                    kind=SubjectKind.PERSON,
                    identifier=make_resident_id("110105", date(1988, 8, 8), sequence),
                    name=f"Twin {n}",
                    region="110105",
                ),
                at=clock.now(),
            )
        clock.advance(timedelta(minutes=1))


def listed(cli: Invoke, *args: str) -> list[dict[str, object]]:
    result = cli("identities", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.output)
    return rows


def test_the_identity_authority_answers_from_the_command_line(
    cli: Invoke, world: World, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    for n in (1, 2, 3):
        flagged(sessions, world, clock, n)
    flags = [str(f["flag_id"]) for f in listed(cli)]
    assert len(flags) == 3
    assert listed(cli, "--for", "organisation") == []
    void, merge, distinct = flags

    # Only the civil registry answers for persons.
    for source in ("bank", "business_registry", "no_such_source"):
        refused = cli("identities", "void", void, "--source", source, "--reasons", "x")
        assert refused.exit_code != 0, refused.output
    assert listed(cli, "--status", "resolved") == []

    for command, flag in (("void", void), ("merge", merge), ("distinct", distinct)):
        done = cli("identities", command, flag, "--source", "civil_registry", "--reasons", "ok")
        assert done.exit_code == 0, done.output
        assert flag in done.output
    again = cli("identities", "void", void, "--source", "civil_registry", "--reasons", "ok")
    assert again.exit_code == 0, again.output
    assert "already" in again.output
    other = cli("identities", "merge", void, "--source", "civil_registry", "--reasons", "ok")
    assert other.exit_code != 0
    assert "flag_resolved" in other.output or "already resolved" in other.output

    rows = {str(f["flag_id"]): f for f in listed(cli, "--status", "all")}
    assert [rows[f]["status"] for f in (void, merge, distinct)] == ["voided", "merged", "distinct"]
    alias = str(rows[merge]["alias_id"])
    ended = cli("identities", "unmerge", alias, "--source", "civil_registry", "--reasons", "no")
    assert ended.exit_code == 0, ended.output
    assert listed(cli, "--status", "all")[1]["status"] == "unmerged"

    kinds = journal_kinds(sessions)
    assert kinds["identity_flagged"] == 3
    assert kinds["identity_voided"] == kinds["subjects_merged"] == 1
    assert kinds["identity_confirmed_distinct"] == kinds["subjects_unmerged"] == 1
    with sessions() as session:
        assert verify_log(session).ok
