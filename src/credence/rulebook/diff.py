"""Comparing two editions of a rulebook, item by item and field by field.

:func:`diff` lists what was added, removed or changed: the metadata, the scale,
dispute settings and positive caps, the categories and severity classes, and each tier,
record type and service by its code. A changed item names each field that differs (nested tables as
dotted keys, lists of tables with indices) with its old and new value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from credence.rulebook.model import Rulebook

__all__ = ["Change", "FieldChange", "diff"]


class FieldChange(NamedTuple):
    """One field that differs between two editions (dotted path, old and new value)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    """An item added, removed or changed between two editions of a rulebook."""

    kind: Literal["added", "removed", "changed"]
    what: str
    code: str
    fields: tuple[FieldChange, ...] = ()

    def __str__(self) -> str:
        head = f"{self.kind} {self.what} {self.code}"
        if not self.fields:
            return head
        return head + ": " + "; ".join(f"{f.field} {f.old!r} -> {f.new!r}" for f in self.fields)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    # Nested tables become dotted keys and lists of tables get indices, so a change
    # reads "rules[2].min_score 1030 -> 1040" rather than a whole rules list.
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _field_changes(old: Any, new: Any) -> tuple[FieldChange, ...]:
    a, b = _flatten(old), _flatten(new)
    keys = list(a) + [k for k in b if k not in a]
    return tuple(FieldChange(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k))


def _diff_keyed(what: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    changes: list[Change] = [Change("removed", what, code) for code in old if code not in new]
    for code, item in new.items():
        if code not in old:
            changes.append(Change("added", what, code))
        else:
            fields = _field_changes(old[code], item)
            if fields:
                changes.append(Change("changed", what, code, fields))
    return changes


def diff(old: Rulebook, new: Rulebook) -> list[Change]:
    """What changed from ``old`` to ``new``: metadata, scale, tiers, tables, record
    types and services, each item compared field by field."""
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    changes: list[Change] = []
    sections = ("version", "title", "region", "summary", "tier_hysteresis")
    fields = _field_changes({k: a[k] for k in sections}, {k: b[k] for k in sections})
    if fields:
        changes.append(Change("changed", "rulebook", "metadata", fields))
    for what in ("scale", "dispute", "positive_caps"):
        fields = _field_changes(a[what], b[what])
        if fields:
            changes.append(Change("changed", what, what, fields))
    changes += _diff_keyed("category", a["categories"], b["categories"])
    changes += _diff_keyed("severity_class", a["severity_classes"], b["severity_classes"])
    for what, key in (("tier", "tiers"), ("record_type", "record_types"), ("service", "services")):
        changes += _diff_keyed(what, {i["code"]: i for i in a[key]}, {i["code"]: i for i in b[key]})
    return changes
