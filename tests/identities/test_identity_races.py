"""Resolutions at once: one flag, answered by several requests released together, is
resolved once (the others get what a resend gets, or 409 naming the answer), on SQLite
and PostgreSQL; and no name or identifier reaches a log on the way."""

from __future__ import annotations

from collections import Counter
from datetime import date

import httpx
from sqlalchemy import func, select

from credence.identifiers import make_resident_id
from credence.journal import JournalEntry
from credence.ledger.tables import IdentityResolution, IdentityVoid, SubjectAlias
from tests.api.test_races import CONTENDERS, Service, count, race
from tests.api.test_races import service as service
from tests.logscan import PersonalDataGuard
from tests.logscan import personal_data_guard as personal_data_guard

NAME = "欧阳 Ouyang Zhenbai"


def flagged(service: Service, first: int, second: int) -> str:
    """Two registrations alike: the second one's flag."""
    ids = []
    for sequence in (first, second):
        identifier = make_resident_id("110105", date(1971, 2, 3), sequence)
        ids.append(identifier)
        body = {"kind": "person", "identifier": identifier, "name": NAME, "region": "110105"}
        response = service.call("POST", "/v1/subjects", "registry", json=body)
        assert response.status_code == 201, response.text
    reply = response.json()
    assert reply["flagged"] is True
    return str(reply["flags"][0]["flag_id"])


def test_one_flag_merged_at_once_is_merged_once(
    personal_data_guard: PersonalDataGuard, service: Service
) -> None:
    personal_data_guard.protect(NAME, "Zhenbai", make_resident_id("110105", date(1971, 2, 3), 11))
    flag = flagged(service, 11, 12)
    path = f"/v1/identity-flags/{flag}/merge"

    def merge(client: httpx.Client) -> httpx.Response:
        return service.call("POST", path, "registry", client=client, json={"reasons": "同一人"})

    responses = race(service, "identity_resolutions", merge)
    resend = service.call("POST", path, "registry", json={"reasons": "again"})
    assert resend.status_code == 200, resend.text
    assert [r.status_code for r in responses] == [200] * CONTENDERS
    assert all(r.json() == resend.json() for r in responses)
    engine = service.engine
    assert count(engine, select(func.count()).select_from(IdentityResolution)) == 1
    assert count(engine, select(func.count()).select_from(SubjectAlias)) == 1
    merged = select(func.count()).where(JournalEntry.kind == "subjects_merged")
    assert count(engine, merged) == 1


def test_different_answers_at_once_give_one_answer(
    personal_data_guard: PersonalDataGuard, service: Service
) -> None:
    personal_data_guard.protect(NAME, "Zhenbai", make_resident_id("110105", date(1971, 2, 3), 21))
    flag = flagged(service, 21, 22)
    verbs = iter(["void", "distinct", "merge", "void", "distinct"])
    chosen = {}

    def answer(client: httpx.Client) -> httpx.Response:
        verb = next(verbs)
        response = service.call(
            "POST",
            f"/v1/identity-flags/{flag}/{verb}",
            "registry",
            client=client,
            json={"reasons": "checked"},
        )
        chosen[id(response)] = verb
        return response

    responses = race(service, "identity_resolutions", answer)
    engine = service.engine
    assert count(engine, select(func.count()).select_from(IdentityResolution)) == 1
    with engine.connect() as conn:
        outcome = conn.scalar(select(IdentityResolution.outcome))
    verb = {"voided": "void", "distinct": "distinct", "merged": "merge"}[str(outcome)]
    statuses = Counter((chosen[id(r)] == verb, r.status_code) for r in responses)
    # Those who asked for the outcome stored get it; the others 409 naming it.
    assert set(statuses) <= {(True, 200), (False, 409)}
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "flag_resolved"
            assert r.json()["error"]["details"]["outcome"] == outcome
    voids = count(engine, select(func.count()).select_from(IdentityVoid))
    aliases = count(engine, select(func.count()).select_from(SubjectAlias))
    assert (voids, aliases) == (int(outcome == "voided"), int(outcome == "merged"))
