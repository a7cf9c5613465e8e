"""``credence log …``: sign checkpoints, verify the whole log, print proofs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from credence.cli import terminal
from credence.cli.terminal import DbOption
from credence.errors import CredenceError

if TYPE_CHECKING:
    from credence.context import Context
    from credence.translog.keys import LogKey, LogSigner
    from credence.translog.verify import VerifyReport

app = typer.Typer(
    help="The transparency log: checkpoints, verification and proofs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _signer(ctx: Context) -> LogSigner:
    from credence.translog.keys import load_signer

    settings = ctx.settings
    signer, created = load_signer(settings.log_key_path, name=settings.log_origin)
    if created:
        terminal.console(stderr=True).print(
            f"[yellow]generated a new log signing key[/yellow] at {settings.log_key_path} "
            f"(key id {signer.public.key_id.hex()}): back it up; verifiers need "
            f"{signer.public.verifier_key}"
        )
    return signer


@app.command("checkpoint")
def checkpoint_cmd(db: DbOption = None) -> None:
    """Sign a checkpoint of every entry now (or show the latest if nothing was added)."""
    from credence.translog.checkpoints import checkpoint

    ctx = terminal.open_context(db)
    with terminal.errors():
        signer = _signer(ctx)
        with ctx.sessions.begin() as session:
            cp = checkpoint(session, signer=signer, at=ctx.clock.now())
    out = terminal.console()
    out.print(
        f"checkpoint {cp.id}: {cp.tree_size:,} entries, root {cp.root_hash.hex()} "
        f"(key id {cp.key_id})"
    )
    out.print(cp.signed_note, end="", markup=False)


def _verifier(ctx: Context, public_key: str | None) -> LogKey | None:
    from credence.translog.keys import load_signer, parse_verifier_key

    if public_key is not None:
        return parse_verifier_key(public_key)
    try:
        # Never create a key here: a fresh key would fail every stored signature.
        signer, _ = load_signer(
            ctx.settings.log_key_path, name=ctx.settings.log_origin, create=False
        )
    except CredenceError:
        terminal.console(stderr=True).print(
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
    """Verify the whole log against the database; exit 1 naming what is at fault.

    Recomputes the log, entries after the last checkpoint included, checks every
    covered row against the entry that wrote it and every rulebook edition's text
    against its hash, and names each table, row and entry at fault (entries not yet
    signed alone do not fail it)."""
    from credence.translog import verify

    ctx = terminal.open_context(db)
    out, err = terminal.console(), terminal.console(stderr=True)
    with terminal.errors():
        key = _verifier(ctx, public_key)
        with terminal.progress(out) as bar, ctx.sessions() as session:
            report = verify.verify_log(session, key=key, progress=terminal.ticker(bar, "verifying"))
    if report.ok:
        signed = "signatures checked" if report.signatures_checked else "signatures NOT checked"
        out.print(
            f"[green]log verified[/green]: {report.entries:,} entries, {report.committed:,} "
            f"committed in {report.checkpoints} checkpoints ({signed}); {report.rows:,} rows "
            f"match the entries that wrote them ({report.erased:,} erased)"
        )
        if report.legacy_entries is not None:
            out.print(
                f"continues an earlier log of {report.legacy_entries:,} entries, whose "
                "checkpoints its leaf hashes still give"
            )
        if report.pending:
            out.print(_unsigned(report))
        return
    if report.pending:
        err.print(_unsigned(report))
    first = report.first_bad_seq
    where = f"first bad entry: {first}" if first is not None else "see below"
    err.print(f"[red]log verification FAILED[/red] ({where}); {len(report.problems)} problems:")
    for problem in report.problems[:20]:
        err.print(f"  - {problem.kind}: {problem.message}", markup=False)
    if len(report.problems) > 20:
        err.print(f"  … and {len(report.problems) - 20} more")
    raise typer.Exit(1)


def _unsigned(report: VerifyReport) -> str:
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
    """Print an inclusion (--seq) or consistency (--first, --second) proof, checked.

    --seq N [--size M]: entry N is in the tree of size M (default: the latest
    checkpoint's); --first M --second N: the tree of size N extends that of size M.
    Hashes are printed in hex."""
    from credence.translog.proofs import prove_consistency, prove_inclusion

    if seq is not None and first is None and second is None:
        wanted = "inclusion"
    elif seq is None and size is None and first is not None and second is not None:
        wanted = "consistency"
    else:
        terminal.console(stderr=True).print(
            "give either --seq N [--size M] or --first M --second N"
        )
        raise typer.Exit(2)
    ctx = terminal.open_context(db)
    out = terminal.console()
    with terminal.errors(), ctx.sessions() as session:
        if wanted == "inclusion":
            proof = prove_inclusion(session, seq or 0, size)
            ok = proof.verify()
            out.print(f"entry {proof.seq}: leaf {proof.leaf_index} of {proof.tree_size}")
            out.print(f"leaf hash {proof.leaf_hash.hex()}")
            out.print(f"root      {proof.root_hash.hex()}")
            path = proof.path
        else:
            cons = prove_consistency(session, first or 0, second or 0)
            ok = cons.verify()
            out.print(f"tree {cons.first} → tree {cons.second}")
            out.print(f"root {cons.first:>6} {cons.first_root.hex()}")
            out.print(f"root {cons.second:>6} {cons.second_root.hex()}")
            path = cons.path
    for h in path:
        out.print(f"  {h.hex()}")
    if not ok:  # pragma: no cover - a proof the log made fails its own check: a bug
        terminal.console(stderr=True).print("[red]the proof does not verify[/red]")
        raise typer.Exit(1)
    out.print("proof verifies against the root above")
