"""Resident identity numbers and unified social credit codes: known answers, the message
for each kind of mistake (which never quotes the identifier or any part of it), the birth
date's bounds, the credit code's registration authority and kind against the kind of
subject, and a property that generated identifiers always validate."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from stdnum.cn import ric, uscc

from credence.clock import FixedClock
from credence.errors import InvalidIdentifier
from credence.identifiers import (
    REGISTRARS,
    USCC_ALPHABET,
    SubjectKind,
    credit_code_kind,
    date_in_china,
    guess_kind,
    make_credit_code,
    make_resident_id,
    mask,
    validate_any,
    validate_credit_code,
    validate_identifier,
    validate_resident_id,
)
from credence.ledger import registry
from credence.ledger.schemas import SubjectIn
from credence.ledger.tables import Subject
from tests.world import build_world

RIC = "11010519491231002X"  # the example of GB 11643-1999: Beijing Chaoyang, 1949-12-31
USCC = "91110000600037341L"  # python-stdnum's example of a valid code

# Regions python-stdnum knows for every birth year from 1900 on (Beijing, Shanghai).
REGIONS = ["110101", "110105", "310101", "310104"]


def _with_check(body17: str) -> str:
    """A resident id with the right check character for ``body17``."""
    return body17 + ric.calc_check_digit(body17 + "0")


def assert_not_echoed(message: str, value: str) -> None:
    """``message`` quotes no part of ``value``: no run of 3 or more of its characters (a
    region code, a year, a birth date), nothing in quotes."""
    compact = value.replace(" ", "").replace("-", "").upper()
    for start in range(len(compact) - 2):
        assert compact[start : start + 3] not in message.upper(), (compact[start:], message)
    assert "'" not in message, message
    assert '"' not in message, message


def refused(value: str, **kw: object) -> str:
    """The message of the refusal of ``value`` as a resident identity number."""
    with pytest.raises(InvalidIdentifier) as err:
        validate_resident_id(value, **kw)  # type: ignore[arg-type]
    assert err.value.status == 422
    assert_not_echoed(err.value.message, value)
    return err.value.message


# --- resident identity numbers -----------------------------------------------------------


def test_valid_resident_id() -> None:
    assert validate_resident_id(RIC) == RIC
    assert validate_resident_id(RIC.lower()) == RIC  # a lower-case x is the same number
    assert validate_resident_id(f" {RIC} ") == RIC


def test_resident_id_wrong_check_char_does_not_reveal_the_right_one() -> None:
    message = refused(RIC[:-1] + "1")
    assert "check character" in message
    assert not re.search(r"\bX\b", message), message  # the right one, for RIC


def test_resident_id_impossible_birth_date() -> None:
    feb31 = _with_check("110105" + "19490231" + "002")
    assert "birth date in the resident identity number is not a real date" in refused(feb31)


TODAY = date(2026, 12, 6)


def test_resident_id_born_after_today_is_refused() -> None:
    tomorrow = _with_check("110105" + "20261207" + "001")
    assert "birth date in the resident identity number is in the future" in refused(
        tomorrow, today=TODAY
    )
    born_today = _with_check("110105" + "20261206" + "001")
    assert validate_resident_id(born_today, today=TODAY) == born_today
    assert validate_resident_id(tomorrow, today=TODAY + timedelta(days=1)) == tomorrow


def test_resident_id_born_after_the_system_date_without_a_clock() -> None:
    tomorrow = date_in_china(datetime.now(UTC)) + timedelta(days=1)
    value = make_resident_id("110105", tomorrow, 1)
    assert "in the future" in refused(value)
    assert validate_resident_id(value, today=tomorrow) == value


def test_resident_id_born_before_1900_is_refused() -> None:
    old = _with_check("110105" + "18991231" + "001")
    assert "before 1900-01-01" in refused(old, today=TODAY)
    first = make_resident_id("110105", date(1900, 1, 1), 1)
    assert validate_resident_id(first, today=TODAY) == first


def test_today_is_the_date_in_china() -> None:
    assert date_in_china(datetime(2026, 6, 1, 15, 59, tzinfo=UTC)) == date(2026, 6, 1)
    assert date_in_china(datetime(2026, 6, 1, 16, 0, tzinfo=UTC)) == date(2026, 6, 2)
    assert date_in_china(datetime(2026, 6, 1, 16, 0)) == date(2026, 6, 2)  # naive: UTC


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (RIC[:-2], "has 18 characters, this one has 16"),
        (RIC + "1", "has 18 characters, this one has 19"),
        ("", "this one has 0"),
        ("1101051949123100AX", "17 digits followed by a digit or X"),
        ("11010519491231002Y", "17 digits followed by a digit or X"),
    ],
)
def test_resident_id_malformed(value: str, message: str) -> None:
    with pytest.raises(InvalidIdentifier, match=message):
        validate_resident_id(value)


def test_resident_id_unknown_region() -> None:
    value = _with_check("999999" + "19900101" + "001")
    message = refused(value)
    assert "region code of the resident identity number is not an administrative" in message


# --- unified social credit codes ---------------------------------------------------------


def test_valid_credit_code() -> None:
    assert validate_credit_code(USCC) == USCC
    assert validate_credit_code(USCC.lower()) == USCC
    assert validate_credit_code("9111-0000-6000-3734-1L") == USCC


def refused_code(value: str, kind: SubjectKind | None = None) -> str:
    """The message of the refusal of ``value`` as a credit code (of a ``kind``)."""
    with pytest.raises(InvalidIdentifier) as err:
        validate_credit_code(value, kind=kind)
    assert err.value.status == 422
    assert_not_echoed(err.value.message, value)
    return err.value.message


def test_credit_code_wrong_check_char_does_not_reveal_the_right_one() -> None:
    message = refused_code(USCC[:-1] + "M")
    assert "check character" in message
    assert not re.search(r"\bL\b", message), message  # the right one, for USCC


@pytest.mark.parametrize("letter", ["I", "O", "S", "V", "Z"])
def test_credit_code_forbidden_letters(letter: str) -> None:
    value = USCC[:10] + letter + USCC[11:]
    message = refused_code(value)
    assert "without I, O, S, V, Z; this one has another character" in message


def test_credit_code_wrong_length() -> None:
    with pytest.raises(InvalidIdentifier, match="has 18 characters, this one has 17"):
        validate_credit_code(USCC[:-1])


def test_credit_code_letters_where_region_digits_belong() -> None:
    code = "91A10000600037341"
    message = refused_code(code + uscc.calc_check_digit(code))
    assert "characters 3 to 8 of a unified social credit code are the digits" in message


@pytest.mark.parametrize("authority", ["0", "B", "C", "X"])
def test_credit_code_unknown_registration_authority(authority: str) -> None:
    code = make_credit_code(authority, "1", "110000", "600037341")
    assert "names its registration authority; this one names none" in refused_code(code)


@pytest.mark.parametrize(("authority", "kind"), [("9", "4"), ("9", "9"), ("1", "5"), ("Y", "2")])
def test_credit_code_unknown_kind_of_organisation(authority: str, kind: str) -> None:
    code = make_credit_code(authority, kind, "110000", "600037341")
    assert "second character of a unified social credit code names the kind" in refused_code(code)


#: (authority, kind) pairs and the kind of subject their holder is.
PAIRS = [
    (authority, kind, holder)
    for authority, registrar in REGISTRARS.items()
    for kind, (_, holder) in registrar.kinds.items()
]


def test_the_table_has_the_authorities_of_the_standard() -> None:
    assert set(REGISTRARS) == set("123456789ANY")
    assert {(a, k) for a, k, h in PAIRS if h is SubjectKind.GOVERNMENT} == {
        ("1", "1"),
        ("1", "2"),
        ("1", "3"),
        ("1", "9"),
        ("A", "1"),
        ("A", "9"),
    }
    assert {k for a, k, _ in PAIRS if a == "9"} == {"1", "2", "3"}
    assert {k for a, k, _ in PAIRS if a == "5"} == {"1", "2", "3", "9"}
    assert {k for a, k, _ in PAIRS if a == "Y"} == {"1"}


@pytest.mark.parametrize(("authority", "kind", "holder"), PAIRS)
def test_credit_code_kind_against_the_subject_kind(
    authority: str, kind: str, holder: SubjectKind
) -> None:
    code = make_credit_code(authority, kind, "110000", "600037341")
    assert validate_credit_code(code) == code
    assert validate_credit_code(code, kind=holder) == code
    assert validate_identifier(holder, code) == code
    assert credit_code_kind(code) is holder
    assert validate_any(code) == (holder, code)
    other = SubjectKind.COMPANY if holder is SubjectKind.GOVERNMENT else SubjectKind.GOVERNMENT
    message = refused_code(code, other)
    assert f"not one of a {other.value}" in message
    assert f"those of a {holder.value}" in message
    with pytest.raises(InvalidIdentifier):
        validate_identifier(other, code)


# --- kinds, masking, generation ----------------------------------------------------------


def test_guess_kind() -> None:
    assert guess_kind(RIC) is SubjectKind.PERSON
    assert guess_kind(USCC) is SubjectKind.COMPANY
    organ = make_credit_code("1", "1", "110000", "000013542")
    assert guess_kind(organ) is SubjectKind.GOVERNMENT
    assert guess_kind(make_credit_code("A", "1", "110000", "000013542")) is SubjectKind.GOVERNMENT
    assert guess_kind(make_credit_code("Y", "1", "110000", "000013542")) is SubjectKind.COMPANY
    assert guess_kind(make_credit_code("5", "3", "110000", "000013542")) is SubjectKind.COMPANY
    assert guess_kind("not an identifier") is None
    assert guess_kind(RIC[:-1] + "1") is None


def test_validate_identifier_by_kind() -> None:
    assert validate_identifier(SubjectKind.PERSON, RIC) == RIC
    assert validate_identifier(SubjectKind.COMPANY, USCC) == USCC
    with pytest.raises(InvalidIdentifier, match="resident identity number"):
        validate_identifier(SubjectKind.PERSON, USCC)
    with pytest.raises(InvalidIdentifier, match="unified social credit code"):
        validate_identifier(SubjectKind.GOVERNMENT, RIC)


def test_validate_any_names_both_problems() -> None:
    assert validate_any(RIC) == (SubjectKind.PERSON, RIC)
    assert validate_any(USCC) == (SubjectKind.COMPANY, USCC)
    with pytest.raises(InvalidIdentifier) as err:
        validate_any("12345")
    assert "resident identity number" in err.value.message
    assert "unified social credit code" in err.value.message


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        (RIC, "11**************2X"),
        (USCC, "91**************1L"),
        ("abcde", "ab*de"),
        ("abcd", "****"),
        ("", ""),
    ],
)
def test_mask(value: str, masked: str) -> None:
    assert mask(value) == masked


def test_mask_hides_the_birth_date() -> None:
    assert "19491231" not in mask(RIC)


@given(
    region=st.sampled_from(REGIONS),
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 12, 31)),
    sequence=st.integers(min_value=0, max_value=10**6),
)
def test_made_resident_ids_are_valid(region: str, birth: date, sequence: int) -> None:
    made = make_resident_id(region, birth, sequence)
    today = date(2026, 12, 31)
    assert validate_resident_id(made, today=today) == made
    assert ric.get_birth_date(made) == birth
    assert made[14:17] == f"{sequence % 1000:03d}"
    assert guess_kind(made, today=today) is SubjectKind.PERSON


_SERIAL = st.text(alphabet=USCC_ALPHABET, min_size=9, max_size=9)


@given(
    authority=st.sampled_from("159"),
    kind=st.sampled_from("123"),
    region=st.integers(min_value=0, max_value=999_999).map(lambda n: f"{n:06d}"),
    serial=_SERIAL,
)
def test_made_credit_codes_are_valid(authority: str, kind: str, region: str, serial: str) -> None:
    made = make_credit_code(authority, kind, region, serial)
    assert len(made) == 18
    assert validate_credit_code(made) == made
    if not ric.is_valid(made):  # an all-digit code could also be a resident id
        expected = SubjectKind.GOVERNMENT if authority == "1" else SubjectKind.COMPANY
        assert guess_kind(made) is expected


# --- registration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "identifier", "problem"),
    [
        (SubjectKind.COMPANY, make_credit_code("1", "1", "110000", "000013542"), "a government"),
        (SubjectKind.GOVERNMENT, make_credit_code("9", "1", "110000", "000013542"), "a company"),
        (SubjectKind.COMPANY, make_credit_code("9", "7", "110000", "000013542"), "second char"),
        (
            SubjectKind.PERSON,
            make_resident_id("110105", date_in_china(datetime.now(UTC)) + timedelta(days=1), 7),
            "in the future",
        ),
        (SubjectKind.PERSON, _with_check("110105" + "18991231" + "007"), "before 1900-01-01"),
    ],
)
def test_registration_refuses_what_the_identifier_rules_refuse(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    kind: SubjectKind,
    identifier: str,
    problem: str,
) -> None:
    world = build_world(sessions, clock, people=1)
    source = "civil_registry" if kind is SubjectKind.PERSON else "business_registry"
    with sessions.begin() as session, pytest.raises(InvalidIdentifier) as err:
        registry.register_subject(
            session,
            source=session.merge(world.sources[source]),
            data=SubjectIn(kind=kind, identifier=identifier, name="Refused"),
            at=clock.now(),
        )
    assert problem in err.value.message
    assert_not_echoed(err.value.message, identifier)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subject)) == 2  # world's own
