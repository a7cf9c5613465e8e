"""Bulk rows into a store, as the online benchmark's builder writes them.

:class:`BulkLoader` inserts rows with ``executemany`` on SQLite (foreign keys and
synchronous writes off while loading) and ``COPY`` on PostgreSQL (then ``ANALYZE`` and
every serial moved past the ids that were copied in).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, text


class BulkLoader:
    """Bulk rows into one store: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn = engine.raw_connection()
        self.sqlite = engine.dialect.name == "sqlite"
        if self.sqlite:
            self.conn.commit()
            cur = self.conn.cursor()
            for pragma in ("foreign_keys=OFF", "synchronous=OFF", "cache_size=-1000000"):
                cur.execute(f"PRAGMA {pragma}")
            cur.close()

    def load(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        cur = self.conn.cursor()
        names = ", ".join(columns)
        if self.sqlite:
            marks = ", ".join("?" for _ in columns)
            cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        else:
            with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        cur.close()

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        if self.sqlite:
            cur = self.conn.cursor()
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cur.close()
        else:
            self.conn.commit()
            cur = self.conn.cursor()
            for table in ("subjects", "records", "retractions", "journal"):
                cur.execute(f"ANALYZE {table}")
            cur.close()
            self.conn.commit()
            self._reset_sequences()
        self.conn.close()

    def _reset_sequences(self) -> None:
        # Rows were copied with explicit ids: move each serial past them.
        with self.engine.begin() as conn:
            for table, column in (
                ("subjects", "id"),
                ("records", "id"),
                ("retractions", "id"),
                ("journal", "seq"),
            ):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                        f"(SELECT coalesce(max({column}), 1) FROM {table}))"
                    )
                )
