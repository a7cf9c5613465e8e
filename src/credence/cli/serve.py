"""``credence serve`` (the HTTP API) and ``credence demo`` (a synthetic city, scored,
with keys to try, then served).

``demo`` checks that it can listen on ``--host``/``--port`` before it builds anything,
so a busy port fails in a second, not after the city is built.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from credence.cli import terminal
from credence.cli.terminal import DbOption

if TYPE_CHECKING:
    from credence.context import Context

HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="Port.")]


def _serve(ctx: Context, host: str, port: int) -> None:
    import uvicorn

    from credence.api.app import create_app
    from credence.db import checkpoint_in_background

    checkpoint_in_background(ctx.engine)
    api = create_app(ctx)
    _settle_the_heap()
    terminal.console().print(
        f"Credence API on http://{host}:{port}  (docs: http://{host}:{port}/docs)"
    )
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


def serve(db: DbOption = None, host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Serve the HTTP API."""
    _serve(terminal.open_context(db), host, port)


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
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    env_file: Annotated[Path, typer.Option(help="Where to write the demo keys.")] = Path(
        "demo.env"
    ),
) -> None:
    """Build a synthetic city, score everyone, print keys to try, and serve the API.

    The port is checked first: a busy one fails at once, before anything is built."""
    from credence.lab.demo import build_demo, check_port_free

    with terminal.errors():
        if serve_api:
            check_port_free(host, port)
        ctx = terminal.open_context(db)
        build_demo(
            ctx,
            console=terminal.console(),
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
