"""National identifiers: the resident identity number and the unified social credit code.

Validation is python-stdnum's (``stdnum.cn.ric``, ``stdnum.cn.uscc``); this module turns
its exceptions into messages that say what is wrong, and makes valid identifiers for
synthetic populations. Identifiers never appear in URLs or logs: see :func:`mask`.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

from credence.errors import InvalidIdentifier


class SubjectKind(StrEnum):
    """Who a file is about."""

    PERSON = "person"
    COMPANY = "company"
    GOVERNMENT = "government"

    @property
    def is_organisation(self) -> bool:
        return self is not SubjectKind.PERSON


USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def validate_resident_id(value: str) -> str:
    """Return the compact resident identity number, or raise :class:`InvalidIdentifier`."""
    compact = ric.compact(value) if isinstance(value, str) else ""
    if len(compact) != 18:
        raise InvalidIdentifier(
            f"a resident identity number has 18 characters, this one has {len(compact)}"
        )
    if not compact[:17].isdigit() or not (compact[17].isdigit() or compact[17] == "X"):
        raise InvalidIdentifier("a resident identity number is 17 digits followed by a digit or X")
    try:
        ric.get_birth_date(compact)
    except stdnum_errors.ValidationError:
        raise InvalidIdentifier(
            f"the birth date in the resident identity number ({compact[6:14]}) is not a real date"
        ) from None
    try:
        return str(ric.validate(compact))
    except stdnum_errors.InvalidChecksum:
        expected = ric.calc_check_digit(compact)  # stdnum expects the check digit included
        raise InvalidIdentifier(
            "the check character of the resident identity number is wrong "
            f"(ISO 7064 MOD 11-2 gives {expected!r})"
        ) from None
    except stdnum_errors.InvalidComponent:
        raise InvalidIdentifier(
            f"the region code of the resident identity number ({compact[:6]}) is not an "
            f"administrative division that existed in the birth year {compact[6:10]}"
        ) from None
    except stdnum_errors.ValidationError as exc:
        raise InvalidIdentifier(f"invalid resident identity number: {exc}") from None


def validate_credit_code(value: str) -> str:
    """Return the compact unified social credit code, or raise :class:`InvalidIdentifier`."""
    compact = uscc.compact(value) if isinstance(value, str) else ""
    if len(compact) != 18:
        raise InvalidIdentifier(
            f"a unified social credit code has 18 characters, this one has {len(compact)}"
        )
    bad = sorted({c for c in compact if c not in USCC_ALPHABET})
    if bad:
        raise InvalidIdentifier(
            "a unified social credit code uses only 0-9 and A-Y without I, O, S, V, Z; "
            f"found {''.join(bad)!r}"
        )
    try:
        return str(uscc.validate(compact))
    except stdnum_errors.InvalidChecksum:
        expected = uscc.calc_check_digit(compact)
        raise InvalidIdentifier(
            "the check character of the unified social credit code is wrong "
            f"(GB 32100-2015 gives {expected!r})"
        ) from None
    except stdnum_errors.ValidationError as exc:
        raise InvalidIdentifier(f"invalid unified social credit code: {exc}") from None


def validate_identifier(kind: SubjectKind, value: str) -> str:
    """Validate the identifier a subject of ``kind`` must carry; return it compacted."""
    if kind is SubjectKind.PERSON:
        return validate_resident_id(value)
    return validate_credit_code(value)


def guess_kind(value: str) -> SubjectKind | None:
    """The kind of subject an identifier belongs to, if it is valid at all."""
    try:
        validate_resident_id(value)
        return SubjectKind.PERSON
    except InvalidIdentifier:
        pass
    try:
        code = validate_credit_code(value)
    except InvalidIdentifier:
        return None
    # Registration-authority code 1 is the establishment authority: organs of state.
    return SubjectKind.GOVERNMENT if code[0] == "1" else SubjectKind.COMPANY


def mask(value: str) -> str:
    """A form safe for logs and messages: the first two and last two characters."""
    if len(value) <= 4:
        return "*" * len(value)
    return value[:2] + "*" * (len(value) - 4) + value[-2:]


def make_resident_id(region: str, birth: date, sequence: int) -> str:
    """A valid resident identity number (synthetic data only)."""
    body = f"{region:0>6}{birth:%Y%m%d}{sequence % 1000:03d}"
    return body + str(ric.calc_check_digit(body + "0"))  # stdnum ignores the last char


def make_credit_code(authority: str, kind: str, region: str, serial: str) -> str:
    """A valid unified social credit code from its parts (synthetic data only)."""
    body = f"{authority}{kind}{region:0>6}{serial:0>9}"
    return body + str(uscc.calc_check_digit(body))


def validate_any(value: str) -> tuple[SubjectKind, str]:
    """Validate an identifier of either kind; the error names what is wrong with both."""
    try:
        return SubjectKind.PERSON, validate_resident_id(value)
    except InvalidIdentifier as as_person:
        try:
            code = validate_credit_code(value)
        except InvalidIdentifier as as_org:
            raise InvalidIdentifier(
                "not a valid resident identity number "
                f"({as_person.message}) nor unified social credit code ({as_org.message})"
            ) from None
    kind = SubjectKind.GOVERNMENT if code[0] == "1" else SubjectKind.COMPANY
    return kind, code
