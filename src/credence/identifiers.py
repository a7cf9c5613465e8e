"""National identifiers: the resident identity number and the unified social credit code.

The check characters and the table of regions come from python-stdnum (``stdnum.cn.ric``,
``stdnum.cn.uscc``); the rest is checked here, where the messages are written: each says
what is wrong without quoting the identifier or any part of it (no region code, no birth
date, no character found, and never the check character the number should have had), as
it may be a real person's number. docs/identifiers.md describes the rules.

Identifiers never appear in URLs or logs: see :func:`mask`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

from credence.errors import InvalidIdentifier


class SubjectKind(StrEnum):
    """Who a file is about. ``company`` stands for every organisation that is not a
    public body (an enterprise, a social organisation, a law firm, ...)."""

    PERSON = "person"
    COMPANY = "company"
    GOVERNMENT = "government"

    @property
    def is_organisation(self) -> bool:
        return self is not SubjectKind.PERSON


USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"

# --- resident identity numbers -----------------------------------------------------------

#: No resident identity number carries a birth date before this day.
EARLIEST_BIRTH = date(1900, 1, 1)

#: Birth dates in resident identity numbers are calendar dates in China (UTC+8).
CHINA_TIME = timedelta(hours=8)


def date_in_china(at: datetime) -> date:
    """The calendar date in China at the instant ``at`` (naive values are UTC): "today"
    for a birth date, which is a date in China, not in UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at.astimezone(UTC) + CHINA_TIME).date()


def start_in_china(day: date) -> datetime:
    """The instant (UTC) at which the calendar date ``day`` begins in China: a person is
    born by then on their birth date."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - CHINA_TIME


def _today(today: date | None) -> date:
    return today if today is not None else date_in_china(datetime.now(UTC))


def birth_date(resident_id: str) -> date:
    """The birth date a compact resident identity number carries (a date in China):
    characters 7 to 14, where python-stdnum's ``cn.ric.get_birth_date`` reads it, without
    compacting the number again (registered numbers are stored compact). Raises
    :class:`ValueError` if they are no real date (never for a validated number)."""
    return date(int(resident_id[6:10]), int(resident_id[10:12]), int(resident_id[12:14]))


def validate_resident_id(value: str, *, today: date | None = None) -> str:
    """Return the compact resident identity number, or raise :class:`InvalidIdentifier`.

    The birth date must be a real date, not before :data:`EARLIEST_BIRTH` and not after
    ``today`` (a date in China, see :func:`date_in_china`; pass the clock's: without it,
    the system clock's date is taken)."""
    compact = ric.compact(value) if isinstance(value, str) else ""
    if len(compact) != 18:
        raise InvalidIdentifier(
            f"a resident identity number has 18 characters, this one has {len(compact)}"
        )
    if not compact[:17].isdigit() or not (compact[17].isdigit() or compact[17] == "X"):
        raise InvalidIdentifier("a resident identity number is 17 digits followed by a digit or X")
    try:
        born = birth_date(compact)
    except ValueError:
        raise InvalidIdentifier(
            "the birth date in the resident identity number is not a real date"
        ) from None
    if born < EARLIEST_BIRTH:
        raise InvalidIdentifier(
            "the birth date in the resident identity number is before "
            f"{EARLIEST_BIRTH.isoformat()}; no such number was issued"
        )
    if born > _today(today):
        raise InvalidIdentifier("the birth date in the resident identity number is in the future")
    if compact[17] != ric.calc_check_digit(compact):  # stdnum skips the last character
        raise InvalidIdentifier("the check character of the resident identity number is wrong")
    try:
        ric.get_birth_place(compact)
    except stdnum_errors.ValidationError:
        raise InvalidIdentifier(
            "the region code of the resident identity number is not an administrative "
            "division that existed in its birth year"
        ) from None
    return compact


# --- unified social credit codes ---------------------------------------------------------


@dataclass(frozen=True)
class Registrar:
    """A registration authority of unified social credit codes (the code's first
    character) and the kinds of organisation it registers (its second character)."""

    name: str
    #: Kind character -> (what kind of organisation, the kind of subject it is here).
    kinds: MappingProxyType[str, tuple[str, SubjectKind]]


def _registrar(name: str, kinds: dict[str, tuple[str, SubjectKind]]) -> Registrar:
    return Registrar(name, MappingProxyType(kinds))


_PUBLIC = SubjectKind.GOVERNMENT
_PRIVATE = SubjectKind.COMPANY

REGISTRARS: MappingProxyType[str, Registrar] = MappingProxyType(
    {
        "1": _registrar(
            "the establishment authorities (organs of state)",
            {
                "1": ("an organ of the state", _PUBLIC),
                "2": ("a public institution", _PUBLIC),
                "3": ("a mass organisation whose establishment the state sets", _PUBLIC),
                "9": ("another body under the establishment authorities", _PUBLIC),
            },
        ),
        "2": _registrar(
            "foreign affairs",
            {
                "1": ("a resident office of a foreign news organisation", _PRIVATE),
                "9": ("another organisation registered by foreign affairs", _PRIVATE),
            },
        ),
        "3": _registrar(
            "justice administration",
            {
                "1": ("a law firm", _PRIVATE),
                "2": ("a notary office", _PRIVATE),
                "3": ("a grassroots legal service office", _PRIVATE),
                "4": ("a forensic examination body", _PRIVATE),
                "5": ("an arbitration commission", _PRIVATE),
                "9": ("another organisation registered by justice administration", _PRIVATE),
            },
        ),
        "4": _registrar(
            "culture",
            {
                "1": ("a foreign cultural centre", _PRIVATE),
                "9": ("another organisation registered by culture", _PRIVATE),
            },
        ),
        "5": _registrar(
            "civil affairs",
            {
                "1": ("a social organisation", _PRIVATE),
                "2": ("a private non-enterprise unit", _PRIVATE),
                "3": ("a foundation", _PRIVATE),
                "9": ("another organisation registered by civil affairs", _PRIVATE),
            },
        ),
        "6": _registrar(
            "tourism",
            {
                "1": ("a representative office of a foreign tourism authority", _PRIVATE),
                "2": (
                    "a representative office of a tourism authority of Hong Kong, Macao or Taiwan",
                    _PRIVATE,
                ),
                "9": ("another organisation registered by tourism", _PRIVATE),
            },
        ),
        "7": _registrar(
            "religious affairs",
            {
                "1": ("a place of religious activity", _PRIVATE),
                "2": ("a religious college", _PRIVATE),
                "9": ("another organisation registered by religious affairs", _PRIVATE),
            },
        ),
        "8": _registrar(
            "the trade unions",
            {
                "1": ("a grassroots trade union", _PRIVATE),
                "9": ("another organisation registered by the trade unions", _PRIVATE),
            },
        ),
        "9": _registrar(
            "industry and commerce (market regulation)",
            {
                "1": ("an enterprise", _PRIVATE),
                "2": ("an individually owned business", _PRIVATE),
                "3": ("a farmers' specialised cooperative", _PRIVATE),
            },
        ),
        "A": _registrar(
            "the military establishment authority",
            {
                "1": ("a military public institution", _PUBLIC),
                "9": ("another body under the military establishment authority", _PUBLIC),
            },
        ),
        "N": _registrar(
            "agriculture",
            {
                "1": ("a group-level rural collective economic organisation", _PRIVATE),
                "2": ("a village-level rural collective economic organisation", _PRIVATE),
                "3": ("a township-level rural collective economic organisation", _PRIVATE),
                "9": ("another organisation registered by agriculture", _PRIVATE),
            },
        ),
        "Y": _registrar(
            "other registration authorities",
            {"1": ("an organisation registered by another authority", _PRIVATE)},
        ),
    }
)
"""Who issues unified social credit codes, and to whom: the first character of a code
names the registration authority, the second the kind of organisation within what that
authority registers. The national standard for the code (GB 32100-2015, with the
authorities its amendments added: the military establishment authority "A" and
agriculture "N") fixes both; a pair it does not list is no code at all.

Each kind maps to the kind of subject its holder is in Credence: bodies registered by
the establishment authorities (organs of state, public institutions, mass organisations
whose posts the state sets, military public institutions) are ``government``, the public
bodies whose own contracts and debts the government-affairs records are about; every
other organisation is a ``company`` (non-state organisations all, whatever their
purpose). A code is accepted only for the kind of subject its kind character gives."""


def credit_code_kind(code: str) -> SubjectKind:
    """The kind of subject the holder of a valid, compact credit code is."""
    return REGISTRARS[code[0]].kinds[code[1]][1]


def validate_credit_code(value: str, *, kind: SubjectKind | None = None) -> str:
    """Return the compact unified social credit code, or raise :class:`InvalidIdentifier`.

    With ``kind``, the code must also be one of a subject of that kind (see
    :data:`REGISTRARS`)."""
    compact = uscc.compact(value) if isinstance(value, str) else ""
    if len(compact) != 18:
        raise InvalidIdentifier(
            f"a unified social credit code has 18 characters, this one has {len(compact)}"
        )
    if any(c not in USCC_ALPHABET for c in compact):
        raise InvalidIdentifier(
            "a unified social credit code uses only 0-9 and A-Y without I, O, S, V, Z; "
            "this one has another character"
        )
    registrar = REGISTRARS.get(compact[0])
    if registrar is None:
        raise InvalidIdentifier(
            "the first character of a unified social credit code names its registration "
            "authority; this one names none"
        )
    registered = registrar.kinds.get(compact[1])
    if registered is None:
        raise InvalidIdentifier(
            "the second character of a unified social credit code names the kind of "
            "organisation; this one names none that its registration authority registers"
        )
    if not compact[2:8].isdigit():
        raise InvalidIdentifier(
            "characters 3 to 8 of a unified social credit code are the digits of a region code"
        )
    if compact[17] != uscc.calc_check_digit(compact):
        raise InvalidIdentifier("the check character of the unified social credit code is wrong")
    holder = registered[1]
    if kind is not None and holder is not kind:
        raise InvalidIdentifier(
            f"this unified social credit code is not one of a {kind.value}: its registration "
            f"authority and kind of organisation (its first two characters) are those of a "
            f"{holder.value}",
            code="identifier_not_of_kind",
        )
    return compact


def validate_identifier(kind: SubjectKind, value: str, *, today: date | None = None) -> str:
    """Validate the identifier a subject of ``kind`` must carry; return it compacted.

    ``today`` is the date in China (:func:`date_in_china` of the clock's instant)."""
    if kind is SubjectKind.PERSON:
        return validate_resident_id(value, today=today)
    return validate_credit_code(value, kind=kind)


def guess_kind(value: str, *, today: date | None = None) -> SubjectKind | None:
    """The kind of subject an identifier belongs to, if it is valid at all."""
    try:
        return validate_any(value, today=today)[0]
    except InvalidIdentifier:
        return None


#: An 18-character run of letters and digits with at least six digits: the shape of both
#: national identifiers.
IDENTIFIER_SHAPE = re.compile(
    r"(?<![0-9A-Za-z])(?=(?:[A-Za-z]*[0-9]){6})[0-9A-Za-z]{18}(?![0-9A-Za-z])"
)
#: Fifteen digits or more in a row: an identity number of either generation (15 digits,
#: or 17 and a check character), or a good part of one.
_DIGIT_RUN = re.compile(r"[0-9]{15,}")
#: What may be written between the groups of an identifier's characters.
_SEPARATORS = re.compile(r"[\s\-./_]+")
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")


def contains_identifier(text: str) -> bool:
    """Whether ``text`` carries what may be a national identifier: the shape of one
    (:data:`IDENTIFIER_SHAPE`), fifteen digits in a row once spaces, hyphens, dots,
    slashes and underscores are taken out ("1101 0519 8001 0112 34"), or a valid
    identifier once every character but letters and digits is. For free text that is
    to be stored or shown (a reference), never for an identifier field."""
    if IDENTIFIER_SHAPE.search(text) or _DIGIT_RUN.search(_SEPARATORS.sub("", text)):
        return True
    joined = _NOT_ALNUM.sub("", text).upper()
    for start in range(len(joined) - 17):
        try:
            validate_any(joined[start : start + 18])
        except InvalidIdentifier:
            continue
        return True
    return False


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


def validate_any(value: str, *, today: date | None = None) -> tuple[SubjectKind, str]:
    """Validate an identifier of either kind; the error names what is wrong with both."""
    try:
        return SubjectKind.PERSON, validate_resident_id(value, today=today)
    except InvalidIdentifier as as_person:
        try:
            code = validate_credit_code(value)
        except InvalidIdentifier as as_org:
            raise InvalidIdentifier(
                "not a valid resident identity number "
                f"({as_person.message}) nor unified social credit code ({as_org.message})"
            ) from None
    return credit_code_kind(code), code
