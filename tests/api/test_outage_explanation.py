"""The score's explanation says why a record stopped decaying, from the API and from
``credence explain``, on SQLite and PostgreSQL: the bank is in outage, so each of its
records says since when and how many of the rulebook's 60 days its age is frozen; past
them, that it decays again and since when; before the outage, nothing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from tests.cli.conftest import Invoke
from tests.cli.conftest import cli as cli  # the fixture, re-exported
from tests.client import Api, open_api
from tests.scoring.outage_world import DAY, MAX_FREEZE, Timeline, stopped_bank


@pytest.fixture
def timeline(sessions: sessionmaker[Session], clock: FixedClock) -> Timeline:
    return stopped_bank(sessions, clock)


def score(api: Api, subject: str, at: datetime) -> dict[str, Any]:
    response = api.get(f"/v1/subjects/{subject}/score", "subject", params={"as_of": at.isoformat()})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bank_records(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in body["contributions"] if c["source"] == "bank" and c["status"] == "counting"]


def test_the_api_s_explanation_says_why_a_record_stopped_decaying(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    tmp_path: Path,
    timeline: Timeline,
) -> None:
    t = timeline
    api = open_api(engine, sessions, clock, t.world, tmp_path)
    subject = t.world.people[0].public_id

    during = bank_records(score(api, subject, t.since + 30 * DAY))
    assert during
    for c in during:
        frozen = c["frozen"]
        assert frozen is not None
        assert frozen["source_name"] == "Bank"
        assert datetime.fromisoformat(frozen["since"]) == t.since
        assert frozen["days"] == pytest.approx(30)
        assert frozen["max_days"] == MAX_FREEZE
        assert frozen["decaying_since"] is None
        assert frozen["text"] == (
            f"reported by Bank, in outage since {t.since:%Y-%m-%d}: its age counts to that "
            f"date (30 of at most {MAX_FREEZE} days)"
        )
    # The score did not move for 30 days of the bank's silence.
    assert score(api, subject, t.since + 30 * DAY)["total"] == score(api, subject, t.since)["total"]

    past = bank_records(score(api, subject, t.limit + 10 * DAY))
    assert past
    for c in past:
        assert datetime.fromisoformat(c["frozen"]["decaying_since"]) == t.limit
        assert c["frozen"]["text"].endswith(
            f"its age was frozen for the maximum {MAX_FREEZE} days, decaying again since "
            f"{t.limit:%Y-%m-%d}"
        )

    before = score(api, subject, t.since - 3 * DAY)
    assert all(c["frozen"] is None for c in before["contributions"])


def test_credence_explain_says_why_a_record_stopped_decaying(
    cli: Invoke, timeline: Timeline
) -> None:
    t = timeline
    subject = t.world.people[0].public_id
    during = cli("explain", subject, "--as-of", (t.since + 30 * DAY).isoformat(), columns=200)
    assert during.exit_code == 0, during.output
    assert "Sources in outage (their records' age stopped)" in during.output
    assert (
        f"2 records: reported by Bank, in outage since {t.since:%Y-%m-%d}: its age counts to "
        f"that date (30 of at most {MAX_FREEZE} days)"
    ) in during.output
    past = cli("explain", subject, "--as-of", (t.limit + 10 * DAY).isoformat(), columns=200)
    assert f"decaying again since {t.limit:%Y-%m-%d}" in past.output
    before = cli("explain", subject, "--as-of", (t.since - 3 * DAY).isoformat(), columns=200)
    assert before.exit_code == 0, before.output
    assert "in outage" not in before.output
    as_json = cli("explain", subject, "--as-of", (t.since + DAY).isoformat(), "--json")
    assert "in outage since" in as_json.output
