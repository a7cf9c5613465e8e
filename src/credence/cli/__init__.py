"""The ``credence`` command line (Typer + Rich): one module per command group, on the
shared options, errors, progress bars and listings of :mod:`credence.cli.terminal`.

Nothing heavy is imported until a command runs, so ``credence --help`` is quick.
"""

from __future__ import annotations

import typer

from credence.cli import (
    backfill,
    database,
    disputes,
    explain,
    export,
    holds,
    identities,
    imports,
    keys,
    lab,
    log,
    parties,
    retention,
    rulebook,
    score,
    serve,
    sources,
)

app = typer.Typer(
    name="credence",
    help="Credence: an open, accountable social-credit engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(rulebook.app, name="rulebook")
app.add_typer(keys.app, name="keys")
app.add_typer(sources.app, name="sources")
app.add_typer(parties.app, name="parties")
app.add_typer(database.app, name="db")
app.add_typer(lab.app, name="lab")
app.add_typer(log.app, name="log")
app.add_typer(disputes.app, name="disputes")
app.add_typer(holds.app, name="holds")
app.add_typer(backfill.app, name="backfill")
app.add_typer(identities.app, name="identities")
app.add_typer(retention.app, name="retention")
app.command("import")(imports.import_command)
app.command("score")(score.score)
app.command("explain")(explain.explain)
app.command("export")(export.export)
app.command("serve")(serve.serve)
app.command("demo")(serve.demo)


def main() -> None:  # pragma: no cover - console script entry
    app()


__all__ = ["app", "main"]
