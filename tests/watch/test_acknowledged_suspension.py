"""Acknowledged means committed for a source's suspension too: a ``credence serve``
process is sent SIGKILL as soon as each write is answered (the pattern of
:mod:`tests.api.test_acknowledged`), on SQLite and PostgreSQL, and each write is in the
store afterwards: the suspension, a batch the suspension held, the reinstatement. Then
``credence log verify`` passes on what the killed processes left."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock, SystemClock
from credence.ledger.holds import SOURCE_SUSPENDED, RecordHold
from credence.ledger.suspension import SourceSuspension
from credence.ledger.tables import Record
from credence.translog.verify import verify_log
from tests.api.test_acknowledged import Write, survive_kill_9
from tests.server import Keys, keyed_world


def writes(k: Keys) -> list[Write]:
    now = SystemClock().now()

    def suspend(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        body = {"reason": "suspected_bribery"}
        return c.post("/v1/sources/bank/suspension", json=body, headers=k.auth("operator"))

    def suspended(s: Session, st: dict[str, Any]) -> bool:
        return s.scalar(select(SourceSuspension.id)) is not None

    def send(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        ref = st["ref"] = f"ack-susp-{time.monotonic_ns()}"
        body = {
            "records": [
                {
                    "source_ref": ref,
                    "subject_id": k.world.people[1].public_id,
                    "record_type": "loan_repaid",
                    "occurred_at": now.isoformat(),
                }
            ]
        }
        r = c.post("/v1/records", json=body, headers=k.auth("bank"))
        assert [x["status"] for x in r.json()["results"]] == ["held"], r.text
        return r

    def held(s: Session, st: dict[str, Any]) -> bool:
        found = select(func.count()).where(
            RecordHold.record_id == Record.id,
            Record.source_ref == st["ref"],
            RecordHold.cause == SOURCE_SUSPENDED,
        )
        return s.scalar(found) == 1

    def reinstate(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        return c.post("/v1/sources/bank/reinstatement", json={}, headers=k.auth("operator"))

    def reinstated(s: Session, st: dict[str, Any]) -> bool:
        return s.scalar(select(SourceSuspension.reinstated_at)) is not None

    return [
        Write("suspension", suspend, suspended),
        Write("held batch", send, held),
        Write("reinstatement", reinstate, reinstated),
    ]


def test_every_acknowledged_suspension_write_survives_kill_9(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    k = keyed_world(sessions, clock)
    done = survive_kill_9(engine, sessions, tmp_path, writes(k), {})
    assert done == ["suspension", "held batch", "reinstatement"]
    with sessions() as session:
        report = verify_log(session)
    assert report.ok, [p.message for p in report.problems]
