"""``credence sources``: register a source, list the registered ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from credence.cli import terminal
from credence.cli.terminal import Column, DbOption, JsonOption

app = typer.Typer(help="Register and list sources.", no_args_is_help=True)


@app.command("add")
def sources_add(
    code: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    kind: Annotated[str, typer.Option(help="bank, court, tax_office, registry, …")],
    types: Annotated[str, typer.Option(help="Comma-separated record types it may submit.")] = "",
    identity_authority: Annotated[
        str | None, typer.Option(help="'person' (civil registry) or 'organisation'.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Register a source and the record types it may submit."""
    from credence.audit.service import log_operator_action
    from credence.ledger import registry
    from credence.rulebook import store

    ctx = terminal.open_context(db)
    now = ctx.clock.now()
    with terminal.errors(), ctx.sessions.begin() as session:
        registry.register_source(
            session,
            code=code,
            name=name,
            kind=kind,
            record_types=[t.strip() for t in types.split(",") if t.strip()],
            rulebook=store.in_force(session, now).rulebook,
            at=now,
            identity_authority_for=identity_authority,
        )
        log_operator_action(session, action="source_registered", what=f"source {code}", at=now)
    terminal.console().print(f"source {code} registered")


def _kind(row: Mapping[str, Any]) -> str:
    registers = row["identity_authority_for"]
    return f"{row['kind']} (registers {registers}s)" if registers else str(row["kind"])


COLUMNS = (
    Column("code", is_id=True),
    Column("name"),
    Column("kind", render=_kind),
    Column("identity_authority_for", shown=False),
    Column("record_types", "record types"),
    Column("created_at", shown=False),
)


@app.command("list")
def sources_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every registered source, by code, with the record types it may submit."""
    from credence.ledger.sources import list_sources

    ctx = terminal.open_context(db)
    with terminal.errors(), ctx.sessions() as session:
        rows = [
            {
                "code": s.code,
                "name": s.name,
                "kind": s.kind,
                "identity_authority_for": s.identity_authority_for,
                "record_types": list(s.record_types),
                "created_at": s.created_at,
            }
            for s in list_sources(session)
        ]
    terminal.show(rows, COLUMNS, as_json=as_json, title="Sources")
