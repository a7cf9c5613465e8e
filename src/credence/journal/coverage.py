"""Which tables the log covers: an encoder per covered table, a reason per exempt one.

Each feature registers its own tables when they are defined (in its ``tables`` module):
:func:`cover` with the :class:`~credence.journal.canonical.Encoder` of the columns that
define a row (and the columns later entries set, each with the kind of entry that sets
it), or :func:`exempt` with the reason the table needs no proof. The journal package
knows no feature: features come to it. :func:`uncovered` names every mapped table with
neither, and every column of a covered table that is neither encoded nor set by a
later entry, so a table or column added without a decision fails the coverage test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlalchemy import MetaData, Table
from sqlalchemy.sql.expression import FromClause

from credence.journal.canonical import Encoder, as_table, normaliser
from credence.journal.kinds import EventKind


@dataclass(frozen=True)
class Covered:
    """A covered table: its encoder, and the columns later entries set."""

    encoder: Encoder
    #: Column -> the kind of entry that sets it after the row is written (a key's
    #: ``revoked_at`` by ``key_revoked``): not in the row's bytes, recomputed from the
    #: entries.
    later: Mapping[str, EventKind] = field(default_factory=dict)


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
        later: Mapping[str, EventKind] | None = None,
    ) -> None:
        table = as_table(table)
        later = dict(later or {})
        if encoder.table != table.name:
            raise ValueError(f"an encoder of {encoder.table} cannot cover {table.name}")
        unknown = [c for c in later if c not in table.c]
        if unknown:
            raise ValueError(f"table {table.name} has no column {', '.join(unknown)}")
        twice = sorted(set(later) & set(encoder.columns))
        if twice:
            raise ValueError(
                f"column {table.name}.{twice[0]} is both encoded and set by a later entry"
            )
        for column, kind in later.items():
            if not isinstance(kind, EventKind):
                raise ValueError(f"column {table.name}.{column} is set by no event kind")
        self._register(table.name, Covered(encoder, MappingProxyType(later)))

    def exempt(self, table: FromClause | Table | str, reason: str) -> None:
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
        exemption, and every column of a covered table that is neither encoded nor
        set by a later entry (or encoded but absent): one line each, empty when all
        is covered."""
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
    accounted = set(covered.encoder.columns) | set(covered.later)
    problems = [
        f"column {table.name}.{column.name}: neither encoded nor set by a later entry"
        for column in table.columns
        if column.name not in accounted
    ]
    for name in covered.encoder.columns:
        if name in table.c:
            try:
                normaliser(table.c[name].type)
            except TypeError:
                problems.append(f"column {table.name}.{name}: no canonical form for its type")
    problems += [
        f"column {table.name}.{name}: encoded or set later, but not in the table"
        for name in sorted(accounted - {c.name for c in table.columns})
    ]
    return problems


#: The registry every feature registers with (at import of its tables).
REGISTRY = Registry()


def cover(
    table: FromClause | Table, encoder: Encoder, *, later: Mapping[str, EventKind] | None = None
) -> None:
    """Register ``encoder`` for ``table``'s rows; ``later`` names the columns set by
    later entries (each with its event kind) instead of being encoded."""
    REGISTRY.cover(table, encoder, later=later)


def exempt(table: FromClause | Table | str, reason: str) -> None:
    """Register ``table`` as not covered by the log, for ``reason`` (not empty)."""
    REGISTRY.exempt(table, reason)


def uncovered(metadata: MetaData, registry: Registry | None = None) -> list[str]:
    """:meth:`Registry.uncovered` of ``registry`` (default: :data:`REGISTRY`)."""
    return (REGISTRY if registry is None else registry).uncovered(metadata)


def registration(table: str) -> Covered | Exempt | None:
    """What ``table`` is registered as, if anything."""
    return REGISTRY.tables.get(table)
