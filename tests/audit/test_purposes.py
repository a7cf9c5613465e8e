"""Why reviewers and operators read a file: a purpose from a fixed catalogue, shown to
the subject with its plain-language label (and a legal order's reference).

Not the relying parties' purposes (the rulebook's catalogue of what a service may read).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.client import Api, assert_envelope
from tests.world import company_id, person_id

CATALOGUE = ("dispute_handling", "repair_review", "audit", "legal_order")
ORDER = "(2026)Jing0105Zhi-1234"


def _read(api: Api, role: str, what: str, purpose: str | None) -> Any:
    subject_id = api.world.people[0].public_id
    params = {} if purpose is None else {"purpose": purpose}
    return api.call("GET", f"/v1/subjects/{subject_id}/{what}", role, params=params)


@pytest.mark.parametrize("what", ["file", "score"])
def test_a_purpose_outside_the_catalogue_is_refused_naming_the_catalogue(
    api: Api, what: str
) -> None:
    for purpose in ("curiosity", "ticket 17", "AUDIT", "audit please", "legal order"):
        error = assert_envelope(
            _read(api, "operator", what, purpose), 422, "purpose_not_in_catalogue"
        )
        for code in CATALOGUE:
            assert code in error["message"]
        assert purpose not in error["message"]  # whatever was typed is not echoed
        assert {p["code"] for p in error["details"]["allowed"]} == set(CATALOGUE)
    assert_envelope(_read(api, "operator", what, None), 422, "purpose_required")
    # A reviewer declares from the same catalogue.
    if what == "file":
        assert_envelope(_read(api, "reviewer", what, "curiosity"), 422, "purpose_not_in_catalogue")


@pytest.mark.parametrize("what", ["file", "score"])
def test_every_catalogue_purpose_is_accepted(api: Api, what: str) -> None:
    for purpose in ("dispute_handling", "repair_review", "audit", f"legal_order:{ORDER}"):
        response = _read(api, "operator", what, purpose)
        assert response.status_code == 200, (purpose, response.text)
    assert _read(api, "reviewer", "file", "dispute_handling").status_code == 200
    # A court's case number in Chinese characters is printable too.
    assert _read(api, "operator", what, "legal_order:(2026)京0105执1234号").status_code == 200


@pytest.mark.parametrize(
    ("purpose", "code"),
    [
        ("legal_order", "legal_order_reference_required"),
        ("legal_order:", "legal_order_reference_required"),
        ("legal_order:   ", "legal_order_reference_required"),
        (f"legal_order:{'R' * 121}", "legal_order_reference_invalid"),
        ("legal_order:ref\x07bell", "legal_order_reference_invalid"),
        ("legal_order:ref\ttab", "legal_order_reference_invalid"),
        (f"legal_order:{person_id(5)}", "legal_order_reference_invalid"),
        (f"legal_order:order for {person_id(6)}", "legal_order_reference_invalid"),
        # An identifier with its digits spaced out is still one.
        (
            "legal_order:" + " ".join(person_id(7)[i : i + 4] for i in range(0, 18, 4)),
            "legal_order_reference_invalid",
        ),
        ("legal_order:11010519-8001-0112-3X", "legal_order_reference_invalid"),
        # A unified social credit code, grouped.
        (
            "legal_order:" + "-".join(company_id(1)[i : i + 6] for i in range(0, 18, 6)),
            "legal_order_reference_invalid",
        ),
    ],
    ids=[
        "no reference",
        "empty reference",
        "blank reference",
        "too long",
        "control character",
        "tab",
        "an identifier",
        "an identifier in words",
        "an identifier spaced out",
        "identity number shape with hyphens",
        "a credit code grouped",
    ],
)
def test_a_legal_order_needs_a_printable_short_reference_that_is_no_identifier(
    api: Api, purpose: str, code: str
) -> None:
    error = assert_envelope(_read(api, "operator", "file", purpose), 422, code)
    reference = purpose.partition(":")[2].strip()
    if reference:
        assert reference not in error["message"]
        assert reference not in str(error["details"])


def test_the_subject_sees_each_purpose_by_its_label_on_their_file(api: Api) -> None:
    assert _read(api, "reviewer", "file", "dispute_handling").status_code == 200
    assert _read(api, "reviewer", "file", "repair_review").status_code == 200
    assert _read(api, "operator", "score", "audit").status_code == 200
    assert _read(api, "operator", "file", f"legal_order:{ORDER}").status_code == 200
    own = _read(api, "subject", "file", None)
    assert own.status_code == 200
    looked = own.json()["accessed_by"]
    shown = [
        (a["role"], a["purpose"], a["purpose_label"], a["legal_order_reference"])
        for a in looked
        if a["role"] != "subject"
    ]
    assert shown == [
        (
            "operator",
            f"legal_order:{ORDER}",
            f"a legal order (reference {ORDER})",
            ORDER,
        ),
        ("operator", "audit", "an audit of how Credence keeps and uses files", None),
        ("reviewer", "repair_review", "reviewing an application for credit repair", None),
        ("reviewer", "dispute_handling", "handling a dispute about your file", None),
    ]
    # The subject's own read is labelled as such.
    (mine,) = [a for a in looked if a["role"] == "subject"]
    assert (mine["purpose"], mine["purpose_label"]) == ("own file", "you read your own file")
