"""``credence holds``: the reviewers' queue of records held at intake.

A held record is stored and on the subject's file but counts nowhere until a reviewer
releases it (it counts from then on) or rejects it (it never counts), with reasons the
subject reads. The commands act as a reviewer, as the API's ``/v1/holds`` does: the
policy table decides, and every decision is a journal entry the subject is told of.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from credence.cli import terminal
from credence.cli.terminal import Column, DbOption, JsonOption

if TYPE_CHECKING:
    from credence.ledger.holds import HoldView, Outcome

app = typer.Typer(
    help="Records held at intake: list the queue, release or reject one.", no_args_is_help=True
)


class Status(StrEnum):
    HELD = "held"
    DECIDED = "decided"
    ALL = "all"


COLUMNS = (
    Column("hold_id", "hold", is_id=True),
    Column("record_id", "record", is_id=True),
    Column("record_type", "type"),
    Column("source"),
    Column("subject_id", "subject", shown=False),
    Column("cause"),
    Column("held_at", "held"),
    Column("status"),
    Column("decided_at", "decided"),
    Column("decided_reason", shown=False),
)

ReasonsOption = Annotated[
    str, typer.Option("--reasons", help="Why, in words the subject can read.")
]


def _rows(views: Sequence[HoldView]) -> list[dict[str, Any]]:
    """Each hold by the listing's columns (every one in ``--json``)."""
    return [{c.key: getattr(v, c.key) for c in COLUMNS} for v in views]


@app.command("list")
def list_(
    db: DbOption = None,
    status: Annotated[Status, typer.Option(help="Which holds.")] = Status.HELD,
    as_json: JsonOption = False,
) -> None:
    """List holds, oldest first."""
    from credence.ledger import holds

    ctx = terminal.open_context(db)
    with terminal.errors(), ctx.sessions() as session:
        views = holds.list_holds(session, status=status.value)
    terminal.show(_rows(views), COLUMNS, as_json=as_json, title=f"Holds ({status.value})")


def _decide(hold_id: str, outcome: Outcome, reasons: str, db: str | None) -> None:
    from credence.access.policy import Action, Caller, Role, authorize
    from credence.audit.service import log_operator_action
    from credence.ledger import holds

    ctx = terminal.open_context(db)
    at = ctx.clock.now()
    with terminal.errors(), ctx.sessions.begin() as session:
        authorize(Caller(principal_id=None, role=Role.REVIEWER, name="cli"), Action.HOLD_REVIEW)
        view, decided_now = holds.decide(
            session, hold_id=hold_id, outcome=outcome, principal_id=None, reason=reasons, at=at
        )
        if decided_now:
            log_operator_action(
                session,
                action=f"hold_{outcome}",
                what=f"hold {view.hold_id} of record {view.record_id}",
                at=at,
            )
    when = f"{view.decided_at:%Y-%m-%d %H:%M} UTC" if view.decided_at else ""
    effect = "counts from then on" if outcome == "released" else "will never count"
    again = "" if decided_now else " (already, before)"
    terminal.console().print(
        f"hold {view.hold_id} {view.status}{again} at {when}: record {view.record_id} {effect}"
    )


@app.command("release")
def release(
    hold_id: Annotated[str, typer.Argument(help="The hold (hld_…).")],
    reasons: ReasonsOption,
    db: DbOption = None,
) -> None:
    """Release a held record: it counts from now on."""
    _decide(hold_id, "released", reasons, db)


@app.command("reject")
def reject(
    hold_id: Annotated[str, typer.Argument(help="The hold (hld_…).")],
    reasons: ReasonsOption,
    db: DbOption = None,
) -> None:
    """Reject a held record: it stays on the file and never counts."""
    _decide(hold_id, "rejected", reasons, db)
