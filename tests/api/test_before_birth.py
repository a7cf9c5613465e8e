"""No record about a person before they were born, through HTTP ingestion.

The birth date is the one in the person's resident identity number, a date in China: a
record is refused when the date in China at its ``occurred_at`` is before it. The refusal
is the record's own (HTTP batches store their good records, as for every other
per-record error) and names neither the identifier nor the birth date.
"""

from __future__ import annotations

import logging
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from credence.identifiers import make_resident_id
from credence.ledger.tables import Record, Subject
from tests.client import Api

BORN = date(2024, 3, 10)
IDENTIFIER = make_resident_id("110105", BORN, 7)
#: What the messages and logs must not carry: the identifier and the birth date in any
#: form (nor the day before it, which would give it away).
SECRETS = (IDENTIFIER, "2024-03-10", "20240310", "2024-03-09", "20240309", "2024/03/10")


def _register(api: Api) -> str:
    response = api.call(
        "POST",
        "/v1/subjects",
        "registry",
        json={"kind": "person", "identifier": IDENTIFIER, "name": "Newborn"},
    )
    assert response.status_code == 201, response.text
    subject_id: str = response.json()["subject_id"]
    return subject_id


def _stored(sessions: sessionmaker[Session], subject_id: str) -> set[str]:
    with sessions() as session:
        return set(
            session.scalars(
                select(Record.source_ref)
                .join(Subject, Subject.id == Record.subject_id)
                .where(Subject.public_id == subject_id)
            )
        )


def test_a_record_before_the_subjects_birth_is_refused_in_a_batch(
    api: Api, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    subject_id = _register(api)
    batch = [
        ("on-the-day", {"subject_id": subject_id}, "2024-03-10"),
        ("day-before", {"subject_id": subject_id}, "2024-03-09"),
        # 16:00 UTC on the 9th is midnight on the 10th in China: born already.
        ("china-midnight", {"subject_id": subject_id}, "2024-03-09T16:00:00Z"),
        ("second-before", {"subject_id": subject_id}, "2024-03-09T15:59:59Z"),
        # The same, the subject named by identifier instead of id.
        ("by-identifier-before", {"identifier": IDENTIFIER}, "2024-03-09T23:59:59+08:00"),
        ("by-identifier-after", {"identifier": IDENTIFIER}, "2025-01-01"),
        # Another subject of the batch, born decades before: unaffected.
        ("other-subject", {"subject_id": api.world.people[0].public_id}, "2024-03-01"),
    ]
    response = api.call(
        "POST",
        "/v1/records",
        "bank",
        json={
            "records": [
                {"source_ref": ref, **who, "record_type": "loan_repaid", "occurred_at": at}
                for ref, who, at in batch
            ]
        },
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    outcome = {r["source_ref"]: (r["status"], r["error"]) for r in answer["results"]}
    refused = {ref for ref, (status, _) in outcome.items() if status == "rejected"}
    assert refused == {"day-before", "second-before", "by-identifier-before"}
    for ref in refused:
        error = outcome[ref][1]
        assert error["code"] == "occurred_before_birth"
        assert error["status"] == 422
        assert "occurred before the subject was born" in error["message"]
    assert (answer["created"], answer["rejected"]) == (4, 3)
    # Per record, as every other per-record error of an HTTP batch: the rest is stored.
    assert _stored(sessions, subject_id) == {"on-the-day", "china-midnight", "by-identifier-after"}
    for secret in SECRETS:
        assert secret not in response.text
        assert secret not in caplog.text


def test_a_single_record_before_birth_is_refused_and_one_on_the_birth_date_accepted(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    subject_id = _register(api)

    def send(ref: str, at: str) -> dict[str, object]:
        record = {
            "source_ref": ref,
            "subject_id": subject_id,
            "record_type": "loan_repaid",
            "occurred_at": at,
        }
        response = api.call("POST", "/v1/records", "bank", json={"records": [record]})
        assert response.status_code == 200, response.text
        for secret in SECRETS:
            assert secret not in response.text
        result: dict[str, object] = response.json()["results"][0]
        return result

    before = send("alone-before", "2024-03-09T12:00:00Z")
    assert before["status"] == "rejected"
    assert before["source_ref"] == "alone-before"
    assert before["error"]["code"] == "occurred_before_birth"  # type: ignore[index]
    assert send("alone-on-the-day", "2024-03-10T00:00:00Z")["status"] == "created"
    assert _stored(sessions, subject_id) == {"alone-on-the-day"}
