"""Alembic environment: runs revisions on the connection :mod:`credence.migrate` hands over.

``credence.migrate.upgrade`` puts an open connection in ``config.attributes["connection"]``
so migrations run in the caller's transaction, on the caller's engine (with its SQLite
pragmas or PostgreSQL ``search_path``). Without one, an engine is made from the
``sqlalchemy.url`` option; offline (``--sql``) mode renders SQL for that URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from credence.db import make_engine
from credence.migrate import configure_options

config = context.config


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, **configure_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            run_on(conn)
    finally:
        engine.dispose()


def run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **configure_options(url.split(":", 1)[0].split("+", 1)[0]),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
