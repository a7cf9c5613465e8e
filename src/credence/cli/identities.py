"""``credence identities``: probable duplicates flagged at registration, and the identity
authority's answers.

The commands act on the word of an identity authority named by ``--source`` (a civil
registry for persons, a business registry for organisations), as its key does through
the API's ``/v1/identity-flags``: the ledger checks that the source answers for the
subject's kind, and every answer is a journal entry both subjects are told of.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from credence.cli import terminal
from credence.cli.terminal import Column, DbOption, JsonOption

if TYPE_CHECKING:
    from credence.ledger.identities import FlagView

app = typer.Typer(
    help="Probable duplicate identities: list the flags; confirm distinct, merge, void, unmerge.",
    no_args_is_help=True,
)


class Status(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    ALL = "all"


class Authority(StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"


COLUMNS = (
    Column("flag_id", "flag", is_id=True),
    Column("subject_id", "subject", is_id=True),
    Column("other_subject_id", "resembles", is_id=True),
    Column("test"),
    Column("flagged_at", "flagged"),
    Column("status"),
    Column("resolved_at", "resolved"),
    Column("alias_id", "alias", is_id=True),
    Column("reasons", shown=False),
)

SourceOption = Annotated[
    str,
    typer.Option(
        "--source", help="The identity authority (source code) on whose word this is done."
    ),
]
ReasonsOption = Annotated[
    str, typer.Option("--reasons", help="Why, in words both subjects can read.")
]


def _rows(views: Sequence[FlagView]) -> list[dict[str, Any]]:
    return [
        {
            "flag_id": v.flag_id,
            "subject_id": v.subject_id,
            "other_subject_id": v.other_subject_id,
            "test": v.test,
            "flagged_at": v.flagged_at,
            "status": v.status,
            "resolved_at": v.resolved_at,
            "alias_id": v.alias_id,
            "reasons": v.reason,
        }
        for v in views
    ]


@app.command("list")
def list_(
    authority: Annotated[
        Authority, typer.Option("--for", help="Flags of persons or of organisations.")
    ] = Authority.PERSON,
    db: DbOption = None,
    status: Annotated[Status, typer.Option(help="Which flags.")] = Status.OPEN,
    as_json: JsonOption = False,
) -> None:
    """List flags, newest first (no names: the API shows them to the authority)."""
    from credence.ledger import identities

    ctx = terminal.open_context(db)
    with terminal.errors(), ctx.sessions() as session:
        views = identities.list_flags(session, authority_for=authority.value, status=status.value)
    terminal.show(_rows(views), COLUMNS, as_json=as_json, title=f"Identity flags ({status})")


def _resolve(flag_id: str, outcome: str, source: str, reasons: str, db: str | None) -> None:
    from credence.audit.service import log_operator_action
    from credence.ledger import identities, registry

    ctx = terminal.open_context(db)
    at = ctx.clock.now()
    with terminal.errors(), ctx.sessions.begin() as session:
        view, created = identities.resolve_flag(
            session,
            flag_id=flag_id,
            outcome=outcome,
            authority=registry.source_by_code(session, source),
            principal_id=None,
            reason=reasons,
            at=at,
        )
        if created:
            log_operator_action(
                session,
                action=f"identity_{outcome}",
                what=f"identity flag {view.flag_id} on the word of {source}",
                at=at,
            )
    again = "" if created else " (already, before)"
    alias = f", alias {view.alias_id}" if view.alias_id else ""
    terminal.console().print(f"flag {view.flag_id} {view.status}{again}{alias}")


FlagArgument = Annotated[str, typer.Argument(help="The flag (idf_…).")]


@app.command("distinct")
def distinct(
    flag_id: FlagArgument, source: SourceOption, reasons: ReasonsOption, db: DbOption = None
) -> None:
    """Confirm the two subjects distinct: nothing changes on their files."""
    _resolve(flag_id, "distinct", source, reasons, db)


@app.command("merge")
def merge(
    flag_id: FlagArgument, source: SourceOption, reasons: ReasonsOption, db: DbOption = None
) -> None:
    """Merge: the flagged subject is read into the other's file from now on."""
    _resolve(flag_id, "merged", source, reasons, db)


@app.command("void")
def void(
    flag_id: FlagArgument, source: SourceOption, reasons: ReasonsOption, db: DbOption = None
) -> None:
    """Void the flagged subject as fictitious: its records are held, no decision."""
    _resolve(flag_id, "voided", source, reasons, db)


@app.command("unmerge")
def unmerge(
    alias_id: Annotated[str, typer.Argument(help="The alias (als_…).")],
    source: SourceOption,
    reasons: ReasonsOption,
    db: DbOption = None,
) -> None:
    """Undo a merge: the alias is a file of its own again from now on."""
    from credence.audit.service import log_operator_action
    from credence.ledger import identities, registry

    ctx = terminal.open_context(db)
    at = ctx.clock.now()
    with terminal.errors(), ctx.sessions.begin() as session:
        view, created = identities.end_alias(
            session,
            alias_id=alias_id,
            authority=registry.source_by_code(session, source),
            principal_id=None,
            reason=reasons,
            at=at,
        )
        if created:
            log_operator_action(
                session,
                action="identity_unmerged",
                what=f"alias {alias_id} on the word of {source}",
                at=at,
            )
    again = "" if created else " (already, before)"
    terminal.console().print(f"alias {alias_id} ended{again}: flag {view.flag_id} {view.status}")
