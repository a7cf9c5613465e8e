"""``credence parties``: register a relying party, list the registered ones."""

from __future__ import annotations

from typing import Annotated

import typer

from credence.cli import terminal
from credence.cli.terminal import Column, DbOption, JsonOption
from credence.errors import CredenceError

app = typer.Typer(help="Register and list relying parties.", no_args_is_help=True)


@app.command("add")
def parties_add(
    code: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    services: Annotated[str, typer.Option(help="Comma-separated services it may ask about.")],
    db: DbOption = None,
) -> None:
    """Register a relying party and the services it may ask decisions for."""
    from credence.access.keys import create_relying_party
    from credence.audit.service import log_operator_action
    from credence.rulebook import store

    ctx = terminal.open_context(db)
    now = ctx.clock.now()
    wanted = [s.strip() for s in services.split(",") if s.strip()]
    with terminal.errors(), ctx.sessions.begin() as session:
        book = store.in_force(session, now).rulebook
        unknown = [s for s in wanted if book.service(s) is None]
        if unknown:
            raise CredenceError(f"unknown services: {', '.join(unknown)}", code="unknown_service")
        create_relying_party(session, code=code, name=name, services=wanted, clock=ctx.clock)
        log_operator_action(session, action="party_registered", what=f"party {code}", at=now)
    terminal.console().print(f"relying party {code} registered for {', '.join(wanted)}")


COLUMNS = (
    Column("code", is_id=True),
    Column("name"),
    Column("services"),
    Column("created_at", "registered at", shown=False),
)


@app.command("list")
def parties_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every relying party, by code, with the services it may ask decisions for."""
    from credence.access.keys import list_parties

    ctx = terminal.open_context(db)
    with terminal.errors(), ctx.sessions() as session:
        rows = [
            {
                "code": p.code,
                "name": p.name,
                "services": list(p.services),
                "created_at": p.created_at,
            }
            for p in list_parties(session)
        ]
    terminal.show(rows, COLUMNS, as_json=as_json, title="Relying parties")
