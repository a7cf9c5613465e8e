"""``credence retention sweep``: erase what must go (the nightly ``score`` runs it too)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from credence.cli import terminal
from credence.cli.terminal import AsOfOption, DbOption

if TYPE_CHECKING:
    from credence.context import Context
    from credence.ledger.erasure import SweepReport

app = typer.Typer(
    help="Erase what the law says must go: records whose retention ended.",
    no_args_is_help=True,
)


def sweep(ctx: Context, at: datetime) -> SweepReport:
    """Erase, as of ``at``, every record due under the rulebook in force then."""
    from credence.ledger.erasure import sweep_retention
    from credence.rulebook import store

    with ctx.sessions() as session:
        rulebook = store.in_force(session, at).rulebook
    return sweep_retention(ctx.engine, ctx.sessions, rulebook, at)


def print_sweep(report: SweepReport, out: Console) -> None:
    """How many records were erased, and why (never which: no content is named)."""
    why = ", ".join(f"{reason.replace('_', ' ')}: {n:,}" for reason, n in report.erased.items())
    out.print(
        f"{report.total:,} records erased ({why or 'none due'}); {report.finished:,} kept "
        f"minimums erased (reinsertion window closed); {report.batches} batches"
    )


@app.command("sweep")
def retention_sweep(db: DbOption = None, as_of: AsOfOption = None) -> None:
    """Erase every record whose retention ended, or whose effect a dispute ended.

    Erases the content of every record whose retention period ended, or whose effect a
    dispute or an approved repair ended (in batches, a log entry per record); the
    subject's file shows each erasure and its date."""
    ctx = terminal.open_context(db)
    with terminal.errors():
        print_sweep(sweep(ctx, terminal.instant(ctx, as_of)), terminal.console())
