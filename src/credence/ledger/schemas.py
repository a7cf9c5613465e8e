"""What a source sends: the shapes shared by the HTTP API and bulk file import.

Unknown fields are refused (``extra="forbid"``): a source cannot slip a field about
belief, health or politics into the ledger under another name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from credence.clock import Instant
from credence.identifiers import SubjectKind

#: A pattern that any text without a NUL character matches.
NO_NUL = r"^[^\x00]*$"

Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e][\x20-\x7e]*$")
]


class RecordIn(BaseModel):
    """One record as submitted by a source.

    The subject is named either by its opaque ``subject_id`` or by its national
    ``identifier`` (which travels only in request bodies, never in a URL).
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source_ref: Reference = Field(description="The source's own reference; resends are idempotent.")
    # No NUL in text (PostgreSQL refuses it; the API's request guard refuses it too, but
    # a file import has none): a pattern, checked in pydantic's core, costs a fraction of
    # a validator in Python. source_ref and decision_ref are printable ASCII by theirs.
    subject_id: str | None = Field(default=None, max_length=40, pattern=NO_NUL)
    identifier: str | None = Field(default=None, max_length=40, pattern=NO_NUL)
    record_type: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    occurred_at: Instant = Field(
        description="When the fact happened (ISO 8601; UTC if no zone; from 1900 to 9000)."
    )
    quantity: float | None = Field(default=None, ge=0, le=1e12)
    decision_ref: Reference | None = Field(
        default=None, description="Reference of the decision or default registration."
    )
    certified: bool = Field(
        default=False,
        description=(
            "The source certifies that the record is complete and accurate. Needed only "
            "to reinsert a record whose effect a dispute ended (same subject, record type, "
            "occurred_at and decision_ref), which is otherwise refused; refused on any "
            "other record. The subject is told of the reinsertion."
        ),
    )

    @field_validator("quantity")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("quantity must be a finite number")
        return value

    @model_validator(mode="after")
    def _one_subject(self) -> RecordIn:
        if (self.subject_id is None) == (self.identifier is None):
            raise ValueError("name the subject by exactly one of subject_id or identifier")
        return self


class SubjectIn(BaseModel):
    """A subject registered by an identity authority."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: SubjectKind
    identifier: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=200)
    region: str | None = Field(default=None, max_length=16)
    founded_on: date | None = Field(
        default=None,
        description=(
            "An organisation's founding date (YYYY-MM-DD, a date in China): no record "
            "about it may be dated earlier. Refused for a person (whose birth date is in "
            "the resident identity number), after today or before 1900-01-01."
        ),
    )


RecordStatus = Literal["created", "held", "duplicate", "rejected"]


@dataclass(slots=True)
class RecordResult:
    """What happened to one submitted record.

    A plain dataclass, not a model: a batch builds thousands of them, and the API writes
    them with orjson (the response schema reads the same class)."""

    index: int
    source_ref: str | None
    status: RecordStatus
    record_id: str | None = None
    error: dict[str, object] | None = None
    #: For a record stored but held for review: why (``code``, ``message``).
    hold: dict[str, str] | None = None
