"""Why a reviewer or an operator reads a subject's file or score: a fixed catalogue.

Not the relying parties' purposes (``credence.rulebook.purposes``, which bind a
service to the categories of records it may read). These are the reasons staff of
Credence may look at one person's file, declared with every read (``?purpose=``),
logged with it and shown to the subject in plain words. The catalogue lives in code:
widening it is a code change, reviewed and released like any other.

A legal order is declared with its reference, ``legal_order:<reference>``: printable,
at most :data:`MAX_REFERENCE` characters, and never anything that may be a national
identifier (the reference is shown to the subject and kept in the access log).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from credence.errors import InvalidInput
from credence.identifiers import contains_identifier


class AccessPurpose(StrEnum):
    """A purpose from the catalogue; its value is what the access log keeps."""

    DISPUTE_HANDLING = "dispute_handling"
    REPAIR_REVIEW = "repair_review"
    AUDIT = "audit"
    LEGAL_ORDER = "legal_order"


#: What the subject reads for each purpose.
LABELS: MappingProxyType[AccessPurpose, str] = MappingProxyType(
    {
        AccessPurpose.DISPUTE_HANDLING: "handling a dispute about your file",
        AccessPurpose.REPAIR_REVIEW: "reviewing an application for credit repair",
        AccessPurpose.AUDIT: "an audit of how Credence keeps and uses files",
        AccessPurpose.LEGAL_ORDER: "a legal order",
    }
)

#: How a legal order is declared: the code, this separator, the order's reference.
SEPARATOR = ":"
#: The longest reference of a legal order, in characters.
MAX_REFERENCE = 120
#: The purpose the access log keeps for a subject reading their own file.
OWN_FILE = "own file"
OWN_FILE_LABEL = "you read your own file"


@dataclass(frozen=True)
class Declared:
    """A purpose from the catalogue, with a legal order's reference."""

    purpose: AccessPurpose
    reference: str | None = None

    @property
    def code(self) -> str:
        """What the access log keeps: ``audit``, ``legal_order:<reference>``, ..."""
        if self.reference is None:
            return self.purpose.value
        return f"{self.purpose.value}{SEPARATOR}{self.reference}"

    @property
    def label(self) -> str:
        """What the subject reads."""
        label = LABELS[self.purpose]
        return label if self.reference is None else f"{label} (reference {self.reference})"


def forms() -> list[str]:
    """How each purpose is written, in the catalogue's order."""
    return [
        f"{p.value}{SEPARATOR}<reference>" if p is AccessPurpose.LEGAL_ORDER else p.value
        for p in AccessPurpose
    ]


def catalogue() -> list[dict[str, str]]:
    """The catalogue as the API lists it in a refusal: each purpose's form and label."""
    return [
        {"code": p.value, "form": form, "label": LABELS[p]}
        for p, form in zip(AccessPurpose, forms(), strict=True)
    ]


def _allowed() -> str:
    *first, last = forms()
    return f"{', '.join(first)} or {last}"


def required() -> InvalidInput:
    """The refusal of a read that declares no purpose."""
    return InvalidInput(
        f"declare why you read this file: add ?purpose= with one of {_allowed()} "
        "(it is shown to the subject)",
        code="purpose_required",
        details={"allowed": catalogue()},
    )


def parse(text: str) -> Declared:
    """The purpose ``text`` declares, or :class:`InvalidInput` naming the catalogue.

    Messages never quote ``text``: whatever was typed may hold personal data."""
    code, separator, reference = text.strip().partition(SEPARATOR)
    try:
        purpose = AccessPurpose(code)
    except ValueError:
        raise InvalidInput(
            f"the purpose is not in the catalogue: declare one of {_allowed()} "
            "(it is shown to the subject)",
            code="purpose_not_in_catalogue",
            details={"allowed": catalogue()},
        ) from None
    if purpose is not AccessPurpose.LEGAL_ORDER:
        if separator:
            raise InvalidInput(
                f"only a legal order carries a reference; declare {purpose.value} alone",
                code="purpose_not_in_catalogue",
                details={"allowed": catalogue()},
            )
        return Declared(purpose)
    return Declared(purpose, _reference(reference.strip()))


def _reference(reference: str) -> str:
    if not reference:
        raise InvalidInput(
            f"a legal order is declared with its reference: "
            f"{AccessPurpose.LEGAL_ORDER.value}{SEPARATOR}<the order's reference>",
            code="legal_order_reference_required",
        )
    if len(reference) > MAX_REFERENCE:
        raise InvalidInput(
            f"a legal order's reference has at most {MAX_REFERENCE} characters; this one "
            f"has {len(reference)}",
            code="legal_order_reference_invalid",
        )
    if not reference.isprintable():
        raise InvalidInput(
            "a legal order's reference is printable text on one line (no tabs or control "
            "characters)",
            code="legal_order_reference_invalid",
        )
    if contains_identifier(reference):
        raise InvalidInput(
            "a legal order's reference must not carry a national identifier or anything "
            "shaped like one (it is shown to the subject and kept in the access log); "
            "give the order's own reference, as written on it",
            code="legal_order_reference_invalid",
        )
    return reference


def describe(logged: str) -> tuple[str, str | None]:
    """What the subject reads for a purpose the access log keeps, and a legal order's
    reference. A purpose logged before the catalogue (free text) or by an operator's
    action (``operations``) reads as it was logged."""
    if logged == OWN_FILE:
        return OWN_FILE_LABEL, None
    code, separator, reference = logged.partition(SEPARATOR)
    try:
        purpose = AccessPurpose(code)
    except ValueError:
        return logged, None
    if (purpose is AccessPurpose.LEGAL_ORDER) != bool(separator and reference):
        return logged, None
    declared = Declared(purpose, reference or None)
    return declared.label, declared.reference
