"""``credence db upgrade``: create or migrate the schema."""

from __future__ import annotations

import typer

from credence.cli import terminal
from credence.cli.terminal import DbOption

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create or migrate the schema to the latest version."""
    from credence.migrate import upgrade

    ctx = terminal.open_context(db)
    upgrade(ctx.engine)
    url = ctx.engine.url.render_as_string(hide_password=True)
    terminal.console().print(f"schema up to date on {url}")
