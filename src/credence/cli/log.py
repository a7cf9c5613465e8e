"""``credence log …``: sign checkpoints, verify the whole log, print proofs.

Mounted by :mod:`credence.cli` as ``app.add_typer(log_app, name="log")``. It takes its
own ``--db`` option (the main CLI imports this module, so it cannot import the main
CLI's option back).
"""

from __future__ import annotations

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

from credence.context import Context, open_context
from credence.errors import CredenceError
from credence.translog import service, verify
from credence.translog.keys import LogKey, LogSigner, load_signer, parse_verifier_key

# soft_wrap: a message naming an entry stays on one line (greppable, never split).
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

app = typer.Typer(
    help="The transparency log: checkpoints, verification and proofs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL: sqlite:///file.db (default credence.db) or postgresql://…",
        envvar="CREDENCE_DB_URL",
        show_envvar=True,
    ),
]


def _fail(exc: CredenceError) -> typer.Exit:
    err.print(f"[red]error[/red] ({exc.code}): {exc.message}")
    return typer.Exit(1)


def _signer(ctx: Context) -> LogSigner:
    settings = ctx.settings
    signer, created = load_signer(settings.log_key_path, name=settings.log_origin)
    if created:
        err.print(
            f"[yellow]generated a new log signing key[/yellow] at {settings.log_key_path} "
            f"(key id {signer.public.key_id.hex()}): back it up; verifiers need "
            f"{signer.public.verifier_key}"
        )
    return signer


@app.command("checkpoint")
def checkpoint_cmd(db: DbOption = None) -> None:
    """Sign a checkpoint of every entry now (or show the latest if nothing was added)."""
    ctx = open_context(db)
    try:
        signer = _signer(ctx)
        with ctx.sessions.begin() as session:
            cp = service.checkpoint(session, signer=signer, at=ctx.clock.now())
    except CredenceError as exc:
        raise _fail(exc) from None
    console.print(
        f"checkpoint {cp.id}: {cp.tree_size:,} entries, root {cp.root_hash.hex()} "
        f"(key id {cp.key_id})"
    )
    console.print(cp.signed_note, end="", markup=False, highlight=False)


def _verifier(ctx: Context, public_key: str | None) -> LogKey | None:
    if public_key is not None:
        return parse_verifier_key(public_key)
    try:
        # Never create a key here: a fresh key would fail every stored signature.
        signer, _ = load_signer(
            ctx.settings.log_key_path, name=ctx.settings.log_origin, create=False
        )
    except CredenceError:
        err.print(
            f"[yellow]no signing key at {ctx.settings.log_key_path}: signatures not "
            "checked[/yellow] (pass --public-key to check them)"
        )
        return None
    return signer.public


@app.command("verify")
def verify_cmd(
    db: DbOption = None,
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key",
            help="Verifier key (name+id+key, from GET /v1/log/public-key) to check "
            "signatures with; default the configured signing key's.",
        ),
    ] = None,
) -> None:
    """Recompute the whole log from the database, entries after the last checkpoint
    included, check every covered row against the entry that wrote it and every
    rulebook edition's text against its hash; exit 1 naming each table, row and entry
    at fault (entries not yet signed alone do not fail it)."""
    ctx = open_context(db)
    try:
        key = _verifier(ctx, public_key)
        with (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bar,
            ctx.sessions() as session,
        ):
            task = bar.add_task("verifying", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = verify.verify_log(session, key=key, progress=tick)
    except CredenceError as exc:
        raise _fail(exc) from None
    if report.ok:
        signed = "signatures checked" if report.signatures_checked else "signatures NOT checked"
        console.print(
            f"[green]log verified[/green]: {report.entries:,} entries, {report.committed:,} "
            f"committed in {report.checkpoints} checkpoints ({signed}); {report.rows:,} rows "
            f"match the entries that wrote them ({report.erased:,} erased)"
        )
        if report.legacy_entries is not None:
            console.print(
                f"continues an earlier log of {report.legacy_entries:,} entries, whose "
                "checkpoints its leaf hashes still give"
            )
        if report.pending:
            console.print(_unsigned(report))
        return
    if report.pending:
        err.print(_unsigned(report))
    first = report.first_bad_seq
    where = f"first bad entry: {first}" if first is not None else "see below"
    err.print(f"[red]log verification FAILED[/red] ({where}); {len(report.problems)} problems:")
    for problem in report.problems[:20]:
        err.print(f"  - {problem.kind}: {problem.message}", markup=False, highlight=False)
    if len(report.problems) > 20:
        err.print(f"  … and {len(report.problems) - 20} more")
    raise typer.Exit(1)


def _unsigned(report: verify.VerifyReport) -> str:
    """The entries no checkpoint signs yet: checked against the rows they wrote, but
    not yet provable to anyone holding a checkpoint."""
    if report.latest_checkpoint is None:
        return f"{report.pending:,} entries are not yet signed (no checkpoint yet)"
    return (
        f"{report.pending:,} entries after checkpoint {report.latest_checkpoint} are not yet signed"
    )


@app.command("prove")
def prove_cmd(
    db: DbOption = None,
    seq: Annotated[int | None, typer.Option("--seq", help="Entry to prove included.")] = None,
    size: Annotated[
        int | None, typer.Option("--size", help="Tree size (default: the latest checkpoint's).")
    ] = None,
    first: Annotated[int | None, typer.Option("--first", help="Earlier tree size.")] = None,
    second: Annotated[int | None, typer.Option("--second", help="Later tree size.")] = None,
) -> None:
    """Print an inclusion proof (--seq N [--size M]) or a consistency proof
    (--first M --second N), in hex, checked before it is printed."""
    if seq is not None and first is None and second is None:
        wanted = "inclusion"
    elif seq is None and size is None and first is not None and second is not None:
        wanted = "consistency"
    else:
        err.print("give either --seq N [--size M] or --first M --second N")
        raise typer.Exit(2)
    ctx = open_context(db)
    try:
        with ctx.sessions() as session:
            if wanted == "inclusion":
                proof = service.prove_inclusion(session, seq or 0, size)
                ok = proof.verify()
                console.print(f"entry {proof.seq}: leaf {proof.leaf_index} of {proof.tree_size}")
                console.print(f"leaf hash {proof.leaf_hash.hex()}")
                console.print(f"root      {proof.root_hash.hex()}")
                path = proof.path
            else:
                cons = service.prove_consistency(session, first or 0, second or 0)
                ok = cons.verify()
                console.print(f"tree {cons.first} → tree {cons.second}")
                console.print(f"root {cons.first:>6} {cons.first_root.hex()}")
                console.print(f"root {cons.second:>6} {cons.second_root.hex()}")
                path = cons.path
    except CredenceError as exc:
        raise _fail(exc) from None
    for h in path:
        console.print(f"  {h.hex()}")
    if not ok:  # pragma: no cover - a proof the log made fails its own check: a bug
        err.print("[red]the proof does not verify[/red]")
        raise typer.Exit(1)
    console.print("proof verifies against the root above")


__all__ = ["app"]
