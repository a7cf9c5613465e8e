"""``credence score``: rescore everyone from the ledger (and say how many shown tiers
moved, up and down), or score a Parquet population, locally or on Spark (``--input``).

:func:`run_batch_cli` does the Parquet run and its printing and returns the exit code.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from credence.cli import terminal
from credence.cli.retention import print_sweep, sweep
from credence.cli.terminal import AsOfOption, DbOption

if TYPE_CHECKING:
    from credence.context import Context
    from credence.rulebook.model import Rulebook
    from credence.rulebook.store import Edition
    from credence.scoring.columnar import ColumnarSummary
    from credence.tiers.rescore import RescoreReport

Engine = Literal["local", "spark"]


def _tier_table(tiers: dict[str, int], subjects: int, title: str) -> Table:
    table = Table("tier", "subjects", "share", title=title)
    for tier, n in tiers.items():
        share = n / subjects if subjects else 0.0
        table.add_row(tier, f"{n:,}", f"{share:.1%}")
    return table


def rescore_ledger(ctx: Context, at: datetime, out: Console) -> RescoreReport:
    """Score everyone in the ledger as of ``at`` and move shown tiers, with a progress bar."""
    from credence.rulebook import store
    from credence.tiers.rescore import rescore

    with terminal.progress(out) as bar, ctx.sessions.begin() as session:
        tick = terminal.ticker(bar, "scoring")
        return rescore(session, store.in_force(session, at), at, progress=tick)


def print_rescore(report: RescoreReport, out: Console) -> None:
    """The tier distribution, the speed, and how many shown tiers moved."""
    summary, moves = report.summary, report.moves
    title = f"Tiers (rulebook {summary.rulebook_version})"
    out.print(_tier_table(summary.tiers, summary.subjects, title))
    rate = summary.records / summary.seconds if summary.seconds else 0.0
    out.print(
        f"scored {summary.subjects:,} subjects from {summary.records:,} records "
        f"in {summary.seconds:.2f} s ({rate:,.0f} records/s)"
    )
    first = f"; {moves.first:,} shown a tier for the first time" if moves.first else ""
    out.print(
        f"{moves.changed:,} subjects changed tier: {moves.up:,} up, {moves.down:,} down{first}"
    )


def score(
    db: DbOption = None,
    as_of: AsOfOption = None,
    input_dir: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="Score a Parquet population (credence lab generate).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Where to write scores/ for --input.")
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local (numpy) or spark, for --input.")
    ] = "local",
) -> None:
    """Rescore everyone: from the ledger (default), or a Parquet population (--input).

    From the ledger, shown tiers move (the command says how many, up and down) and
    what expired is erased."""
    out = terminal.console()
    if input_dir is not None:
        if out_dir is None:
            raise typer.BadParameter("--out is required with --input", param_hint="--out")
        from credence.scoring.engines import ENGINES

        if engine not in ENGINES:
            raise typer.BadParameter(f"choose {' or '.join(ENGINES)}", param_hint="--engine")
        raise typer.Exit(
            run_batch_cli(
                input_dir,
                out_dir,
                engine="spark" if engine == "spark" else "local",
                at=as_of,
                console=out,
            )
        )
    ctx = terminal.open_context(db)
    with terminal.errors():
        when = terminal.instant(ctx, as_of)
        print_rescore(rescore_ledger(ctx, when, out), out)
        # The nightly rescore also erases what expired (scores as of now do not change:
        # an expired record counts zero).
        print_sweep(sweep(ctx, when), out)


def run_batch_cli(
    input_dir: Path,
    out_dir: Path,
    *,
    engine: Engine,
    at: datetime | None,
    console: Console,
    rulebook: Rulebook | Edition | None = None,
) -> int:
    """Score every subject under ``input_dir`` into ``out_dir/scores/`` and print a
    summary; returns the exit code (0, 1 with a message for bad input, or 2 with the
    command that installs the engine where it is not installed).

    ``at`` defaults to the population's own instant (``population.json``) if it has
    one, else now; ``rulebook`` to the default rulebook.
    """
    from credence.clock import SystemClock, ensure_utc
    from credence.rulebook.loader import default_rulebook
    from credence.scoring.columnar import population_instant, score_parquet

    instant = ensure_utc(at) if at is not None else population_instant(input_dir)
    instant = instant or SystemClock().now()
    book = rulebook if rulebook is not None else default_rulebook()
    try:
        if engine == "spark":
            from rich.markup import escape

            from credence.scoring.engines import EngineNotInstalled, require_engine

            try:
                require_engine(engine)
            except EngineNotInstalled as exc:
                console.print(f"[red]error[/red]: {escape(exc.message)}")
                return 2
            from credence.scoring.spark import score_parquet_spark

            with console.status(f"scoring on Spark as of {instant.isoformat()}"):
                summary = score_parquet_spark(input_dir, out_dir, at=instant, rulebook=book)
        else:
            with terminal.progress(console) as bar:
                tick = terminal.ticker(bar, "scoring records")
                summary = score_parquet(
                    input_dir, out_dir, at=instant, rulebook=book, progress=tick
                )
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error[/red]: {exc}")
        return 1
    print_summary(summary, console)
    return 0


def print_summary(summary: ColumnarSummary, console: Console) -> None:
    """Tier distribution, counts and speed of a batch run."""
    title = f"Tiers as of {summary.as_of:%Y-%m-%d %H:%M} UTC, rulebook {summary.rulebook_version}"
    console.print(_tier_table(summary.tiers, summary.subjects, title))
    counted = f", {summary.counted:,} counting" if summary.counted >= 0 else ""
    console.print(
        f"{summary.engine}: scored {summary.subjects:,} subjects from {summary.records:,} "
        f"records{counted} in {summary.parts} parts, {summary.seconds:.2f} s "
        f"({summary.records_per_second:,.0f} records/s); scores in {summary.out_dir / 'scores'}"
    )
