"""Which tables the log covers: an encoder per covered table, a reason per exempt one.

Each feature registers its own tables when they are defined (in its ``tables`` module):
:func:`cover` with the :class:`~credence.journal.canonical.Encoder` of the columns that
define a row (every column but the journal's own ``seq`` and ``salt``, see
:mod:`credence.journal.rows`), or :func:`exempt` with the reason the table needs no
proof. The journal package knows no feature: features come to it. :func:`uncovered`
names every mapped table with neither, every column of a covered table its encoder
leaves out, and every covered table without the journal's columns, so a table or
column added without a decision fails the coverage test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import MetaData, Table
from sqlalchemy.sql.expression import FromClause

from credence.journal.canonical import Encoder, as_table, normaliser

#: The journal's own columns on a covered table (see :mod:`credence.journal.rows`).
JOURNAL_COLUMNS = ("seq", "salt")


@dataclass(frozen=True)
class ContentCheck:
    """A check of a row's content beyond its digest, run by ``credence log verify``:
    ``test(row)`` says what is wrong with it, or None; ``kind`` names the problem."""

    kind: str
    test: Callable[[Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class Covered:
    """A covered table: its encoder, the columns an erasure removes, if any, where its
    erasures are kept, and a check of its content, if any."""

    encoder: Encoder
    #: The columns of a row's content that an erasure sets to NULL (with the salt);
    #: empty for a table whose rows are never erased.
    erasable: tuple[str, ...] = field(default=())
    #: The table of erasures of these rows and its column naming the erased row.
    erased_in: tuple[str, str] | None = None
    check: ContentCheck | None = None


@dataclass(frozen=True)
class Exempt:
    """A table the log does not cover, and why."""

    reason: str


@dataclass
class Registry:
    """Tables by name: :class:`Covered` or :class:`Exempt`."""

    tables: dict[str, Covered | Exempt] = field(default_factory=dict)

    def cover(
        self,
        table: FromClause | Table,
        encoder: Encoder,
        *,
        erasable: Sequence[str] = (),
        erased_in: tuple[str, str] | None = None,
        check: ContentCheck | None = None,
    ) -> None:
        """Register ``encoder`` for ``table``'s rows; ``erasable`` names the content
        columns an erasure sets to NULL, ``erased_in`` the table of erasures and its
        column naming the row; ``check`` tests a row's content beyond its digest."""
        table = as_table(table)
        if encoder.table != table.name:
            raise ValueError(f"an encoder of {encoder.table} cannot cover {table.name}")
        unknown = [c for c in erasable if c not in encoder.columns]
        if unknown:
            raise ValueError(f"erasable columns of {table.name} not encoded: {', '.join(unknown)}")
        mine = sorted(set(JOURNAL_COLUMNS) & set(encoder.columns))
        if mine:
            raise ValueError(f"column {table.name}.{mine[0]} is the journal's, never encoded")
        if bool(erasable) != (erased_in is not None):
            raise ValueError(f"erasable rows of {table.name} need the table of their erasures")
        self._register(table.name, Covered(encoder, tuple(erasable), erased_in, check))

    def exempt(self, table: FromClause | Table | str, reason: str) -> None:
        """Register ``table`` as not covered by the log, for ``reason`` (not empty)."""
        name = table if isinstance(table, str) else as_table(table).name
        if not reason.strip():
            raise ValueError(f"exempting table {name} needs a reason")
        self._register(name, Exempt(reason.strip()))

    def _register(self, name: str, entry: Covered | Exempt) -> None:
        known = self.tables.get(name)
        if known is not None and known != entry:
            raise ValueError(f"table {name} is already registered with the journal")
        self.tables[name] = entry

    def uncovered(self, metadata: MetaData) -> list[str]:
        """Every table of ``metadata`` with neither an encoder nor a reasoned
        exemption, every column of a covered table that is not encoded (or encoded
        but absent), and every covered table without the journal's columns: one line
        each, empty when all is covered."""
        problems = []
        for table in sorted(metadata.tables.values(), key=lambda t: t.name):
            entry = self.tables.get(table.name)
            if entry is None:
                problems.append(f"table {table.name}: neither an encoder nor an exemption")
            elif isinstance(entry, Exempt):
                if not entry.reason.strip():
                    problems.append(f"table {table.name}: exempt without a reason")
            else:
                problems += _column_problems(table, entry)
        return problems

    def copy(self) -> Registry:
        return Registry(dict(self.tables))


def _column_problems(table: Table, covered: Covered) -> list[str]:
    accounted = set(covered.encoder.columns) | set(JOURNAL_COLUMNS)
    problems = [
        f"column {table.name}.{column.name}: not encoded"
        for column in table.columns
        if column.name not in accounted
    ]
    problems += [
        f"table {table.name}: covered without the journal's column {name}"
        for name in JOURNAL_COLUMNS
        if name not in table.c
    ]
    for name in covered.encoder.columns:
        if name in table.c:
            try:
                normaliser(table.c[name].type)
            except TypeError:
                problems.append(f"column {table.name}.{name}: no canonical form for its type")
    problems += [
        f"column {table.name}.{name}: encoded, but not in the table"
        for name in sorted(set(covered.encoder.columns) - {c.name for c in table.columns})
    ]
    return problems


#: The registry every feature registers with (at import of its tables).
REGISTRY = Registry()


#: Register a covered table (see :meth:`Registry.cover`), or an exempt one
#: (:meth:`Registry.exempt`), with :data:`REGISTRY`.
cover = REGISTRY.cover
exempt = REGISTRY.exempt


def uncovered(metadata: MetaData, registry: Registry | None = None) -> list[str]:
    """:meth:`Registry.uncovered` of ``registry`` (default: :data:`REGISTRY`)."""
    return (REGISTRY if registry is None else registry).uncovered(metadata)


def covered_tables(metadata: MetaData) -> Iterator[tuple[Table, Covered]]:
    """Each covered table of ``metadata`` with its registration, parents before
    children."""
    for table in metadata.sorted_tables:
        entry = REGISTRY.tables.get(table.name)
        if isinstance(entry, Covered):
            yield table, entry


def registration(table: str) -> Covered | Exempt | None:
    """What ``table`` is registered as, if anything."""
    return REGISTRY.tables.get(table)
