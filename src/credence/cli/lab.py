"""``credence lab generate``: a synthetic population as Parquet files.

:func:`run_generate_cli` does the work and the printing and returns the exit code.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from credence.cli import terminal

if TYPE_CHECKING:
    from credence.rulebook.model import Rulebook

app = typer.Typer(help="Synthetic populations at scale.", no_args_is_help=True)


@app.command("generate")
def lab_generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for subjects/ and records/.")],
    subjects: Annotated[int, typer.Option(help="Subjects in the population.")] = 100_000,
    records: Annotated[int, typer.Option(help="Records in the population.")] = 2_000_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 7,
) -> None:
    """Write a synthetic population as Parquet, partitioned by subject."""
    raise typer.Exit(run_generate_cli(out, subjects, records, seed, terminal.console()))


def run_generate_cli(
    out: Path,
    subjects: int,
    records: int,
    seed: int,
    console: Console,
    *,
    now: datetime | None = None,
    rulebook: Rulebook | None = None,
) -> int:
    """Generate a population under ``out`` and print what was written; returns the exit
    code (0, or 1 with a message for bad arguments).

    ``now`` defaults to today at midnight UTC, so the same command on the same day
    writes the same bytes; ``rulebook`` to the default rulebook.
    """
    from credence.clock import ensure_utc
    from credence.lab.population import generate
    from credence.rulebook.loader import default_rulebook

    instant = ensure_utc(now) if now is not None else _today()
    book = rulebook if rulebook is not None else default_rulebook()
    if subjects < 1 or records < 0:
        console.print("[red]error[/red]: --subjects must be at least 1 and --records at least 0")
        return 1
    with terminal.progress(console) as bar:
        task = bar.add_task("writing records", total=records)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = generate(
            out,
            subjects=subjects,
            records=records,
            seed=seed,
            now=instant,
            rulebook=book,
            progress=tick,
        )
    table = Table("kind", "subjects", title=f"Population as of {instant:%Y-%m-%d} (seed {seed})")
    for kind, n in summary.subjects_by_kind.items():
        table.add_row(kind, f"{n:,}")
    console.print(table)
    console.print(
        f"wrote {summary.subjects:,} subjects and {summary.records:,} records in "
        f"{len(summary.parts)} parts to {out} ({summary.bytes_on_disk / 2**20:,.1f} MiB) "
        f"in {summary.seconds:.1f} s"
    )
    return 0


def _today() -> datetime:
    from credence.clock import SystemClock

    return SystemClock().now().replace(hour=0, minute=0, second=0, microsecond=0)
