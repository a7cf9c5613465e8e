"""``credence disputes``: sweep lapsed disputes, list them, answer one.

``sweep`` is the periodic job: it writes the explicit ledger entry of every dispute left
unanswered at its deadline (whose record stopped counting at that instant whether or
not the sweep runs) and delivers pending notifications through the file channel. Run it
as often as you like; a second run finds nothing to do.

``answer`` acts as a named source (``--source``, only about its own records) or as a
reviewer (``--reviewer``); the policy table decides, as it does for the API.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from credence.access.policy import Action, Caller, Role, authorize
from credence.clock import ensure_utc
from credence.context import open_context
from credence.disputes import service
from credence.errors import CredenceError, InvalidInput
from credence.ledger import service as ledger
from credence.ledger.schemas import RecordIn
from credence.notifications.service import FileChannel, deliver_pending
from credence.rulebook import store

app = typer.Typer(
    help="Disputes: sweep lapsed ones, list the queue, answer one.", no_args_is_help=True
)


class Status(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    LAPSED = "lapsed"
    ALL = "all"


class Outcome(StrEnum):
    VERIFIED = "verified"
    CORRECTED = "corrected"
    DELETED = "deleted"


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL: sqlite:///file.db (default credence.db) or postgresql://…",
        envvar="CREDENCE_DB_URL",
        show_envvar=True,
    ),
]


def _console() -> Console:
    # Per command, so output goes to whatever stdout is current (tests capture it).
    console = Console(soft_wrap=True, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped output would otherwise be cut to 80 columns and wrap the ids.
        console.width = max(console.width, 160)
    return console


@contextmanager
def _errors() -> Iterator[None]:
    """Print a domain error as a message and exit 1, instead of a traceback."""
    try:
        yield
    except CredenceError as exc:
        Console(stderr=True).print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None


def _table(views: list[service.DisputeView]) -> Table:
    table = Table("dispute", "record", "type", "source", "opened", "deadline", "status")
    for v in views:
        table.add_row(
            v.dispute_id,
            v.record_id,
            v.record_type,
            v.source,
            f"{v.opened_at:%Y-%m-%d %H:%M}",
            f"{v.deadline:%Y-%m-%d %H:%M}",
            v.status,
        )
    return table


@app.command("sweep")
def sweep(
    db: DbOption = None,
    as_of: Annotated[
        datetime | None, typer.Option("--as-of", help="Instant (ISO 8601, UTC); default now.")
    ] = None,
) -> None:
    """Record the lapse of every dispute unanswered at its deadline; deliver notifications."""
    ctx = open_context(db)
    at = ensure_utc(as_of) if as_of else ctx.clock.now()
    console = _console()
    with _errors(), ctx.sessions.begin() as session:
        lapsed = service.sweep(session, at)
        delivered = deliver_pending(session, FileChannel(), at)
    if lapsed:
        console.print(_table(lapsed))
    console.print(f"{len(lapsed)} disputes lapsed; {delivered} notifications delivered")


@app.command("list")
def list_(
    db: DbOption = None,
    status: Annotated[Status, typer.Option(help="Which disputes.")] = Status.OPEN,
    source: Annotated[str | None, typer.Option(help="Only this source's queue.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only this subject's (sub_…).")] = None,
) -> None:
    """List disputes, earliest deadline first."""
    ctx = open_context(db)
    at = ctx.clock.now()
    with _errors(), ctx.sessions() as session:
        views = service.list_disputes(
            session,
            at=at,
            status=status.value,
            source_id=ledger.source_by_code(session, source).id if source else None,
            subject_id=ledger.get_subject(session, subject).id if subject else None,
        )
    _console().print(_table(views))


@app.command("answer")
def answer(
    dispute_id: Annotated[str, typer.Argument(help="The dispute (dsp_…).")],
    outcome: Annotated[Outcome, typer.Option(help="The answer.")],
    explanation: Annotated[str, typer.Option(help="Why, in words the subject can read.")],
    source: Annotated[
        str | None, typer.Option(help="Answer as this source (its own records only).")
    ] = None,
    reviewer: Annotated[str | None, typer.Option(help="Answer as this reviewer.")] = None,
    correction: Annotated[
        str | None, typer.Option(help="The corrected record, as JSON (outcome corrected).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Answer a dispute before its deadline, as its record's source or as a reviewer."""
    if (source is None) == (reviewer is None):
        raise typer.BadParameter("answer as exactly one of --source CODE or --reviewer NAME")
    ctx = open_context(db)
    at = ctx.clock.now()
    with _errors(), ctx.sessions.begin() as session:
        fixed: RecordIn | None = None
        if correction is not None:
            try:
                fixed = RecordIn.model_validate_json(correction)
            except ValidationError as exc:
                raise InvalidInput(
                    f"the correction is not a valid record: {exc.errors()[0]['msg']}",
                    code="invalid_record",
                ) from None
        view = service.get_dispute(session, dispute_id, at)
        if source is not None:
            src = ledger.source_by_code(session, source)
            caller = Caller(principal_id=None, role=Role.SOURCE, name=src.code, source_id=src.id)
            authorize(caller, Action.DISPUTE_ANSWER, source_id=view.owner_source)
            by = service.Answerer(kind="source", name=src.code)
        else:
            caller = Caller(principal_id=None, role=Role.REVIEWER, name=reviewer or "")
            authorize(caller, Action.DISPUTE_REVIEW)
            by = service.Answerer(kind="reviewer", name=reviewer or "")
        answered = service.answer_dispute(
            session,
            dispute_id=dispute_id,
            outcome=outcome.value,
            explanation=explanation,
            by=by,
            rulebook=store.in_force(session, at).rulebook,
            at=at,
            correction=fixed,
        )
    _console().print(f"dispute {answered.dispute_id} answered: {answered.status}")
