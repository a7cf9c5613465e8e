"""Alembic migrations of the Credence schema, shipped inside the package.

Run them through :mod:`credence.migrate` (or ``credence db upgrade``); there is no
``alembic.ini``. Each revision must work with the release before it.

To write a revision after changing tables, autogenerate it against a database at head
and tidy it with ``ruff format``::

    from alembic import command
    from credence.db import make_engine
    from credence.migrate import alembic_config, upgrade

    engine = make_engine("sqlite:///rev.db")
    upgrade(engine)
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message="what changed", autogenerate=True, rev_id="0002")

Then check ``credence.migrate.check_drift`` is empty on SQLite and PostgreSQL
(``tests/test_migrate.py`` does).
"""
