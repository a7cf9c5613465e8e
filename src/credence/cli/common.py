"""What every ``credence`` command shares: its options, its context, its errors, its
progress bars and its output (a Rich table for people or ``--json`` for programs).

Command modules import only this, Typer, Rich and the standard library at module level
(plus :mod:`credence.errors` and :mod:`credence.access.policy`, which import nothing but
the standard library), and everything else inside the command function, so that
``credence --help`` loads no database driver, no numpy and no pyarrow.

Listings go through :func:`show`: ids are never cut short. An id column never wraps and
keeps its full width while the other columns fold; on a terminal too narrow for that,
each row prints as its ids on one line and its other fields on the next.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console, JustifyMethod
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from credence.errors import CredenceError

if TYPE_CHECKING:
    from credence.context import Context

# --- options -----------------------------------------------------------------------------

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL: sqlite:///file.db (default credence.db) or postgresql://…",
        envvar="CREDENCE_DB_URL",
        show_envvar=True,
    ),
]
AsOfOption = Annotated[
    datetime | None, typer.Option("--as-of", help="Instant (ISO 8601, UTC); default now.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (for programs) instead of a table.")
]

# --- context, instants, errors -------------------------------------------------------------


def open_context(db: str | None) -> Context:
    """The context of a command on database ``db`` (default: the settings' URL)."""
    from credence.context import open_context as _open

    return _open(db)


def instant(ctx: Context, as_of: datetime | None) -> datetime:
    """``--as-of`` as an aware UTC instant, or the context's now."""
    from credence.clock import ensure_utc

    return ensure_utc(as_of) if as_of is not None else ctx.clock.now()


@contextmanager
def errors() -> Iterator[None]:
    """Print a domain error as ``error (code): message`` on stderr and exit 1, instead of
    a traceback."""
    try:
        yield
    except CredenceError as exc:
        fail(exc)


def fail(exc: CredenceError) -> NoReturn:
    """Print ``exc`` (and its details, when a list) on stderr and exit 1."""
    err = console(stderr=True)
    err.print(Text.assemble(("error", "red"), f" ({exc.code}): {exc.message}"))
    if isinstance(exc.details, list):
        for line in exc.details:
            err.print(Text(f"  - {line}"))
    raise typer.Exit(1) from None


# --- consoles and progress -----------------------------------------------------------------


def console(*, stderr: bool = False) -> Console:
    """A console on the current stdout (or stderr), made per command so tests capture it.

    ``soft_wrap``: a line of text is never broken by Rich, so an id or a key in it stays
    whole. Output that goes to a pipe or a file, with no ``COLUMNS`` set, is laid out 160
    columns wide rather than 80.
    """
    out = Console(stderr=stderr, soft_wrap=True, highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = max(out.width, 160)
    return out


def progress(out: Console) -> Progress:
    """A progress bar: description, bar, done of total, percentage, elapsed time."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=out,
    )


def ticker(bar: Progress, description: str) -> Callable[[int, int], None]:
    """A new task on ``bar`` and the ``progress(done, total)`` callback that moves it."""
    task = bar.add_task(description, total=None)

    def tick(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return tick


# --- listings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One field of a listing: its key in ``--json``, its header in the table."""

    key: str
    header: str = ""
    #: An id: printed whole, on one line, always.
    is_id: bool = False
    justify: JustifyMethod = "left"
    #: False: in ``--json`` only.
    shown: bool = True

    @property
    def title(self) -> str:
        return self.header or self.key.replace("_", " ")


#: A folding column narrower than this makes the table hard to read: print cards instead.
READABLE = 10


def cell(value: Any) -> str:
    """How a value reads in a table: instants to the minute (UTC), lists joined."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as a JSON array: instants in ISO 8601, ids whole, keys as given."""
    return json.dumps([{k: _json_value(v) for k, v in row.items()} for row in rows], indent=2)


def show_object(value: Mapping[str, Any]) -> None:
    """Print one object as JSON (instants in ISO 8601)."""
    sys.stdout.write(json.dumps({k: _json_value(v) for k, v in value.items()}, indent=2) + "\n")


def fits(columns: Sequence[Column], rows: Sequence[Mapping[str, Any]], width: int) -> bool:
    """Whether a table of ``rows`` fits ``width`` with every id whole and every other
    column at least :data:`READABLE` wide (or as wide as it needs, if less)."""
    total = 1  # the left border
    for column in columns:
        widest = max([len(column.title), *(len(cell(row.get(column.key))) for row in rows)])
        total += 3 + (widest if column.is_id else min(widest, READABLE))
    return total <= width


def table(
    columns: Sequence[Column], rows: Sequence[Mapping[str, Any]], *, title: str | None = None
) -> Table:
    """A Rich table whose id columns never wrap nor shrink; the others fold first."""
    shown = [c for c in columns if c.shown]
    out = Table(title=title)
    for column in shown:
        if column.is_id:
            widest = max([len(column.title), *(len(cell(row.get(column.key))) for row in rows)])
            out.add_column(column.title, no_wrap=True, min_width=widest, justify=column.justify)
        else:
            out.add_column(column.title, overflow="fold", justify=column.justify)
    for row in rows:
        out.add_row(*(Text(cell(row.get(column.key))) for column in shown))
    return out


def cards(
    out: Console,
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str | None = None,
) -> None:
    """Each row as two lines: its ids, whole, then its other fields (``header value``)."""
    shown = [c for c in columns if c.shown]
    if title:
        out.print(Text(title, style="italic"))
    for row in rows:
        ids = [cell(row.get(c.key)) for c in shown if c.is_id]
        out.print(Text("  ".join(ids), style="bold"))
        rest = [
            f"{c.title} {cell(row.get(c.key))}"
            for c in shown
            if not c.is_id and row.get(c.key) not in (None, "")
        ]
        if rest:
            out.print(Text("  " + " · ".join(rest)), soft_wrap=False)


def show(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    as_json: bool = False,
    title: str | None = None,
    out: Console | None = None,
) -> None:
    """Print a listing: JSON (every field) with ``--json``, else a table that keeps ids
    whole, or cards when the terminal is too narrow for one."""
    if as_json:
        sys.stdout.write(to_json(rows) + "\n")
        return
    out = out or console()
    shown = [c for c in columns if c.shown]
    if fits(shown, rows, out.width):
        out.print(table(columns, rows, title=title))
    else:
        cards(out, columns, rows, title=title)
