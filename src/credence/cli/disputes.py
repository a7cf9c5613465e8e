"""``credence disputes``: sweep lapsed disputes, list them, answer one.

``sweep`` is the periodic job: it writes the explicit ledger entry of every dispute left
unanswered at its deadline (whose record stopped counting at that instant whether or
not the sweep runs) and delivers pending notifications through the file channel. Run it
as often as you like; a second run finds nothing to do.

``answer`` acts as a named source (``--source``, only about its own records) or as a
reviewer (``--reviewer``); the policy table decides, as it does for the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from credence.cli import terminal
from credence.cli.terminal import AsOfOption, Column, DbOption, JsonOption

if TYPE_CHECKING:
    from credence.disputes.service import DisputeView

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


COLUMNS = (
    Column("dispute_id", "dispute", is_id=True),
    Column("record_id", "record", is_id=True),
    Column("record_type", "type"),
    Column("source"),
    Column("subject_id", "subject", shown=False),
    Column("opened_at", "opened"),
    Column("deadline"),
    Column("status"),
    Column("outcome", shown=False),
    Column("answered_at", shown=False),
)


def _rows(views: Sequence[DisputeView]) -> list[dict[str, Any]]:
    return [
        {
            "dispute_id": v.dispute_id,
            "record_id": v.record_id,
            "record_type": v.record_type,
            "source": v.source,
            "subject_id": v.subject_id,
            "opened_at": v.opened_at,
            "deadline": v.deadline,
            "status": v.status,
            "outcome": v.outcome,
            "answered_at": v.answered_at,
        }
        for v in views
    ]


@app.command("sweep")
def sweep(db: DbOption = None, as_of: AsOfOption = None) -> None:
    """Record the lapse of every dispute unanswered at its deadline; deliver notifications."""
    from credence.disputes import service
    from credence.notifications.service import FileChannel, deliver_pending

    ctx = terminal.open_context(db)
    at = terminal.instant(ctx, as_of)
    with terminal.errors(), ctx.sessions.begin() as session:
        lapsed = service.sweep(session, at)
        delivered = deliver_pending(session, FileChannel(), at)
    out = terminal.console()
    if lapsed:
        terminal.show(_rows(lapsed), COLUMNS, title="Lapsed disputes", out=out)
    out.print(f"{len(lapsed)} disputes lapsed; {delivered} notifications delivered")


@app.command("list")
def list_(
    db: DbOption = None,
    status: Annotated[Status, typer.Option(help="Which disputes.")] = Status.OPEN,
    source: Annotated[str | None, typer.Option(help="Only this source's queue.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only this subject's (sub_…).")] = None,
    as_json: JsonOption = False,
) -> None:
    """List disputes, earliest deadline first."""
    from credence.disputes import service
    from credence.ledger import registry

    ctx = terminal.open_context(db)
    at = ctx.clock.now()
    with terminal.errors(), ctx.sessions() as session:
        views = service.list_disputes(
            session,
            at=at,
            status=status.value,
            source_id=registry.source_by_code(session, source).id if source else None,
            subject_id=registry.get_subject(session, public_id=subject).id if subject else None,
        )
    terminal.show(_rows(views), COLUMNS, as_json=as_json, title=f"Disputes ({status.value})")


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
    from pydantic import ValidationError

    from credence.access.policy import Action, Caller, Role, authorize
    from credence.disputes import service
    from credence.errors import InvalidInput
    from credence.ledger import registry
    from credence.ledger.schemas import RecordIn
    from credence.rulebook import store

    if (source is None) == (reviewer is None):
        raise typer.BadParameter("answer as exactly one of --source CODE or --reviewer NAME")
    ctx = terminal.open_context(db)
    at = ctx.clock.now()
    with terminal.errors(), ctx.sessions.begin() as session:
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
            src = registry.source_by_code(session, source)
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
    if answered.pending_change is not None:
        terminal.console().print(
            f"dispute {answered.dispute_id}: the answer lifts a sanction and awaits a second "
            f"reviewer's confirmation (change {answered.pending_change}); the record counts "
            "until then"
        )
        return
    terminal.console().print(f"dispute {answered.dispute_id} answered: {answered.status}")
