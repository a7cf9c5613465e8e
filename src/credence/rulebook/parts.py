"""The pieces of a parsed rulebook that validate on their own.

The whole-book checks (:mod:`credence.rulebook.checks`) run on :class:`Parts` rather
than on a :class:`~credence.rulebook.model.Rulebook`, so that one malformed record type
does not hide the other problems of the file: each scale, tier, table, record type and
service is validated by itself, and the codes of every list item are kept valid or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from credence.rulebook.model import (
    Category,
    RecordType,
    Scale,
    Service,
    Severity,
    SeverityClass,
    Tier,
)

__all__ = ["Parts"]

M = TypeVar("M", bound=BaseModel)


def _valid(model: type[M], value: Any) -> M | None:
    # Unknown keys are already reported; dropping them here lets the whole-book checks
    # still see the rest of the item (a misspelt key must not hide a missing reference).
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k in model.model_fields}
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


_CATEGORY_TABLE = TypeAdapter(dict[Category, str])
_SEVERITY_TABLE = TypeAdapter(dict[Severity, SeverityClass])


@dataclass
class Parts:
    """The pieces of a book that validated on their own, with their indices.

    Whole-book checks run on these rather than on a :class:`Rulebook`, so that one
    malformed record type does not hide the other problems of the file.
    """

    scale: Scale | None
    tiers: list[tuple[int, Tier]]
    categories: dict[Category, str] | None
    severity_classes: dict[Severity, SeverityClass] | None
    record_types: list[tuple[int, RecordType]]
    services: list[tuple[int, Service]]
    #: Codes of every record type, service and tier table in the file, valid or not
    #: (by list key, in file order with their indices): duplicates are found among
    #: all of them, and a rule naming a malformed type is not also reported as naming
    #: an unknown one.
    codes: dict[str, list[tuple[int, str]]]

    @property
    def declared_types(self) -> frozenset[str]:
        return frozenset(code for _, code in self.codes["record_types"])

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Parts:
        def indexed(key: str, model: type[M]) -> list[tuple[int, M]]:
            items = data.get(key)
            if not isinstance(items, list):
                return []
            out = []
            for i, item in enumerate(items):
                valid = _valid(model, item)
                if valid is not None:
                    out.append((i, valid))
            return out

        def table(adapter: TypeAdapter[Any], key: str) -> Any:
            try:
                return adapter.validate_python(data.get(key))
            except ValidationError:
                return None

        def codes(key: str) -> list[tuple[int, str]]:
            items = data.get(key)
            if not isinstance(items, list):
                return []
            return [
                (i, item["code"])
                for i, item in enumerate(items)
                if isinstance(item, dict) and isinstance(item.get("code"), str)
            ]

        return cls(
            scale=_valid(Scale, data.get("scale")),
            tiers=indexed("tiers", Tier),
            categories=table(_CATEGORY_TABLE, "categories"),
            severity_classes=table(_SEVERITY_TABLE, "severity_classes"),
            record_types=indexed("record_types", RecordType),
            services=indexed("services", Service),
            codes={key: codes(key) for key in ("record_types", "services", "tiers")},
        )
