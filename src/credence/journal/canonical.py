"""Canonical bytes: of a journal entry's payload, and of a row of a covered table.

The same fact always gives the same bytes, on every store and in every process: JSON
with sorted keys and no whitespace (UTF-8). A row's bytes are those of
``{"row": {column: value, ...}, "table": name}`` over the columns that define the row,
each value normalised by its column's type, so a row read through the ORM (instants as
datetimes, booleans as ``bool``) and the same row read raw from either store (instants
as integer microseconds, SQLite's booleans as 0 and 1) encode alike:

* instants (:class:`credence.db.Instant`): integer microseconds since the epoch (UTC);
* calendar dates (``Date``): ``"YYYY-MM-DD"`` (a :class:`~datetime.date` through the ORM
  and from PostgreSQL, that text from SQLite, read raw);
* integers: ``int``; floats: ``float`` (NaN and infinities are refused: JSON would
  write them as ``null``); booleans: ``true`` / ``false``; strings: as stored;
* NULL: ``null``, except in a column added to a covered table after rows were logged
  (an encoder's ``added``): there NULL is left out of the bytes, so the rows logged
  before the column existed keep their digests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any, Protocol

import orjson
from sqlalchemy import Boolean, Date, Float, Integer, String, Table
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.types import NullType, TypeEngine

from credence.clock import to_micros
from credence.db import Instant


def canonical(data: Mapping[str, Any]) -> str:
    """Canonical JSON text of ``data``: keys sorted, no whitespace; datetimes as orjson
    writes them (RFC 3339, e.g. ``2026-01-01T00:00:00+00:00``)."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


#: A row as an encoder takes it: column name to value (a SQLAlchemy ``RowMapping`` is
#: one, whose keys may also be columns).
Row = Mapping[Any, Any]


class Encoder(Protocol):
    """Canonical bytes of a row of one table, from a mapping of column name to value."""

    @property
    def table(self) -> str:
        """The name of the table whose rows it encodes."""
        ...

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns that define a row: exactly those its bytes depend on."""
        ...

    def __call__(self, row: Row) -> bytes: ...


Normalise = Callable[[Any], Any]


def _instant(value: Any) -> int:
    if isinstance(value, datetime):
        return to_micros(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"an instant is a datetime or integer microseconds, not {type(value)}")


def _integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"an integer column holds an int, not {type(value)}")


def _float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number):
            return number
        raise ValueError("a float column holds a finite number")
    raise TypeError(f"a float column holds a number, not {type(value)}")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # SQLite's booleans, read raw
        return bool(value)
    raise TypeError(f"a boolean column holds a bool, not {type(value)}")


def _date(value: Any) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):  # SQLite's dates, read raw
        try:
            if date.fromisoformat(value).isoformat() == value:
                return value
        except ValueError:
            pass
        raise ValueError("a date column holds a date written YYYY-MM-DD")
    raise TypeError(f"a date column holds a date, not {type(value)}")


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"a string column holds a str, not {type(value)}")


def normaliser(type_: TypeEngine[Any]) -> Normalise:
    """How a value of a column of ``type_`` is written in canonical bytes; a type
    without one is refused (a table with such a column is encoded by hand)."""
    # Instant first: it is a TypeDecorator over BigInteger, and its values are datetimes.
    if isinstance(type_, Instant):
        return _instant
    if isinstance(type_, Boolean):
        return _boolean
    if isinstance(type_, Date):
        return _date
    if isinstance(type_, Integer):
        return _integer
    if isinstance(type_, Float):
        return _float
    if isinstance(type_, String):  # Text is a String
        return _string
    raise TypeError(f"no canonical form for a column of type {type_!r}")


@dataclass(frozen=True)
class ColumnEncoder:
    """The :class:`Encoder` of a table by the named columns (see :func:`encoder`)."""

    table: str
    columns: tuple[str, ...]
    #: The table itself, for its columns' types.
    source: Table = field(compare=False, repr=False)
    #: Columns added after rows were logged: left out of the bytes when NULL.
    added: frozenset[str] = frozenset()

    @cached_property
    def normalisers(self) -> tuple[tuple[str, Normalise], ...]:
        """Each column with its :func:`normaliser`, in sorted order (the order of the
        canonical bytes), looked up on first use: a foreign key's type is known only
        once the table it refers to is defined."""
        return tuple((name, normaliser(self.source.c[name].type)) for name in sorted(self.columns))

    def __call__(self, row: Row) -> bytes:
        values = {}
        for name, normalise in self.normalisers:
            value = row[name]
            if value is None and name in self.added:
                continue
            try:
                values[name] = None if value is None else normalise(value)
            except (TypeError, ValueError) as exc:
                # The value itself stays out of the message: it may be personal data.
                raise type(exc)(f"column {self.table}.{name}: {exc}") from None
        # Keys are in sorted order by construction ("row" < "table", columns sorted):
        # the same bytes as canonical(), without sorting them again.
        return orjson.dumps({"row": values, "table": self.table})


def as_table(table: FromClause | Table) -> Table:
    """``table`` as a :class:`Table` (a mapped class's ``__table__`` is typed loosely)."""
    if not isinstance(table, Table):
        raise TypeError(f"{table!r} is not a table")
    return table


def encoder(table: FromClause | Table, *columns: str, added: tuple[str, ...] = ()) -> ColumnEncoder:
    """The encoder of ``table``'s rows by ``columns``: each row's canonical bytes hold
    exactly these columns, normalised by type (see the module's docstring). ``added``:
    columns (also among ``columns``) that a later release added to a table with logged
    rows; a NULL in one is left out of the bytes, so those rows' digests hold."""
    table = as_table(table)
    if not set(added) <= set(columns):
        raise ValueError(f"added columns of {table.name} must be among its columns")
    missing = [c for c in columns if c not in table.c]
    if missing:
        raise ValueError(f"table {table.name} has no column {', '.join(missing)}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"a column of {table.name} is named twice")
    for name in columns:
        if not isinstance(table.c[name].type, NullType):  # a foreign key's comes later
            normaliser(table.c[name].type)
    return ColumnEncoder(table.name, tuple(columns), table, frozenset(added))
