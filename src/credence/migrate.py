"""Schema migrations, usable from an installed package (no ``alembic.ini`` needed).

The revisions live in :mod:`credence.migrations`; this module configures Alembic in code
and runs it on the engine it is given, so SQLite pragmas and a PostgreSQL
``search_path`` set on that engine apply to the migration too.

* :func:`upgrade` brings a database to the newest revision (``credence db upgrade``).
* :func:`check_drift` says how the database differs from the tables in the code: empty
  when they agree (a test keeps it so after every upgrade).
* :func:`reset` wipes every table and upgrades again (demo and tests only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Engine, Index, MetaData, Table, text
from sqlalchemy.schema import Constraint

from credence.db import Instant, normalise_url
from credence.models import metadata as models_metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Where the Alembic environment and revisions are (inside the installed package)."""


def alembic_config(engine_or_url: Engine | str) -> Config:
    """An Alembic config for the packaged migrations against an engine or a URL.

    To run on an open connection, set ``config.attributes["connection"]`` as
    :func:`upgrade` does; otherwise Alembic makes its own engine from the URL.
    """
    if isinstance(engine_or_url, Engine):
        url = engine_or_url.url.render_as_string(hide_password=False)
    else:
        url = normalise_url(engine_or_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # The config is a ConfigParser: a literal % (e.g. in a password) must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision shipped with this version of Credence."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def upgrade(engine: Engine) -> None:
    """Bring the database of ``engine`` to the newest revision, in one transaction, then
    carry the rows written before the log's continuation into it (see
    :mod:`credence.translog.continuation`)."""
    config = alembic_config(engine)
    if engine.dialect.name == "sqlite":
        _upgrade_sqlite(engine, config)
        return
    with engine.begin() as conn:
        # Two processes starting at once (API workers, CLI) must not both migrate;
        # the lock is per schema so isolated test schemas do not wait for each other.
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:tag || current_schema()))"),
            {"tag": "credence.migrate:"},
        )
        _migrate(conn, config)


def _migrate(conn: Connection, config: Config) -> None:
    from credence.translog.continuation import carry_over

    config.attributes["connection"] = conn
    command.upgrade(config, "head")
    carry_over(conn, models_metadata)


def _upgrade_sqlite(engine: Engine, config: Config) -> None:
    """SQLite: one transaction for real, with foreign keys checked at the end.

    Python's sqlite3 module (before 3.12) commits before a schema change, so the
    migration runs with the driver's own transaction handling off and an explicit
    ``BEGIN IMMEDIATE``. Altering a column rebuilds its table (copy, drop, rename),
    which a foreign key pointing at it forbids while enforcement is on; enforcement is
    off for the migration (it can only be switched outside a transaction) and
    ``PRAGMA foreign_key_check`` must find nothing before the commit.
    """
    with engine.connect() as conn:
        raw: Any = conn.connection.dbapi_connection
        previous = raw.isolation_level
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        raw.isolation_level = None
        try:
            raw.execute("BEGIN IMMEDIATE")
            try:
                _migrate(conn, config)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    tables = sorted({row[0] for row in broken})
                    raise RuntimeError(
                        f"the migration left foreign keys broken in {', '.join(tables)}"
                    )
                raw.execute("COMMIT")
            except BaseException:
                raw.execute("ROLLBACK")
                raise
        finally:
            raw.isolation_level = previous
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")


def check_drift(engine: Engine, *, metadata: MetaData | None = None) -> list[str]:
    """How the database differs from the code's tables, one sentence per difference.

    Empty when the database is at the newest revision and matches ``metadata`` (the
    application's tables by default). Used by tests after each migration and by
    operators before a release.
    """
    target = models_metadata if metadata is None else metadata
    problems: list[str] = []
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={**configure_options(conn.dialect.name), "target_metadata": target}
        )
        current = context.get_current_revision()
        head = head_revision()
        if current != head:
            problems.append(
                f"database is at revision {current or 'none (empty)'}, the code's newest is "
                f"{head}: run `credence db upgrade`"
            )
        problems += [describe_diff(diff) for diff in compare_metadata(context, target)]
    return problems


def reset(engine: Engine) -> None:
    """Drop every table in the database (Alembic's too), then :func:`upgrade`.

    Destroys all data: for the demo and tests only.
    """
    with engine.begin() as conn:
        present = MetaData()
        present.reflect(conn)  # also tables an older or newer revision left behind
        present.drop_all(conn)
    upgrade(engine)


def render_item(kind: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render :class:`~credence.db.Instant` as its storage type (``BigInteger``), so
    revisions do not import application code that may change after they are written."""
    if kind == "type" and isinstance(obj, Instant):
        return "sa.BigInteger()"
    return False


def configure_options(dialect_name: str) -> dict[str, Any]:
    """Alembic ``configure`` options shared by migrations, autogenerate and drift checks."""
    return {
        "target_metadata": models_metadata,
        "compare_type": True,
        "render_item": render_item,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        "render_as_batch": dialect_name == "sqlite",
    }


def describe_diff(diff: Any) -> str:
    """One Alembic autogenerate diff as a sentence a person can act on."""
    if isinstance(diff, list):  # column modifications come grouped per column
        return "; ".join(describe_diff(d) for d in diff)
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        table: Table = diff[1]
        return f"table {table.name} {_where(kind)}"
    if kind in ("add_column", "remove_column"):
        column: Column[Any] = diff[3]
        return f"column {diff[2]}.{column.name} {_where(kind)}"
    if kind in ("add_index", "remove_index"):
        index: Index = diff[1]
        table_name = index.table.name if index.table is not None else "?"
        return f"index {index.name} on {table_name} {_where(kind)}"
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        constraint: Constraint = diff[1]
        what = "foreign key" if kind.endswith("_fk") else "constraint"
        table_name = getattr(getattr(constraint, "table", None), "name", "?")
        return f"{what} {constraint.name} on {table_name} {_where(kind)}"
    if kind == "modify_type":
        _, _, tname, cname, _, db_type, code_type = diff
        return f"column {tname}.{cname} is {db_type} in the database but {code_type} in the code"
    if kind == "modify_nullable":
        _, _, tname, cname, _, db_null, code_null = diff
        return (
            f"column {tname}.{cname} is {_null(db_null)} in the database "
            f"but {_null(code_null)} in the code"
        )
    if kind == "modify_default":
        _, _, tname, cname, _, db_default, code_default = diff
        return (
            f"column {tname}.{cname} defaults to {db_default!r} in the database "
            f"but {code_default!r} in the code"
        )
    return f"{kind}: {diff[1:]!r}"


def _where(kind: str) -> str:
    if kind.startswith("add"):
        return "is in the code but not in the database"
    return "is in the database but not in the code"


def _null(nullable: bool | None) -> str:
    return "nullable" if nullable else "NOT NULL"
