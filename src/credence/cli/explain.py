"""``credence explain SUBJECT``: one subject's score, its reasons and every record in it.

Record ids print whole (they are what ``disputes`` and the API take), on one line, at
any terminal width.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from credence.cli import terminal
from credence.cli.terminal import AsOfOption, Column, DbOption, JsonOption

if TYPE_CHECKING:
    from credence.scoring.online import Score

COLUMNS = (
    Column("record_id", "record", is_id=True),
    Column("record_type", "type"),
    Column("source"),
    Column("occurred_at", "occurred"),
    Column("weight", justify="right"),
    Column("points", "points now", justify="right"),
    Column("status"),
)


def _rows(result: Score, limit: int) -> list[dict[str, Any]]:
    return [
        {
            "record_id": c.record.record_id,
            "record_type": c.record.record_type,
            "source": c.record.source_code,
            "occurred_at": f"{c.record.occurred_at:%Y-%m-%d}",
            "weight": f"{c.weight:+.1f}",
            "points": f"{c.points:+.2f}",
            "status": c.status,
        }
        for c in result.contributions[:limit]
    ]


def _frozen(result: Score) -> dict[str, int]:
    """Why records' age stopped (an outage of their source), each reason once, with how
    many records it holds for."""
    texts = [c.frozen.text for c in result.contributions if c.frozen is not None]
    return {text: texts.count(text) for text in dict.fromkeys(texts)}


def _as_json(public_id: str, kind: str, at: datetime, result: Score, limit: int) -> dict[str, Any]:
    return {
        "subject_id": public_id,
        "kind": kind,
        "as_of": at,
        "total": result.total,
        "tier": result.tier,
        "minimum": result.minimum,
        "maximum": result.maximum,
        "base": result.base,
        "rulebook_version": result.rulebook_version,
        "rulebook_hash": result.rulebook_hash,
        "sub_scores": {cat.value: value for cat, value in result.sub_scores.items()},
        "reasons": [{"code": r.code, "text": r.text} for r in result.reasons],
        "bounds": [{"code": b.code, "scope": b.scope, "text": b.text} for b in result.bounds],
        "records": [
            {
                "record_id": c.record.record_id,
                "record_type": c.record.record_type,
                "source": c.record.source_code,
                "occurred_at": c.record.occurred_at.isoformat(),
                "weight": c.weight,
                "points": c.points,
                "status": c.status,
                "frozen": None if c.frozen is None else c.frozen.text,
            }
            for c in result.contributions[:limit]
        ],
        "more_records": max(len(result.contributions) - limit, 0),
    }


def explain(
    subject: Annotated[str, typer.Argument(help="Subject id (sub_…).")],
    db: DbOption = None,
    as_of: AsOfOption = None,
    limit: Annotated[int, typer.Option(help="Records to list.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Explain one subject's score: sub-scores, reasons and every contributing record."""
    from credence.ledger import registry
    from credence.rulebook import store
    from credence.scoring.online import score_subject

    ctx = terminal.open_context(db)
    at = terminal.instant(ctx, as_of)
    with terminal.errors(), ctx.sessions() as session:
        subj = registry.get_subject(session, public_id=subject)
        result = score_subject(session, subj, store.in_force(session, at), at)
    if as_json:
        terminal.show_object(_as_json(subj.public_id, subj.kind, at, result, limit))
        return
    out = terminal.console()
    out.print(
        Text.assemble(
            (subj.public_id, "bold"),
            f" ({subj.kind}) score ",
            (f"{result.total:.1f}", "bold"),
            " tier ",
            (result.tier, "bold"),
            f" as of {at:%Y-%m-%d %H:%M} UTC",
        )
    )
    out.print(
        f"rulebook {result.rulebook_version}, range {result.minimum:.0f}–{result.maximum:.0f}, "
        f"base {result.base:.0f}"
    )
    out.print(f"rulebook hash {result.rulebook_hash}")
    for cat, value in result.sub_scores.items():
        out.print(f"  {cat.value:<20} {value:+9.2f}")
    if result.reasons:
        out.print(Text("Main factors", style="bold"))
        for reason in result.reasons:
            terminal.indented(out, Text(f"{reason.code}: {reason.text}"))
    if result.bounds:
        out.print(Text("Bounded returns (repetition past a bound adds nothing)", style="bold"))
        for bound in result.bounds:
            terminal.indented(out, Text(bound.text))
    terminal.show(_rows(result, limit), COLUMNS, title="Records", out=out)
    if len(result.contributions) > limit:
        out.print(f"… and {len(result.contributions) - limit} more records")
    frozen = _frozen(result)
    if frozen:
        out.print(Text("Sources in outage (their records' age stopped)", style="bold"))
        for text, records in frozen.items():
            many = "record" if records == 1 else "records"
            terminal.indented(out, Text(f"{records} {many}: {text}"))
