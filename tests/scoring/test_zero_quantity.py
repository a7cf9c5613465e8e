"""Zero means zero: a record with quantity 0 counts 0 points and shows as counting until
its retention ends, like any other record, not as expired the day after it happened.

Checked through the scoring function (on both stores) and through the subject's score
explanation in the API.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from credence.access.keys import create_principal, issue_key
from credence.access.policy import Role
from credence.api.app import create_app
from credence.clock import FixedClock
from credence.context import Context
from credence.settings import Settings
from tests.due_process import contribution, record_id, score_at
from tests.world import World, build_world, rec, submit

#: volunteer_service: points per hour of service; its retention in the default rulebook.
TYPE = "volunteer_service"
RETENTION = timedelta(days=730)


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    return build_world(sessions, clock)


def _submit_zero_and_one(
    sessions: sessionmaker[Session], world: World, clock: FixedClock
) -> tuple[str, str]:
    """A record of 0 hours and one of 1 hour, on the first person's file, happened now."""
    person = world.people[0]
    now = clock.now()
    statuses = submit(
        sessions,
        world,
        "volunteers",
        now,
        rec("ZERO", person, TYPE, now, quantity=0),
        rec("ONE", person, TYPE, now, quantity=1),
    )
    assert statuses == ["created", "created"]
    return record_id(sessions, "ZERO"), record_id(sessions, "ONE")


def test_a_zero_quantity_record_counts_zero_points_until_its_retention_ends(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    zero, one = _submit_zero_and_one(sessions, world, clock)
    person, start = world.people[0], clock.now()
    for later in (timedelta(days=1), timedelta(days=400), RETENTION - timedelta(seconds=1)):
        score = score_at(sessions, world, person, start + later)
        found = contribution(score, zero)
        assert found.status == "counting", later
        assert found.points == 0.0
        assert found.weight == 0.0
        assert contribution(score, one).status == "counting"
        assert contribution(score, one).points > 0.0
        # It adds nothing, and no reason code is made of it.
        assert score.total == pytest.approx(score.base + contribution(score, one).points)
        assert all(r.points != 0.0 for r in score.reasons)
    ended = score_at(sessions, world, person, start + RETENTION)
    assert contribution(ended, zero).status == "expired"
    assert contribution(ended, one).status == "expired"
    assert contribution(ended, one).points == 0.0


def test_the_explanation_shows_a_zero_quantity_record_as_counting(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    world: World,
    tmp_path: Path,
) -> None:
    person = world.people[0]
    with sessions.begin() as session:
        links = {
            "volunteers": (Role.SOURCE, {"source_id": world.sources["volunteers"].id}),
            "subject": (Role.SUBJECT, {"subject_id": person.id}),
        }
        keys = {
            name: issue_key(
                session,
                principal=create_principal(session, role=role, name=name, clock=clock, **link),
                clock=clock,
            )
            for name, (role, link) in links.items()
        }
    settings = Settings(db_url=str(engine.url), log_key_path=str(tmp_path / "log.key"))
    ctx = Context(settings=settings, engine=engine, sessions=sessions, clock=clock)
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        sent = client.post(
            "/v1/records",
            headers={"Authorization": f"Bearer {keys['volunteers']}"},
            json={
                "records": [
                    {
                        "source_ref": "ZERO",
                        "subject_id": person.public_id,
                        "record_type": TYPE,
                        "occurred_at": clock.now().isoformat(),
                        "quantity": 0,
                    }
                ]
            },
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["created"] == 1, sent.text
        [result] = sent.json()["results"]

        def shown() -> dict[str, object]:
            response = client.get(
                f"/v1/subjects/{person.public_id}/score",
                headers={"Authorization": f"Bearer {keys['subject']}"},
            )
            assert response.status_code == 200, response.text
            [found] = [
                c for c in response.json()["contributions"] if c["record_id"] == result["record_id"]
            ]
            assert isinstance(found, dict)
            return found

        clock.advance(timedelta(days=1))
        day_after = shown()
        assert (day_after["status"], day_after["points"], day_after["quantity"]) == (
            "counting",
            0.0,
            0.0,
        )
        clock.advance(RETENTION - timedelta(days=2))
        assert shown()["status"] == "counting"
        clock.advance(timedelta(days=1))
        assert shown()["status"] == "expired"
