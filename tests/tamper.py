"""Tampering with a store as an attacker with database access would: raw SQL on one
connection, foreign-key checks off, values written as stored (instants as integer
microseconds, SQLite's booleans as 0 and 1).

Every covered table comes from the journal's registry (:data:`credence.journal.REGISTRY`)
and :data:`credence.models.metadata`, and every value to tamper with from a column's
type, so a table or column covered later is tampered with without a line here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import zip_longest
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    Engine,
    Float,
    Integer,
    String,
    Table,
    text,
)

from credence import journal
from credence.db import Instant
from credence.models import metadata

#: A day, in the microseconds an instant is stored as.
DAY_MICROS = 86_400_000_000


def covered_tables() -> list[tuple[Table, journal.Covered]]:
    """Every table the journal covers, by name, with its registration."""
    return sorted(journal.covered_tables(metadata), key=lambda pair: pair[0].name)


def q(name: str) -> str:
    """``name`` quoted as an SQL identifier (the same on both stores)."""
    return f'"{name}"'


class Raw(dict[str, Any]):
    """A row as stored, column by column; its repr shows no value (a failed test's
    report would otherwise print names and identifiers)."""

    def __repr__(self) -> str:
        return f"<row of {len(self)} columns>"


# --- the attacker's connection ---------------------------------------------------------


@contextmanager
def attacker(engine: Engine) -> Iterator[Connection]:
    """A connection with foreign-key checks off whose writes commit at the end."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            # A no-op inside a transaction: set first, outside one.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
        else:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        try:
            yield conn
            conn.commit()
        finally:
            conn.rollback()
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def _where(table: Table, key: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    clauses = [f"{q(name)} = :k_{name}" for name in key]
    return " AND ".join(clauses), {f"k_{name}": value for name, value in key.items()}


def read(conn: Connection, table: Table, key: Mapping[str, Any]) -> Raw | None:
    """The row of ``table`` with primary key ``key``, raw as stored."""
    where, params = _where(table, key)
    row = conn.execute(text(f"SELECT * FROM {q(table.name)} WHERE {where}"), params).mappings()
    found = row.one_or_none()
    return None if found is None else Raw(found)


def update(
    conn: Connection, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]
) -> None:
    """Set ``values`` on the one row of ``table`` with primary key ``key``."""
    where, params = _where(table, key)
    sets = ", ".join(f"{q(name)} = :v_{name}" for name in values)
    params |= {f"v_{name}": value for name, value in values.items()}
    done = conn.execute(text(f"UPDATE {q(table.name)} SET {sets} WHERE {where}"), params)
    assert done.rowcount == 1, (table.name, dict(key))


def delete(conn: Connection, table: Table, key: Mapping[str, Any]) -> None:
    where, params = _where(table, key)
    done = conn.execute(text(f"DELETE FROM {q(table.name)} WHERE {where}"), params)
    assert done.rowcount == 1, (table.name, dict(key))


def insert(conn: Connection, table: Table, row: Mapping[str, Any]) -> None:
    names = ", ".join(q(name) for name in row)
    params = ", ".join(f":v_{name}" for name in row)
    conn.execute(
        text(f"INSERT INTO {q(table.name)} ({names}) VALUES ({params})"),
        {f"v_{name}": value for name, value in row.items()},
    )


# --- rows and keys ----------------------------------------------------------------------


def key_columns(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def key_of(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in key_columns(table)}


def key_text(key: Mapping[str, Any]) -> str:
    """A row's key as verify names it: the value, or ``(a, b)`` for a composite key."""
    values = [str(v) for v in key.values()]
    return values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"


def unique_sets(table: Table) -> list[tuple[str, ...]]:
    """Every set of columns whose values are unique together, the primary key first."""
    sets = [tuple(key_columns(table))]
    for constraint in table.constraints:
        names = tuple(c.name for c in getattr(constraint, "columns", ()))
        if names and constraint.__class__.__name__ == "UniqueConstraint":
            sets.append(names)
    sets += [tuple(c.name for c in index.columns) for index in table.indexes if index.unique]
    return sets


def collides(conn: Connection, table: Table, row: Mapping[str, Any], column: str) -> bool:
    """Would ``row`` (with a new value of ``column``) break a uniqueness constraint that
    involves ``column``, against the rows stored other than the one it replaces?"""
    for names in unique_sets(table):
        if column not in names or any(row[n] is None for n in names):
            continue
        where, params = _where(table, {n: row[n] for n in names})
        if conn.execute(text(f"SELECT 1 FROM {q(table.name)} WHERE {where}"), params).first():
            return True
    return False


def referenced(column: Column[Any]) -> Column[Any] | None:
    """The column a foreign key ``column`` refers to, if it is one."""
    for fk in column.foreign_keys:
        return fk.column
    return None


def existing(conn: Connection, column: Column[Any]) -> list[Any]:
    """Every value of ``column`` stored, in order."""
    sql = f"SELECT DISTINCT {q(column.name)} FROM {q(column.table.name)} ORDER BY 1"
    return [v for (v,) in conn.execute(text(sql)) if v is not None]


def other_strings(value: str | None) -> Iterator[str]:
    """Strings other than ``value``, no longer than it (a column's length holds them)."""
    if not value:
        yield from ("x", "y", "z", "xy")
        return
    for c in "xyz0123456789":
        if value[-1] != c:
            yield value[:-1] + c
    for c in "xyz0123456789":
        if value[0] != c:
            yield c + value[1:]


def candidates(conn: Connection, column: Column[Any], value: Any) -> Iterator[Any]:
    """Values of ``column``'s type other than ``value``, the likeliest first: for a
    foreign key the ids of other rows of the table it refers to; for an integer key
    new ids; an instant one microsecond (then a day) later; a boolean flipped; a
    date one day later."""
    type_ = column.type
    if isinstance(type_, Instant):
        base = value if value is not None else 1_780_000_000_000_000
        yield from (base + 1, base + DAY_MICROS) if value is not None else (base,)
    elif isinstance(type_, Boolean):
        yield (not value) if value is not None else True
    elif isinstance(type_, Date):
        day = date.fromisoformat(value) if isinstance(value, str) else value  # SQLite: text
        yield day + timedelta(days=1) if day is not None else date(2001, 3, 14)
    elif isinstance(type_, Integer):
        target = referenced(column)
        if target is not None:
            ids = existing(conn, target)
            yield from (v for v in ids if v != value)
            yield max(ids, default=0) + 1000  # when every other row is taken
        elif column.primary_key:
            yield max(existing(conn, column), default=0) + 1000
        else:
            base = value if value is not None else 0
            yield from (base + 1, base + 2, base - 1, base + 1000)
    elif isinstance(type_, Float):
        yield value + 1.0 if value is not None else 1.0
    elif isinstance(type_, String):
        yield from other_strings(value)
    else:
        raise TypeError(f"no tampered value for column {column.table}.{column.name}")


def edits(conn: Connection, table: Table, row: Mapping[str, Any], name: str) -> list[Any]:
    """The values ``row``'s column ``name`` is tampered to: another value of its type
    that breaks no uniqueness constraint, and NULL where the column allows it."""
    column = table.c[name]
    out: list[Any] = []
    for value in candidates(conn, column, row[name]):
        if not collides(conn, table, {**row, name: value}, name):
            out.append(value)
            break
    else:
        raise AssertionError(f"no other value for {table.name}.{name} breaks no constraint")
    if column.nullable and row[name] is not None:
        out.append(None)
    return out


def fresh_value(conn: Connection, column: Column[Any], value: Any) -> Any:
    """A value of ``column`` that no stored row has (for a copied row's unique
    columns): another row's id for a foreign key if one is free, else a new number."""
    taken = set(existing(conn, column))
    for candidate in candidates(conn, column, value):
        if candidate not in taken:
            return candidate
    if isinstance(column.type, Integer):
        return max(taken, default=0) + 1000
    raise AssertionError(f"no fresh value for {column.table}.{column.name}")


def forged_copy(conn: Connection, table: Table, row: Mapping[str, Any]) -> Raw:
    """A copy of ``row`` with a new primary key and every unique set of columns made
    unique (one column of each changed: a string by preference, a foreign key last)."""
    copy = Raw(row)

    def rank(name: str) -> int:
        column = table.c[name]
        if isinstance(column.type, String):
            return 0
        return 2 if referenced(column) is not None else 1

    for names in unique_sets(table):
        name = min(names, key=rank)
        copy[name] = fresh_value(conn, table.c[name], row[name])
    return copy


# --- what verify reported ----------------------------------------------------------------


@dataclass(frozen=True)
class Named:
    """What a problem must name: a table, a row's key and (if given) an entry."""

    table: str
    key: str
    seq: int | None = None

    def __str__(self) -> str:
        entry = "" if self.seq is None else f", entry {self.seq}"
        return f"table {self.table}, row {self.key}{entry}"

    def found_in(self, messages: Sequence[str]) -> bool:
        row = re.compile(rf"table {re.escape(self.table)}, row {re.escape(self.key)}[ :]")
        entry = None if self.seq is None else re.compile(rf"\bentry {self.seq}\b")
        return any(
            row.search(m) is not None and (entry is None or entry.search(m) is not None)
            for m in messages
        )


# --- tampers, made and undone in rounds -------------------------------------------------


@dataclass(frozen=True)
class Tamper:
    """One change an attacker makes, how to undo it, and what verify must name."""

    what: str
    """What was changed, by table and column: never a value."""
    named: Named
    apply: Callable[[Connection], None]
    undo: Callable[[Connection], None]


Step = Callable[[Connection], None]


def _setting(table: Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> Step:
    return lambda conn: update(conn, table, key, values)


def _inserting(table: Table, row: Mapping[str, Any]) -> Step:
    return lambda conn: insert(conn, table, row)


def _deleting(table: Table, key: Mapping[str, Any]) -> Step:
    return lambda conn: delete(conn, table, key)


def _describe(value: Any) -> str:
    return "NULL" if value is None else "another value"


def column_tampers(
    conn: Connection,
    table: Table,
    covered: journal.Covered,
    row: Mapping[str, Any],
    entries: Sequence[int],
) -> list[Tamper]:
    """Each encoded column of ``row`` set to each of its :func:`edits`; its salt set to
    another and to NULL; its seq set to each of ``entries`` (other entries) and to NULL."""
    key = key_of(table, row)
    named = Named(table.name, key_text(key), row["seq"])
    out = []
    for name in covered.encoder.columns:
        for value in edits(conn, table, row, name):
            moved = {**key, name: value} if name in key else key
            out.append(
                Tamper(
                    f"{table.name}.{name} set to {_describe(value)}",
                    named,
                    _setting(table, key, {name: value}),
                    _setting(table, moved, {name: row[name]}),
                )
            )
    restore_salt = _setting(table, key, {"salt": row["salt"]})
    for salt in (journal.new_salt(), None):
        what = f"{table.name}.salt set to {_describe(salt)}"
        out.append(Tamper(what, named, _setting(table, key, {"salt": salt}), restore_salt))
    restore_seq = _setting(table, key, {"seq": row["seq"]})
    for seq in [*entries, None]:
        out.append(
            Tamper(
                f"{table.name}.seq set to {'another entry' if seq is not None else 'NULL'}",
                Named(table.name, key_text(key), seq),
                _setting(table, key, {"seq": seq}),
                restore_seq,
            )
        )
    return out


def row_tampers(conn: Connection, table: Table, row: Mapping[str, Any]) -> list[Tamper]:
    """``row`` deleted; a forged copy of it inserted with no entry, then claiming the
    entry that wrote ``row``."""
    key = key_of(table, row)
    out = [
        Tamper(
            f"{table.name}: a row deleted",
            Named(table.name, key_text(key), row["seq"]),
            _deleting(table, key),
            _inserting(table, row),
        )
    ]
    for seq in (None, row["seq"]):
        forged = forged_copy(conn, table, row) | {"seq": seq}
        forged_key = key_of(table, forged)
        out.append(
            Tamper(
                f"{table.name}: a row inserted with seq {_describe(seq)}",
                Named(table.name, key_text(forged_key), seq),
                _inserting(table, forged),
                _deleting(table, forged_key),
            )
        )
    return out


def run(
    engine: Engine, messages: Callable[[], list[str]], plans: Sequence[Sequence[Tamper]]
) -> tuple[list[str], int]:
    """Make the tampers of ``plans`` (one plan per table) in rounds, the next tamper of
    every plan together (each problem names its table and row, so tampers of different
    tables do not hide each other); after each round check that verify names every one,
    undo them all, and check that verify passes again. Returns (each tamper verify did
    not name, tampers made)."""
    missed: list[str] = []
    made = 0
    for in_round in zip_longest(*plans):
        tampers = [t for t in in_round if t is not None]
        with attacker(engine) as conn:
            for t in tampers:
                t.apply(conn)
        found = messages()
        missed += [t.what for t in tampers if not t.named.found_in(found)]
        with attacker(engine) as conn:
            for t in reversed(tampers):
                t.undo(conn)
        left = messages()
        assert left == [], ("still found once undone", [t.what for t in tampers], left)
        made += len(tampers)
    return missed, made
