"""``credence backfill``: approve a source's backfill run, list the runs.

A run is the one way a source loads its history without the intake's burst and
new-identity limits: an operator approves it for one source with its scope (the period
its records occurred in, how many it may exempt), and the source names the run's id
when it delivers (``credence import FILE --source CODE --backfill-run RUN``, or
``backfill_run`` in ``POST /v1/records``). Plausibility always applies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from credence.cli import terminal
from credence.cli.terminal import Column, DbOption, JsonOption

app = typer.Typer(help="Approved backfill runs: approve one, list them.", no_args_is_help=True)

COLUMNS = (
    Column("run_id", "run", is_id=True),
    Column("kind"),
    Column("source"),
    Column("occurred_from", "from"),
    Column("occurred_until", "until"),
    Column("expected_records", "expected", justify="right"),
    Column("exempted", justify="right"),
    Column("approved_at", "approved"),
)


@app.command("approve")
def approve(
    source: Annotated[str, typer.Option("--source", help="Code of the source it is for.")],
    occurred_from: Annotated[
        datetime,
        typer.Option("--from", help="Its records occurred from this instant (UTC), inclusive."),
    ],
    occurred_until: Annotated[
        datetime,
        typer.Option("--until", help="… until this instant (UTC), exclusive."),
    ],
    expected: Annotated[
        int, typer.Option("--expected", help="How many records it may exempt, at most.")
    ],
    db: DbOption = None,
) -> None:
    """Approve a backfill run for a source; prints the run's id, which the source
    names when it delivers."""
    from credence.audit.service import log_operator_action
    from credence.clock import ensure_utc
    from credence.ledger import backfill, registry

    ctx = terminal.open_context(db)
    at = ctx.clock.now()
    with terminal.errors(), ctx.sessions.begin() as session:
        src = registry.source_by_code(session, source)
        run = backfill.approve(
            session,
            source=src,
            occurred_from=ensure_utc(occurred_from, "--from"),
            occurred_until=ensure_utc(occurred_until, "--until"),
            expected_records=expected,
            principal_id=None,
            at=at,
        )
        run_id, since, until = run.public_id, run.occurred_from, run.occurred_until
        log_operator_action(
            session,
            action="backfill_approved",
            what=f"backfill run {run_id} of source {src.code}",
            at=at,
        )
    terminal.console().print(
        f"backfill run {run_id} approved for source {source}: up to {expected:,} records "
        f"that occurred from {since:%Y-%m-%d %H:%M} until {until:%Y-%m-%d %H:%M} UTC"
    )


@app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every run, oldest first: those an operator approved and the catch-ups intake opened
    after an outage (kind ``outage_catch_up``), with how many records each exempted."""
    from credence.ledger import backfill

    ctx = terminal.open_context(db)
    with terminal.errors(), ctx.sessions() as session:
        rows = [{c.key: getattr(v, c.key) for c in COLUMNS} for v in backfill.list_runs(session)]
    terminal.show(rows, COLUMNS, as_json=as_json, title="Backfill runs")
