"""``credence batch``: score a population from Parquet files, locally or on Spark.

The lead wires :func:`run_batch_cli` into the Typer app; it does the work and the
printing, and returns the process exit code.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from credence.clock import SystemClock, ensure_utc
from credence.rulebook.loader import default_rulebook
from credence.rulebook.model import Rulebook
from credence.rulebook.store import Edition
from credence.scoring.columnar import ColumnarSummary, score_parquet

Engine = Literal["local", "spark"]


def population_instant(input_dir: Path) -> datetime | None:
    """The instant a generated population describes (``population.json``), if any."""
    manifest = input_dir / "population.json"
    if not manifest.exists():
        return None
    now = json.loads(manifest.read_text(encoding="utf-8")).get("now")
    return ensure_utc(datetime.fromisoformat(now)) if isinstance(now, str) else None


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
    summary; returns the exit code (0, or 1 with a message for bad input).

    ``at`` defaults to the population's own instant (``population.json``) if it has
    one, else now; ``rulebook`` to the default rulebook.
    """
    instant = ensure_utc(at) if at is not None else population_instant(input_dir)
    instant = instant or SystemClock().now()
    book = rulebook if rulebook is not None else default_rulebook()
    try:
        if engine == "spark":
            from credence.scoring.spark import score_parquet_spark

            with console.status(f"scoring on Spark as of {instant.isoformat()}"):
                summary = score_parquet_spark(input_dir, out_dir, at=instant, rulebook=book)
        else:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bar:
                task = bar.add_task("scoring records", total=None)

                def tick(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

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
    table = Table("tier", "subjects", "share", title=title)
    for tier, n in summary.tiers.items():
        share = n / summary.subjects if summary.subjects else 0.0
        table.add_row(tier, f"{n:,}", f"{share:.1%}")
    console.print(table)
    counted = f", {summary.counted:,} counting" if summary.counted >= 0 else ""
    console.print(
        f"{summary.engine}: scored {summary.subjects:,} subjects from {summary.records:,} "
        f"records{counted} in {summary.parts} parts, {summary.seconds:.2f} s "
        f"({summary.records_per_second:,.0f} records/s); scores in {summary.out_dir / 'scores'}"
    )
