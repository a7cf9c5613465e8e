"""``credence import FILE --source CODE [--backfill-run RUN]``: a bulk import with a
progress bar and a report.

:func:`run_import` does the work and the printing and returns the exit code: 0 when the
file was stored, 1 when it was not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from credence.cli import terminal
from credence.cli.terminal import DbOption
from credence.errors import CredenceError

if TYPE_CHECKING:
    from credence.context import Context
    from credence.ledger.importer import ImportReport

#: Line errors shown in the table; the rest are counted.
SHOWN_ERRORS = 50


class _RateColumn(ProgressColumn):
    """Records per second, averaged since the start (steadier than rich's recent rate)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        shown = f"{task.completed / elapsed:,.0f} records/s" if elapsed else "…"
        return Text(shown, style="progress.data.speed")


def run_import(
    ctx: Context,
    path: Path,
    source: str,
    *,
    console: Console | None = None,
    backfill_run: str | None = None,
) -> int:
    """Import ``path`` for the source ``source`` (under the approved backfill run
    ``backfill_run``, if given); print progress, a summary and the bad lines. Returns the
    exit code: 0 if the file was stored, 1 if not."""
    from credence.ledger.importer import detect_format, estimate_lines, import_file

    out = console or terminal.console()
    try:
        fmt = detect_format(path)
        total = estimate_lines(path, fmt) if path.is_file() else None
        with Progress(
            TextColumn("importing [bold]{task.description}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            console=out,
        ) as bar:
            task = bar.add_task(path.name, total=total)
            report = import_file(
                ctx.sessions,
                path,
                source_code=source,
                clock=ctx.clock,
                progress=lambda done: bar.update(task, completed=done),
                backfill_run=backfill_run,
            )
            bar.update(task, completed=report.lines, total=report.lines)
    except CredenceError as exc:
        out.print(Text.assemble(("error", "red"), f" ({exc.code}): {exc.message}"))
        return 1
    print_report(report, out)
    return 0 if report.stored else 1


def print_report(report: ImportReport, console: Console) -> None:
    """The summary of an import and, if any, a table of its first bad lines."""
    summary = (
        f"{report.path.name} ({report.format}): {report.lines:,} lines, "
        f"{report.created:,} {'new' if report.stored else 'good'}, "
        f"{report.duplicates:,} duplicates, "
        f"{len(report.errors):,} bad, in {report.seconds:.2f} s "
        f"({report.rate:,.0f} records/s)"
    )
    console.print(summary, markup=False, highlight=False)
    if report.stored:
        console.print(f"[green]stored[/green]: {report.created:,} new records.")
        if report.backfill_run is not None:
            console.print(
                f"backfill run {report.backfill_run}: {report.exempted:,} exempted from the "
                "intake's volume limits.",
                highlight=False,
            )
        if report.held:
            console.print(
                f"[yellow]{report.held:,} held[/yellow] for a reviewer by the intake's checks "
                "(stored, but counting for nothing until released: credence holds list). A "
                "source loading its history asks an operator for a backfill run.",
                highlight=False,
            )
        return
    console.print(
        f"[red]nothing stored[/red]: {len(report.errors):,} bad lines. Fix them and import "
        "the whole file again; lines that are already in the ledger come back as duplicates.",
        highlight=False,
    )
    table = Table(title="bad lines")
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("source_ref", no_wrap=True)
    table.add_column("code", overflow="fold")
    table.add_column("message", overflow="fold")
    for error in report.errors[:SHOWN_ERRORS]:
        table.add_row(
            str(error.line), Text(error.source_ref or ""), Text(error.code), Text(error.message)
        )
    console.print(table)
    hidden = len(report.errors) - SHOWN_ERRORS
    if hidden > 0:
        console.print(f"… and {hidden:,} more bad lines.")


def import_command(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV, JSONL or Parquet")
    ],
    source: Annotated[str, typer.Option("--source", help="Code of the submitting source.")],
    backfill_run: Annotated[
        str | None,
        typer.Option(
            "--backfill-run",
            help="The approved backfill run (bkf_…) the file is delivered under: its "
            "records within the run's scope are exempt from the intake's volume limits.",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Import records from a file: all of it, or (if any line is bad) none of it.

    The columns are those of a record (README: "The import file")."""
    with terminal.errors():
        code = run_import(terminal.open_context(db), file, source, backfill_run=backfill_run)
    raise typer.Exit(code)
