"""A look-up by national identifier shows on the subject's file, among the inquiries:
the person sees who asked about them. On both stores."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from credence.clock import FixedClock
from tests.client import Api
from tests.world import World, person_id


@pytest.fixture
def setup(api: Api) -> tuple[TestClient, World, dict[str, str]]:
    return api.client, api.world, api.keys


def _call(client: TestClient, key: str, method: str, path: str, **kw: Any) -> Any:
    response = client.request(method, path, headers={"Authorization": f"Bearer {key}"}, **kw)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_lookup_shows_on_the_subjects_file(
    setup: tuple[TestClient, World, dict[str, str]], clock: FixedClock
) -> None:
    client, world, keys = setup
    subject = world.people[0]
    found = _call(
        client, keys["airline"], "POST", "/v1/subjects/lookup", json={"identifier": person_id(0)}
    )
    assert found["subject_id"] == subject.public_id
    file = _call(client, keys["subject"], "GET", f"/v1/subjects/{subject.public_id}/file")
    assert len(file["inquiries"]) == 1
    inquiry = file["inquiries"][0]
    assert inquiry["asked_by"] == "Sky Airlines"
    assert inquiry["service"] == "lookup"
    assert inquiry["outcome"] == "identified"
    assert inquiry["at"].startswith(clock.now().isoformat()[:19])
    # Nobody else's file shows it.
    other = world.people[1]
    other_file = _call(client, keys["other"], "GET", f"/v1/subjects/{other.public_id}/file")
    assert other_file["inquiries"] == []


def test_lookups_and_decisions_are_listed_together_newest_first(
    setup: tuple[TestClient, World, dict[str, str]], clock: FixedClock
) -> None:
    from datetime import timedelta

    client, world, keys = setup
    subject = world.people[0]
    ident = {"identifier": person_id(0)}
    _call(client, keys["bank"], "POST", "/v1/subjects/lookup", json=ident)
    clock.advance(timedelta(minutes=1))
    decision = _call(
        client, keys["airline"], "POST", "/v1/decisions", json={"service": "air_travel", **ident}
    )
    clock.advance(timedelta(minutes=1))
    _call(client, keys["airline"], "POST", "/v1/subjects/lookup", json=ident)
    # A look-up of an identifier nobody holds is on no file.
    missing = client.post(
        "/v1/subjects/lookup",
        headers={"Authorization": f"Bearer {keys['airline']}"},
        json={"identifier": person_id(40)},
    )
    assert missing.status_code == 404
    file = _call(client, keys["subject"], "GET", f"/v1/subjects/{subject.public_id}/file")
    listed = [(i["asked_by"], i["service"]) for i in file["inquiries"]]
    assert listed == [
        ("Sky Airlines", "lookup"),
        ("Sky Airlines", "air_travel"),
        ("Bank", "lookup"),
    ]
    assert file["inquiries"][1]["decision_id"] == decision["decision_id"]
    lookup_ids = {file["inquiries"][0]["decision_id"], file["inquiries"][2]["decision_id"]}
    assert len(lookup_ids) == 2
    assert decision["decision_id"] not in lookup_ids
