"""``credence export``: write the ledger as the batch layout that ``credence score
--input`` scores, tied to a signed checkpoint of the log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from credence.cli import terminal
from credence.cli.terminal import DbOption, JsonOption

if TYPE_CHECKING:
    from credence.export.service import ExportSummary


def export(
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Directory to write (re-running rewrites only changed parts).",
            file_okay=False,
        ),
    ],
    db: DbOption = None,
    part_subjects: Annotated[
        int, typer.Option("--part-subjects", min=1, help="Subjects per Parquet part.")
    ] = 1 << 16,
    as_json: JsonOption = False,
) -> None:
    """Export the ledger as Parquet for the batch engines (credence score --input).

    Subjects (an opaque id, kind and region; never an identifier or a name), records
    with what decides whether they count (source, type, instants, quantity, when and why
    their effect ends), the published rulebook editions, and a manifest naming the log
    state exported and a signed checkpoint that covers it. Erased content is never
    exported."""
    from credence.errors import InvalidInput
    from credence.export.service import export_ledger

    ctx = terminal.open_context(db)
    out = terminal.console()
    with terminal.errors():
        try:
            if as_json:
                summary = export_ledger(ctx, out_dir, part_subjects=part_subjects)
            else:
                with terminal.progress(out) as bar:
                    tick = terminal.ticker(bar, "exporting parts")
                    summary = export_ledger(
                        ctx, out_dir, part_subjects=part_subjects, progress=tick
                    )
        except OSError as exc:
            raise InvalidInput(
                f"cannot write --out: {exc.strerror or exc}", code="invalid_out"
            ) from None
    if as_json:
        out.print_json(json.dumps(_as_json(summary)))
        return
    log = summary.log
    out.print(
        f"exported {summary.subjects:,} subjects and {summary.records:,} records in "
        f"{summary.parts:,} parts ({len(summary.written):,} written, "
        f"{summary.parts - len(summary.written):,} unchanged) and "
        f"{summary.editions} rulebook edition(s) to {terminal.visible(str(summary.out_dir))} in "
        f"{summary.seconds:.2f} s"
    )
    out.print(
        f"as of {summary.as_of.isoformat()}: the ledger after the first {log.entries:,} "
        f"log entries (root {log.root.hex()}), a prefix of the checkpoint of tree size "
        f"{log.checkpoint.tree_size:,} signed by {terminal.visible(log.checkpoint.origin)}"
    )


def _as_json(summary: ExportSummary) -> dict[str, object]:
    return {
        "out": str(summary.out_dir),
        "as_of": summary.as_of.isoformat(),
        "subjects": summary.subjects,
        "records": summary.records,
        "parts": summary.parts,
        "written": list(summary.written),
        "editions": summary.editions,
        "seconds": summary.seconds,
        "log": summary.log.as_json(),
    }
