"""The ``credence`` command line (Typer + Rich)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
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
from sqlalchemy import select

from credence.access.keys import (
    create_principal,
    create_relying_party,
    issue_key,
    revoke_key,
    rotate_key,
)
from credence.access.policy import Role
from credence.access.tables import RelyingParty
from credence.audit.service import log_operator_action
from credence.clock import ensure_utc
from credence.context import Context, open_context
from credence.disputes.cli import app as disputes_app
from credence.errors import CredenceError
from credence.ledger import service as ledger
from credence.ledger.erasure import SweepReport, sweep_retention
from credence.rulebook import store
from credence.rulebook.cli import app as rulebook_app
from credence.scoring.batch import BatchSummary
from credence.scoring.online import score_subject
from credence.tiers.rescore import rescore
from credence.translog.cli import app as log_app

console = Console()
err = Console(stderr=True)

app = typer.Typer(
    name="credence",
    help="Credence: an open, accountable social-credit engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(rulebook_app, name="rulebook", help="Check, show, diff and publish rulebooks.")
keys_app = typer.Typer(help="Issue and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
sources_app = typer.Typer(help="Register sources.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
parties_app = typer.Typer(help="Register relying parties.", no_args_is_help=True)
app.add_typer(parties_app, name="parties")
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
lab_app = typer.Typer(help="Synthetic populations at scale.", no_args_is_help=True)
app.add_typer(lab_app, name="lab")
app.add_typer(log_app, name="log", help="The transparency log: checkpoints, proofs, verify.")
app.add_typer(disputes_app, name="disputes", help="Disputes: sweep lapsed ones, list, answer.")
retention_app = typer.Typer(
    help="Erase what the law says must go: records whose retention ended.",
    no_args_is_help=True,
)
app.add_typer(retention_app, name="retention")

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


def _context(db: str | None) -> Context:
    return open_context(db)


@contextmanager
def _errors() -> Iterator[None]:
    """Print a domain error as a message and exit 1, instead of a traceback."""
    try:
        yield
    except CredenceError as exc:
        err.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        if isinstance(exc.details, list):
            for line in exc.details:
                err.print(f"  - {line}")
        raise typer.Exit(1) from None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    )


# --- database ------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create or migrate the schema to the latest version."""
    from credence.migrate import upgrade

    ctx = _context(db)
    upgrade(ctx.engine)
    console.print(f"schema up to date on {ctx.engine.url.render_as_string(hide_password=True)}")


# --- rulebook publication (the check/show/diff commands live in rulebook.cli) ---------


@rulebook_app.command("publish")
def rulebook_publish(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)], db: DbOption = None
) -> None:
    """Publish a rulebook file: it comes into force now and stays readable forever."""
    ctx = _context(db)
    with _errors(), ctx.sessions.begin() as session:
        edition = store.publish(
            session, text=file.read_text(encoding="utf-8"), at=ctx.clock.now(), origin=file.name
        )
        log_operator_action(
            session,
            action="rulebook_published",
            what=f"rulebook {edition.version}",
            at=ctx.clock.now(),
        )
    console.print(f"published rulebook {edition.version} ({edition.content_hash})")


@rulebook_app.command("history")
def rulebook_history(db: DbOption = None) -> None:
    """Every published edition, oldest first."""
    ctx = _context(db)
    table = Table("version", "published at", "content hash")
    with ctx.sessions() as session:
        for version, digest, at in store.history(session):
            table.add_row(version, at.isoformat(), digest)
    console.print(table)


# --- sources, parties, keys ---------------------------------------------------------


@sources_app.command("add")
def sources_add(
    code: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    kind: Annotated[str, typer.Option(help="bank, court, tax_office, registry, …")],
    types: Annotated[str, typer.Option(help="Comma-separated record types it may submit.")] = "",
    identity_authority: Annotated[
        str | None, typer.Option(help="'person' (civil registry) or 'organisation'.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Register a source and the record types it may submit."""
    ctx = _context(db)
    now = ctx.clock.now()
    with _errors(), ctx.sessions.begin() as session:
        ledger.register_source(
            session,
            code=code,
            name=name,
            kind=kind,
            record_types=[t.strip() for t in types.split(",") if t.strip()],
            rulebook=store.in_force(session, now).rulebook,
            at=now,
            identity_authority_for=identity_authority,
        )
        log_operator_action(session, action="source_registered", what=f"source {code}", at=now)
    console.print(f"source {code} registered")


@parties_app.command("add")
def parties_add(
    code: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    services: Annotated[str, typer.Option(help="Comma-separated services it may ask about.")],
    db: DbOption = None,
) -> None:
    """Register a relying party and the services it may ask decisions for."""
    ctx = _context(db)
    now = ctx.clock.now()
    wanted = [s.strip() for s in services.split(",") if s.strip()]
    with _errors(), ctx.sessions.begin() as session:
        book = store.in_force(session, now).rulebook
        unknown = [s for s in wanted if book.service(s) is None]
        if unknown:
            raise CredenceError(f"unknown services: {', '.join(unknown)}", code="unknown_service")
        create_relying_party(session, code=code, name=name, services=wanted, clock=ctx.clock)
        log_operator_action(session, action="party_registered", what=f"party {code}", at=now)
    console.print(f"relying party {code} registered for {', '.join(wanted)}")


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="Role of the principal the key is for.")],
    name: Annotated[str, typer.Option(help="Who holds the key.")],
    source: Annotated[str | None, typer.Option(help="Source code (role source).")] = None,
    party: Annotated[str | None, typer.Option(help="Relying party code.")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject id sub_… (role subject).")] = None,
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="Expire after N days (at least 1).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Issue an API key; it is shown once and stored only as a hash."""
    ctx = _context(db)
    now = ctx.clock.now()
    with _errors(), ctx.sessions.begin() as session:
        source_id = ledger.source_by_code(session, source).id if source else None
        party_id = None
        if party:
            party_id = session.scalar(select(RelyingParty.id).where(RelyingParty.code == party))
            if party_id is None:
                raise CredenceError(f"no relying party {party!r}", code="unknown_party")
        subject_id = ledger.get_subject(session, subject).id if subject else None
        principal = create_principal(
            session,
            role=role,
            name=name,
            source_id=source_id,
            party_id=party_id,
            subject_id=subject_id,
            clock=ctx.clock,
        )
        expires = None if expires_days is None else now + timedelta(days=expires_days)
        key = issue_key(session, principal=principal, clock=ctx.clock, expires_at=expires)
        log_operator_action(
            session, action="key_issued", what=f"{role.value} key {key[:12]}", at=now
        )
    console.print(key)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (its first 12 characters).")],
    db: DbOption = None,
) -> None:
    """Revoke a key now: it is refused with 401 from then on."""
    ctx = _context(db)
    with _errors(), ctx.sessions.begin() as session:
        revoke_key(session, prefix=prefix, clock=ctx.clock)
        log_operator_action(session, action="key_revoked", what=f"key {prefix}", at=ctx.clock.now())
    console.print(f"key {prefix} revoked")


@keys_app.command("rotate")
def keys_rotate(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (its first 12 characters).")],
    overlap_hours: Annotated[
        float, typer.Option(min=0, max=24 * 30, help="Keep the old key working this long.")
    ] = 0,
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="New key expires after N days (at least 1).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Issue a new key to the same holder and revoke the old one (after an overlap)."""
    ctx = _context(db)
    now = ctx.clock.now()
    with _errors(), ctx.sessions.begin() as session:
        key = rotate_key(
            session,
            prefix=prefix,
            clock=ctx.clock,
            expires_at=None if expires_days is None else now + timedelta(days=expires_days),
            overlap=timedelta(hours=overlap_hours),
        )
        log_operator_action(
            session, action="key_rotated", what=f"key {prefix} -> {key[:12]}", at=now
        )
    console.print(key)


# --- import, score, explain ----------------------------------------------------------


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV, JSONL or Parquet")
    ],
    source: Annotated[str, typer.Option("--source", help="Code of the submitting source.")],
    db: DbOption = None,
) -> None:
    """Import records from a file: all of it, or (if any line is bad) none of it."""
    from credence.ledger.import_cli import run_import

    with _errors():
        code = run_import(_context(db), file, source)
    raise typer.Exit(code)


def _print_summary(summary: BatchSummary) -> None:
    table = Table("tier", "subjects", "share", title=f"Tiers (rulebook {summary.rulebook_version})")
    for tier, n in summary.tiers.items():
        share = n / summary.subjects if summary.subjects else 0.0
        table.add_row(tier, f"{n:,}", f"{share:.1%}")
    console.print(table)
    rate = summary.records / summary.seconds if summary.seconds else 0.0
    console.print(
        f"scored {summary.subjects:,} subjects from {summary.records:,} records "
        f"in {summary.seconds:.2f} s ({rate:,.0f} records/s)"
    )


def _rescore(ctx: Context, at: datetime) -> BatchSummary:
    with _progress() as bar, ctx.sessions.begin() as session:
        task = bar.add_task("scoring", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return rescore(session, store.in_force(session, at), at, progress=tick).summary


@app.command("score")
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
    """Rescore everyone: from the ledger (default), or a Parquet population (--input)."""
    at = ensure_utc(as_of) if as_of else None
    if input_dir is not None:
        from credence.scoring.columnar_cli import run_batch_cli

        if out_dir is None:
            raise typer.BadParameter("--out is required with --input", param_hint="--out")
        if engine not in ("local", "spark"):
            raise typer.BadParameter("choose local or spark", param_hint="--engine")
        raise typer.Exit(
            run_batch_cli(
                input_dir,
                out_dir,
                engine="spark" if engine == "spark" else "local",
                at=at,
                console=console,
            )
        )
    ctx = _context(db)
    with _errors():
        when = at or ctx.clock.now()
        _print_summary(_rescore(ctx, when))
        # The nightly rescore also erases what expired (scores as of now do not change:
        # an expired record counts zero).
        _print_sweep(_sweep(ctx, when))


def _sweep(ctx: Context, at: datetime) -> SweepReport:
    with ctx.sessions() as session:
        rulebook = store.in_force(session, at).rulebook
    return sweep_retention(ctx.engine, ctx.sessions, rulebook, at)


def _print_sweep(report: SweepReport) -> None:
    why = ", ".join(f"{reason.replace('_', ' ')}: {n:,}" for reason, n in report.erased.items())
    console.print(
        f"{report.total:,} records erased ({why or 'none due'}); {report.finished:,} kept "
        f"minimums erased (reinsertion window closed); {report.batches} batches"
    )


@retention_app.command("sweep")
def retention_sweep(db: DbOption = None, as_of: AsOfOption = None) -> None:
    """Erase the content of every record whose retention period ended, or whose effect a
    dispute or an approved repair ended (in batches, a log entry per record); the
    subject's file shows each erasure and its date."""
    ctx = _context(db)
    with _errors():
        _print_sweep(_sweep(ctx, ensure_utc(as_of) if as_of else ctx.clock.now()))


@lab_app.command("generate")
def lab_generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for subjects/ and records/.")],
    subjects: Annotated[int, typer.Option(help="Subjects in the population.")] = 100_000,
    records: Annotated[int, typer.Option(help="Records in the population.")] = 2_000_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 7,
) -> None:
    """Write a synthetic population as Parquet, partitioned by subject."""
    from credence.lab.population_cli import run_generate_cli

    raise typer.Exit(run_generate_cli(out, subjects, records, seed, console))


@app.command("explain")
def explain(
    subject: Annotated[str, typer.Argument(help="Subject id (sub_…).")],
    db: DbOption = None,
    as_of: AsOfOption = None,
    limit: Annotated[int, typer.Option(help="Records to list.")] = 20,
) -> None:
    """Explain one subject's score: sub-scores, reasons and every contributing record."""
    ctx = _context(db)
    at = ensure_utc(as_of) if as_of else ctx.clock.now()
    with _errors(), ctx.sessions() as session:
        subj = ledger.get_subject(session, subject)
        edition = store.in_force(session, at)
        result = score_subject(session, subj, edition, at)
    console.print(
        f"[bold]{subj.public_id}[/bold] ({subj.kind}) score [bold]{result.total:.1f}[/bold] "
        f"tier [bold]{result.tier}[/bold] as of {at:%Y-%m-%d %H:%M} UTC, rulebook "
        f"{result.rulebook_version} ({result.rulebook_hash[:12]}…), range "
        f"{result.minimum:.0f}–{result.maximum:.0f}, base {result.base:.0f}"
    )
    for cat, value in result.sub_scores.items():
        console.print(f"  {cat.value:<20} {value:+9.2f}")
    if result.reasons:
        console.print("[bold]Main factors[/bold]")
        for reason in result.reasons:
            console.print(f"  {reason.code}: {reason.text}")
    table = Table("record", "type", "source", "occurred", "weight", "points now", "status")
    for c in result.contributions[:limit]:
        table.add_row(
            c.record.record_id,
            c.record.record_type,
            c.record.source_code,
            f"{c.record.occurred_at:%Y-%m-%d}",
            f"{c.weight:+.1f}",
            f"{c.points:+.2f}",
            c.status,
        )
    console.print(table)
    if len(result.contributions) > limit:
        console.print(f"… and {len(result.contributions) - limit} more records")


# --- serve and demo ------------------------------------------------------------------


def _serve(ctx: Context, host: str, port: int) -> None:
    import uvicorn

    from credence.api.app import create_app
    from credence.db import checkpoint_in_background

    checkpoint_in_background(ctx.engine)
    api = create_app(ctx)
    _settle_the_heap()
    console.print(f"Credence API on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    # X-Forwarded-For is trusted only through CREDENCE_TRUSTED_PROXIES (credence.api.ratelimit),
    # never by uvicorn on its own (by default it believes any client on the loopback).
    uvicorn.run(api, host=host, port=port, log_level=ctx.settings.log_level, proxy_headers=False)


def _settle_the_heap() -> None:
    """Before serving: what the process holds by now (modules, the app, schemas, the
    rulebook) is kept out of the cycle collector's passes, and the youngest generation
    is collected every 20,000 allocations instead of 700.

    Measured under batch ingestion, the collector took ~9 % of the server's time, most
    of it re-walking those long-lived objects; requests allocate many short-lived ones
    (a batch of records, a decision's rows) that die by reference counting anyway.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


@app.command("serve")
def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve the HTTP API."""
    _serve(_context(db), host, port)


@app.command("demo")
def demo(
    db: DbOption = None,
    subjects: Annotated[int, typer.Option(help="Persons in the synthetic city.")] = 10_000,
    organisations: Annotated[int | None, typer.Option(help="Default: subjects / 20.")] = None,
    records: Annotated[int | None, typer.Option(help="Default: 20 per person.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the city.")] = 7,
    reset: Annotated[bool, typer.Option(help="Wipe a database that already has data.")] = False,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API after.")
    ] = True,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    env_file: Annotated[Path, typer.Option(help="Where to write the demo keys.")] = Path(
        "demo.env"
    ),
) -> None:
    """Build a synthetic city, score everyone, print keys to try, and serve the API."""
    from credence.lab.demo import build_demo

    ctx = _context(db)
    with _errors():
        build_demo(
            ctx,
            console=console,
            persons=subjects,
            organisations=organisations if organisations is not None else max(subjects // 20, 10),
            records=records if records is not None else subjects * 20,
            seed=seed,
            reset=reset,
            env_file=env_file,
            base_url=f"http://{host}:{port}",
        )
    if serve_api:
        _serve(ctx, host, port)


def main() -> None:  # pragma: no cover - console script entry
    app()


__all__ = ["app", "main"]
