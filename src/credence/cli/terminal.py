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
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.cells import cell_len
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
    """The context of a command on database ``db`` (default: the settings' URL), with
    every feature's tables loaded (a row's foreign keys name tables of other features)
    and every feature's record endings reported to the ledger."""
    import credence.models  # noqa: F401 - the registry of every table
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
    report(exc, console(stderr=True))
    raise typer.Exit(1) from None


def report(exc: CredenceError, out: Console) -> None:
    """Print ``exc`` as ``error (code): message``, and its details, when a list (a
    rulebook's problems, say), a line each."""
    out.print(Text.assemble(("error", "red"), f" ({exc.code}): {visible(exc.message)}"))
    if isinstance(exc.details, list):
        for line in exc.details:
            out.print(Text(f"  - {visible(str(line))}"))


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
    #: How the table shows a row's field (default: :func:`cell` of ``row[key]``).
    render: Callable[[Mapping[str, Any]], str] | None = None

    @property
    def title(self) -> str:
        return self.header or self.key.replace("_", " ")

    def text(self, row: Mapping[str, Any]) -> str:
        """This column's cell of ``row``, as the table shows it."""
        return self.render(row) if self.render is not None else cell(row.get(self.key))


#: A word longer than this may be folded (cut across lines) rather than keep its column
#: wide; shorter words (codes, dates) wrap whole.
LONGEST_WORD = 24


def cell(value: Any) -> str:
    """How a value reads in a table: instants to the minute (UTC), lists joined, and
    what the terminal would act on shown, not obeyed (see :func:`visible`)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, list | tuple):
        return ", ".join(visible(str(v)) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return visible(str(value))


#: Characters a terminal acts on instead of showing: C0 and C1 controls (escape
#: sequences, bells, line breaks) and the bidirectional overrides that reorder a line.
_UNSHOWN = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with every character a terminal would act on written as its escape
    (``\\x1b``, ``\\u202e``): names and references come from whoever registered them,
    and must not recolour, rewrite or reorder an operator's screen."""
    return _UNSHOWN.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


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


def _natural(column: Column, texts: Sequence[str]) -> tuple[int, int]:
    """The width a column would like (its widest cell or header) and the least it
    needs: all of it for an id, else its longest word (up to :data:`LONGEST_WORD`)."""
    natural = max(cell_len(t) for t in (column.title, *texts))
    if column.is_id:
        return natural, natural
    words = [cell_len(w) for t in (column.title, *texts) for w in t.split()]
    return natural, min(max(words, default=1), LONGEST_WORD, natural)


def widths(
    columns: Sequence[Column], rows: Sequence[Mapping[str, Any]], width: int
) -> list[int] | None:
    """The content width of each column of a table ``width`` wide, or None if it cannot
    keep every id whole and every other column as wide as its longest word.

    Each column starts at the least it needs; what is left goes to the columns still
    short of their natural width, a character at a time to the narrowest of them.
    """
    measured = [_natural(c, [c.text(row) for row in rows]) for c in columns]
    # Borders (one more than the columns) and a space either side of every cell.
    room = width - (len(columns) + 1) - 2 * len(columns)
    sizes = [least for _, least in measured]
    if sum(sizes) > room:
        return None
    spare = room - sum(sizes)
    while spare > 0:
        short = [i for i, (natural, _) in enumerate(measured) if sizes[i] < natural]
        if not short:
            break
        narrowest = min(short, key=lambda i: sizes[i])
        sizes[narrowest] += 1
        spare -= 1
    return sizes


def table(
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str | None = None,
    width: int | None = None,
) -> Table | None:
    """A Rich table at most ``width`` wide whose ids are never cut (ids never wrap;
    other columns wrap at spaces, and fold only words longer than
    :data:`LONGEST_WORD`); None when ``width`` is too narrow for that."""
    shown = [c for c in columns if c.shown]
    sizes = widths(shown, rows, width if width is not None else 10**6)
    if sizes is None:
        return None
    out = Table(title=title)
    for column, size in zip(shown, sizes, strict=True):
        out.add_column(
            column.title,
            width=size,
            no_wrap=column.is_id,
            overflow="ignore" if column.is_id else "fold",
            justify=column.justify,
        )
    for row in rows:
        out.add_row(*(Text(column.text(row)) for column in shown))
    return out


def cards(
    out: Console,
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str | None = None,
) -> None:
    """Each row as its ids, whole, on one line, then its other fields (``header value``,
    wrapped and indented) below."""
    shown = [c for c in columns if c.shown]
    if title:
        out.print(Text(title, style="italic"))
    for row in rows:
        out.print(Text("  ".join(c.text(row) for c in shown if c.is_id), style="bold"))
        rest = [f"{c.title} {c.text(row)}" for c in shown if not c.is_id and c.text(row)]
        if rest:
            indented(out, Text(" · ".join(rest)))


def indented(out: Console, text: Text, indent: int = 2) -> None:
    """Print ``text`` wrapped to the console's width, every line indented."""
    grid = Table.grid()
    grid.add_column(width=indent)
    grid.add_column(overflow="fold")
    grid.add_row("", text)
    out.print(grid)


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
    laid_out = table(columns, rows, title=title, width=out.width)
    if laid_out is not None:
        out.print(laid_out)
    else:
        cards(out, columns, rows, title=title)
