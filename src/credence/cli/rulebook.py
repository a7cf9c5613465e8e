"""``credence rulebook``: check, show and compare rulebook files; publish one, list the
published editions.

``check``, ``show --file`` and ``diff`` work on files alone (no database, no network),
so a rulebook author can check a draft before an operator publishes it. Problems are
printed one per line as ``file:line path: message`` so editors can jump to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from credence.cli import terminal
from credence.cli.terminal import Column, DbOption, JsonOption

if TYPE_CHECKING:
    from credence.rulebook.model import Rulebook
    from credence.rulebook.problems import Problem
    from credence.rulebook.store import Edition

app = typer.Typer(
    help="Check, show, compare and publish rulebooks (the weights, tiers and services).",
    no_args_is_help=True,
)

RulebookFile = Annotated[
    Path,
    typer.Argument(exists=True, dir_okay=False, readable=True, help="A rulebook TOML file."),
]


def _print_problems(console: Console, problems: list[Problem]) -> None:
    for problem in problems:
        line = Text()
        line.append(problem.location, style="bold red")
        line.append(": " + problem.message)
        console.print(line)
    count = len(problems)
    console.print(Text(f"{count} problem{'' if count == 1 else 's'}", style="red"))


def _load_or_exit(console: Console, path: Path) -> tuple[Rulebook, str]:
    from credence.rulebook.loader import check_text, content_hash, load_text, read_text

    text = read_text(path)
    problems = check_text(text, origin=str(path))
    if problems:
        _print_problems(console, problems)
        raise typer.Exit(code=1)
    return load_text(text, origin=str(path)), content_hash(text)


@app.command()
def check(file: RulebookFile) -> None:
    """Check a rulebook file and print every problem; exit 1 if there is any."""
    console = terminal.console()
    book, digest = _load_or_exit(console, file)
    console.print(
        Text(
            f"OK: version {book.version}, hash {digest}, "
            f"{len(book.record_types)} record types, {len(book.services)} services",
            style="green",
        )
    )


def render(rulebook: Rulebook, digest: str, console: Console | None = None) -> None:
    """Print a rulebook as Rich tables: scale, tiers, record types and services."""
    out = console or terminal.console()
    out.print(
        Text(f"{rulebook.title} — version {rulebook.version} ({rulebook.region})", style="bold")
    )
    out.print(Text(f"content hash {digest}"))

    scale = Table(title="Scale")
    for column in ("base", "min", "max", "tier hysteresis"):
        scale.add_column(column, justify="right")
    scale.add_row(
        *(f"{v:g}" for v in (rulebook.scale.base, rulebook.scale.min, rulebook.scale.max)),
        f"{rulebook.tier_hysteresis:g}",
    )
    out.print(scale)

    tiers = Table(title="Tiers")
    tiers.add_column("tier")
    tiers.add_column("min score", justify="right")
    tiers.add_column("description (generated from threshold and conditions)")
    for tier in rulebook.tiers:
        tiers.add_row(tier.code, f"{tier.min_score:g}", rulebook.tier_description(tier.code))
    out.print(tiers)

    types = Table(title="Record types (days for half-life and retention)")
    types.add_column("code", no_wrap=True)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("category", "left"),
        ("points", "right"),
        ("per unit", "left"),
        ("at most", "right"),
        ("half-life", "right"),
        ("retention", "right"),
        ("evidence", "left"),
        ("severity", "left"),
    )
    for column, justify in columns:
        # fold rather than truncate: a narrow terminal must not hide a weight.
        types.add_column(column, justify=justify, overflow="fold")
    for rt in rulebook.record_types:
        unit = f"{rt.quantity.unit} (max {rt.quantity.max_units:g})" if rt.quantity else ""
        types.add_row(
            rt.code,
            rt.category.value,
            f"{rt.points:+g}",
            unit,
            "" if rt.max_points is None else f"{rt.max_points:g}",
            f"{rt.half_life_days:g}",
            f"{rt.retention_days:g}",
            rt.evidence.value,
            rt.severity.value,
        )
    out.print(types)
    if rulebook.positive_caps:
        caps = Table(title="Positive points per category, at most")
        caps.add_column("category")
        caps.add_column("at most", justify="right")
        for category, cap in rulebook.positive_caps.items():
            caps.add_row(category.value, f"{cap:g}")
        out.print(caps)

    services = Table(title="Services")
    services.add_column("code", no_wrap=True)
    for column in ("kind", "purpose", "categories"):
        services.add_column(column, overflow="fold")
    for service in rulebook.services:
        services.add_row(
            service.code,
            service.kind.value,
            service.purpose,
            ", ".join(c.value for c in service.categories),
        )
    out.print(services)


@app.command()
def show(
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            exists=True,
            dir_okay=False,
            readable=True,
            help="Show this rulebook file instead of a published edition.",
        ),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="A published edition (default: in force).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Show a rulebook: the edition in force (or --version), a file, or the default."""
    from credence.rulebook.loader import DEFAULT_PATH, content_hash, default_rulebook, default_text

    console = terminal.console()
    if file is not None:
        book, digest = _load_or_exit(console, file)
        render(book, digest, console)
        return
    edition = _published(db, version)
    if edition is None:
        book, digest = default_rulebook(), content_hash(default_text())
        console.print(Text(f"(nothing published yet; the default rulebook: {DEFAULT_PATH})"))
    else:
        book, digest = edition.rulebook, edition.content_hash
        console.print(Text(f"(published {edition.published_at:%Y-%m-%d %H:%M} UTC)"))
    render(book, digest, console)


def _published(db: str | None, version: str | None) -> Edition | None:
    """The edition asked for, or None when the database has no rulebook (or no schema)."""
    from sqlalchemy import inspect

    from credence.errors import CredenceError
    from credence.rulebook import store

    ctx = terminal.open_context(db)
    database = ctx.engine.url.database
    if ctx.engine.dialect.name == "sqlite" and database and not Path(database).exists():
        return None  # don't create an empty database file just to look into it
    if "rulebooks" not in inspect(ctx.engine).get_table_names():
        if version is not None:
            raise typer.BadParameter("the database has no published rulebooks", param_hint="--db")
        return None
    with ctx.sessions() as session:
        try:
            if version is not None:
                return store.by_version(session, version)
            return store.in_force(session, ctx.clock.now())
        except CredenceError as exc:
            if version is not None:
                raise typer.BadParameter(exc.message, param_hint="--version") from None
            return None


@app.command(name="diff")
def diff_command(old: RulebookFile, new: RulebookFile) -> None:
    """Print what changed from OLD to NEW: items added, removed and changed, field by field."""
    from credence.rulebook.diff import diff

    console = terminal.console()
    old_book, old_digest = _load_or_exit(console, old)
    new_book, new_digest = _load_or_exit(console, new)
    console.print(
        Text(
            f"{old} (version {old_book.version}, {old_digest[:12]}) -> "
            f"{new} (version {new_book.version}, {new_digest[:12]})",
            style="bold",
        )
    )
    changes = diff(old_book, new_book)
    if not changes:
        console.print("No changes.")
        return
    styles = {"added": "green", "removed": "red", "changed": "yellow"}
    for change in changes:
        console.print(Text(f"{change.kind} {change.what} {change.code}", style=styles[change.kind]))
        for field in change.fields:
            console.print(Text(f"    {field.field}: {field.old!r} -> {field.new!r}"))


@app.command("publish")
def publish(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)], db: DbOption = None
) -> None:
    """Publish a rulebook file: it comes into force now and stays readable forever."""
    from credence.audit.service import log_operator_action
    from credence.rulebook import store

    ctx = terminal.open_context(db)
    with terminal.errors(), ctx.sessions.begin() as session:
        edition = store.publish(
            session, text=file.read_text(encoding="utf-8"), at=ctx.clock.now(), origin=file.name
        )
        log_operator_action(
            session,
            action="rulebook_published",
            what=f"rulebook {edition.version}",
            at=ctx.clock.now(),
        )
    terminal.console().print(f"published rulebook {edition.version} ({edition.content_hash})")


HISTORY = (
    Column("version", is_id=True),
    Column("published_at", "published at (UTC)"),
    Column("content_hash", "content hash", is_id=True),
)


@app.command("history")
def history(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every published edition, oldest first."""
    from credence.rulebook import store

    ctx = terminal.open_context(db)
    with terminal.errors(), ctx.sessions() as session:
        rows = [
            {"version": version, "published_at": at, "content_hash": digest}
            for version, digest, at in store.history(session)
        ]
    terminal.show(rows, HISTORY, as_json=as_json, title="Published rulebooks")
