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
    from credence.scoring.columnar import ColumnarSummary
    from credence.scoring.layout import Applied
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
    rulebook: Annotated[
        str | None,
        typer.Option(
            "--rulebook",
            metavar="FILE|VERSION",
            help="For --input: a rulebook file, or a version the input carries. Default: "
            "the edition in force at the instant (an export's), else the built-in one.",
        ),
    ] = None,
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
                rulebook=rulebook,
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
    rulebook: str | None = None,
) -> int:
    """Score every subject under ``input_dir`` into ``out_dir/scores/``, write
    ``out_dir/run.json`` and print a summary; returns the exit code (0, 1 with a message
    for bad input, or 2 with the command that installs the engine where it is not
    installed).

    ``at`` defaults to the input's own instant (an export's or a generated population's)
    if it has one, else now; ``rulebook`` (a file, or a version the input carries) to the
    edition in force at ``at`` (:func:`credence.scoring.layout.applicable`).
    """
    from rich.markup import escape

    from credence.clock import SystemClock, ensure_utc
    from credence.errors import CredenceError
    from credence.scoring import layout
    from credence.scoring.columnar import score_parquet

    try:
        instant = ensure_utc(at) if at is not None else layout.instant_of(input_dir)
        instant = instant or SystemClock().now()
        applied = layout.applicable(input_dir, instant, rulebook)
        if engine == "spark":
            from credence.scoring.engines import EngineNotInstalled, require_engine

            try:
                require_engine(engine)
            except EngineNotInstalled as exc:
                console.print(f"[red]error[/red]: {escape(exc.message)}")
                return 2
            from credence.scoring.spark import score_parquet_spark

            with console.status(f"scoring on Spark as of {instant.isoformat()}"):
                summary = score_parquet_spark(
                    input_dir, out_dir, at=instant, rulebook=applied.rulebook
                )
        else:
            with terminal.progress(console) as bar:
                tick = terminal.ticker(bar, "scoring records")
                summary = score_parquet(
                    input_dir, out_dir, at=instant, rulebook=applied.rulebook, progress=tick
                )
    except CredenceError as exc:
        terminal.report(exc, console)
        return 1
    except (OSError, ValueError) as exc:
        console.print(f"[red]error[/red]: {escape(terminal.visible(str(exc)))}")
        return 1
    layout.write_run(out_dir, input_dir, applied, summary.as_json())
    print_summary(summary, applied, console)
    return 0


def print_summary(summary: ColumnarSummary, applied: Applied, console: Console) -> None:
    """Tier distribution, counts and speed of a batch run, the rulebook it applied, and
    the sources whose outage froze their records' age."""
    from credence.clock import from_micros

    title = f"Tiers as of {summary.as_of:%Y-%m-%d %H:%M} UTC, rulebook {summary.rulebook_version}"
    console.print(_tier_table(summary.tiers, summary.subjects, title))
    console.print(
        f"rulebook {terminal.visible(applied.version)} (sha256 {applied.content_hash}), "
        f"{terminal.visible(applied.chosen)}"
    )
    counted = f", {summary.counted:,} counting" if summary.counted >= 0 else ""
    console.print(
        f"{summary.engine}: scored {summary.subjects:,} subjects from {summary.records:,} "
        f"records{counted} in {summary.parts} parts, {summary.seconds:.2f} s "
        f"({summary.records_per_second:,.0f} records/s); scores in {summary.out_dir / 'scores'}"
    )
    for code, (start, end) in sorted(summary.frozen.items()):
        console.print(
            f"source {terminal.visible(code)} in outage since {from_micros(start):%Y-%m-%d}: "
            f"its records' age frozen to then (until {from_micros(end):%Y-%m-%d})"
        )
