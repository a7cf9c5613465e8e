"""Resident identity numbers and unified social credit codes: known answers, the message
for each kind of mistake, and a property that generated identifiers always validate."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric, uscc

from credence.errors import InvalidIdentifier
from credence.identifiers import (
    USCC_ALPHABET,
    SubjectKind,
    guess_kind,
    make_credit_code,
    make_resident_id,
    mask,
    validate_any,
    validate_credit_code,
    validate_identifier,
    validate_resident_id,
)

RIC = "11010519491231002X"  # the example of GB 11643-1999: Beijing Chaoyang, 1949-12-31
USCC = "91110000600037341L"  # python-stdnum's example of a valid code

# Regions python-stdnum knows for every birth year from 1900 on (Beijing, Shanghai).
REGIONS = ["110101", "110105", "310101", "310104"]


def _with_check(body17: str) -> str:
    """A resident id with the right check character for ``body17``."""
    return body17 + ric.calc_check_digit(body17 + "0")


# --- resident identity numbers -----------------------------------------------------------


def test_valid_resident_id() -> None:
    assert validate_resident_id(RIC) == RIC
    assert validate_resident_id(RIC.lower()) == RIC  # a lower-case x is the same number
    assert validate_resident_id(f" {RIC} ") == RIC


def test_resident_id_wrong_check_char_names_the_right_one() -> None:
    with pytest.raises(InvalidIdentifier) as err:
        validate_resident_id(RIC[:-1] + "1")
    assert "check character" in err.value.message
    assert "'X'" in err.value.message
    assert err.value.status == 422


def test_resident_id_impossible_birth_date() -> None:
    feb31 = _with_check("110105" + "19490231" + "002")
    with pytest.raises(InvalidIdentifier, match=r"birth date .*\(19490231\) is not a real date"):
        validate_resident_id(feb31)


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
    with pytest.raises(InvalidIdentifier, match=r"region code .*\(999999\)"):
        validate_resident_id(_with_check("999999" + "19900101" + "001"))


# --- unified social credit codes ---------------------------------------------------------


def test_valid_credit_code() -> None:
    assert validate_credit_code(USCC) == USCC
    assert validate_credit_code(USCC.lower()) == USCC
    assert validate_credit_code("9111-0000-6000-3734-1L") == USCC


def test_credit_code_wrong_check_char_names_the_right_one() -> None:
    with pytest.raises(InvalidIdentifier) as err:
        validate_credit_code(USCC[:-1] + "M")
    assert "check character" in err.value.message
    assert "'L'" in err.value.message


@pytest.mark.parametrize("letter", ["I", "O", "S", "V", "Z"])
def test_credit_code_forbidden_letters(letter: str) -> None:
    value = USCC[:10] + letter + USCC[11:]
    with pytest.raises(InvalidIdentifier, match=f"without I, O, S, V, Z; found '{letter}'"):
        validate_credit_code(value)


def test_credit_code_wrong_length() -> None:
    with pytest.raises(InvalidIdentifier, match="has 18 characters, this one has 17"):
        validate_credit_code(USCC[:-1])


def test_credit_code_letters_where_digits_belong() -> None:
    # The registration authority, kind and region (first 8 characters) are digits.
    code = "9A110000600037341"
    with pytest.raises(InvalidIdentifier, match="invalid unified social credit code"):
        validate_credit_code(code + uscc.calc_check_digit(code))


# --- kinds, masking, generation ----------------------------------------------------------


def test_guess_kind() -> None:
    assert guess_kind(RIC) is SubjectKind.PERSON
    assert guess_kind(USCC) is SubjectKind.COMPANY
    organ = make_credit_code("1", "1", "110000", "000013542")
    assert guess_kind(organ) is SubjectKind.GOVERNMENT
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
    assert validate_resident_id(made) == made
    assert ric.get_birth_date(made) == birth
    assert made[14:17] == f"{sequence % 1000:03d}"
    assert guess_kind(made) is SubjectKind.PERSON


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
