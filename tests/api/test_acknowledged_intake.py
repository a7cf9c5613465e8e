"""Acknowledged means committed, for the intake's defences too: a ``credence serve``
process is sent SIGKILL as soon as each write is answered, and the write is in the store
afterwards, on SQLite and PostgreSQL (the pattern of :mod:`tests.api.test_acknowledged`):

* a batch whose records came back ``held`` (the records, their holds, the entry);
* a hold released, and another rejected;
* a backfill run approved, and a batch delivered under it (its delivery row);
* a probable duplicate flagged at registration, merged, the alias ended; another voided.

Then ``credence log verify`` passes on what the killed processes left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock, SystemClock
from credence.identifiers import make_resident_id
from credence.journal import JournalEntry
from credence.ledger.backfill import BackfillDelivery, BackfillRun
from credence.ledger.holds import RecordHold
from credence.ledger.tables import (
    AliasEnd,
    IdentityFlag,
    IdentityResolution,
    IdentityVoid,
    Record,
    SubjectAlias,
)
from credence.translog.verify import verify_log
from tests.api.test_acknowledged import Write, _one, survive_kill_9
from tests.server import Keys, keyed_world

#: More positives than the default rulebook's burst limit (12 in 30 days).
BURST = 13
NAME = "欧阳 Ouyang Xiaodie"

Send = Callable[[httpx.Client, dict[str, Any]], httpx.Response]
Stored = Callable[[Session, dict[str, Any]], bool]


def _identifier(sequence: int) -> str:
    return make_resident_id("110105", date(1972, 9, 9), sequence)


def _count(session: Session, statement: Any) -> int:
    return int(session.scalar(statement) or 0)


def writes(k: Keys) -> list[Write]:
    """Each acknowledged write of the intake's defences, in an order where each can use
    the earlier ones' results (kept in the shared dict)."""
    people = k.world.people
    now = SystemClock().now()
    out: list[Write] = []

    def add(name: str, stored: Stored) -> Callable[[Send], Send]:
        def register(send: Send) -> Send:
            out.append(Write(name, send, stored))
            return send

        return register

    def held_batch_stored(s: Session, st: dict[str, Any]) -> bool:
        ids = st["held_records"]
        holds = select(func.count()).where(
            RecordHold.record_id.in_(select(Record.id).where(Record.public_id.in_(ids))),
            RecordHold.status == "held",
        )
        entry = select(func.count()).where(JournalEntry.kind == "records_held")
        return len(ids) == BURST and _count(s, holds) == BURST and _count(s, entry) >= 1

    @add("held batch", held_batch_stored)
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        body = {
            "records": [
                {
                    "source_ref": f"ack-held-{time.monotonic_ns()}-{i}",
                    "subject_id": people[1].public_id,
                    "record_type": "loan_repaid",
                    "occurred_at": (now - timedelta(days=20 + i)).isoformat(),
                }
                for i in range(BURST)
            ]
        }
        r = c.post("/v1/records", json=body, headers=k.auth("bank"))
        results = r.json()["results"]
        assert {x["status"] for x in results} == {"held"}, results
        st["held_records"] = [x["record_id"] for x in results]
        return r

    def decided(status: str) -> Any:
        return lambda s, st: _one(
            s,
            select(RecordHold.id).where(
                RecordHold.public_id == st[status], RecordHold.status == status
            ),
        )

    for verb, status in (("release", "released"), ("rejection", "rejected")):

        @add(f"hold {status}", decided(status))
        def _(
            c: httpx.Client, st: dict[str, Any], verb: str = verb, status: str = status
        ) -> httpx.Response:
            listed = c.get("/v1/holds", headers=k.auth("reviewer")).json()
            st[status] = listed[0]["hold_id"]
            body = {"reasons": f"{status}: checked against the bank's statements"}
            path = f"/v1/holds/{st[status]}/{verb}"
            return c.post(path, json=body, headers=k.auth("reviewer"))

    @add(
        "backfill approval",
        lambda s, st: _one(s, select(BackfillRun.id).where(BackfillRun.public_id == st["run"])),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        body = {
            "source": "bank",
            "occurred_from": (now - timedelta(days=3000)).isoformat(),
            "occurred_until": (now - timedelta(days=1)).isoformat(),
            "expected_records": 1000,
        }
        r = c.post("/v1/backfill-runs", json=body, headers=k.auth("operator"))
        st["run"] = r.json().get("run_id")
        return r

    @add(
        "backfill delivery",
        lambda s, st: (
            _count(
                s,
                select(BackfillDelivery.exempted)
                .join(BackfillRun, BackfillRun.id == BackfillDelivery.run_id)
                .where(BackfillRun.public_id == st["run"]),
            )
            == BURST
        ),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        body = {
            "backfill_run": st["run"],
            "records": [
                {
                    "source_ref": f"ack-bkf-{time.monotonic_ns()}-{i}",
                    "subject_id": people[2].public_id,
                    "record_type": "loan_repaid",
                    "occurred_at": (now - timedelta(days=400 + i)).isoformat(),
                }
                for i in range(BURST)
            ],
        }
        r = c.post("/v1/records", json=body, headers=k.auth("bank"))
        assert {x["status"] for x in r.json()["results"]} == {"created"}, r.text
        return r

    for n, key in ((1, "merge_flag"), (3, "void_flag")):

        def flagged(s: Session, st: dict[str, Any], key: str = key) -> bool:
            return _one(s, select(IdentityFlag.id).where(IdentityFlag.public_id == st[key]))

        @add(f"flagged registration {n}", flagged)
        def _(c: httpx.Client, st: dict[str, Any], n: int = n, key: str = key) -> httpx.Response:
            for sequence in (n, n + 1):
                body = {
                    "kind": "person",
                    "identifier": _identifier(sequence),
                    "name": NAME,
                    "region": "110105",
                }
                r = c.post("/v1/subjects", json=body, headers=k.auth("registry"))
            st[key] = r.json()["flags"][0]["flag_id"]
            return r

    def resolution(key: str, outcome: str) -> Any:
        return lambda s, st: _one(
            s,
            select(IdentityResolution.id)
            .join(IdentityFlag, IdentityFlag.id == IdentityResolution.flag_id)
            .where(IdentityFlag.public_id == st[key], IdentityResolution.outcome == outcome),
        )

    def merge_stored(s: Session, st: dict[str, Any]) -> bool:
        alias = select(SubjectAlias.id).where(SubjectAlias.public_id == st["alias"])
        return bool(resolution("merge_flag", "merged")(s, st)) and _one(s, alias)

    @add("flag merged", merge_stored)
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        path = f"/v1/identity-flags/{st['merge_flag']}/merge"
        r = c.post(path, json={"reasons": "同一人: one person"}, headers=k.auth("registry"))
        st["alias"] = r.json().get("alias_id")
        return r

    @add(
        "alias ended",
        lambda s, st: _one(
            s,
            select(AliasEnd.id)
            .join(SubjectAlias, SubjectAlias.id == AliasEnd.alias_id)
            .where(SubjectAlias.public_id == st["alias"]),
        ),
    )
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        path = f"/v1/aliases/{st['alias']}/end"
        return c.post(path, json={"reasons": "two people"}, headers=k.auth("registry"))

    def void_stored(s: Session, st: dict[str, Any]) -> bool:
        return bool(resolution("void_flag", "voided")(s, st)) and _one(s, select(IdentityVoid.id))

    @add("flag voided", void_stored)
    def _(c: httpx.Client, st: dict[str, Any]) -> httpx.Response:
        path = f"/v1/identity-flags/{st['void_flag']}/void"
        return c.post(path, json={"reasons": "fictitious"}, headers=k.auth("registry"))

    return out


def test_every_acknowledged_intake_write_survives_kill_9(
    engine: Engine, sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    k = keyed_world(sessions, clock)
    done = survive_kill_9(engine, sessions, tmp_path, writes(k), {})
    assert len(done) == 10, done
    with sessions() as session:
        report = verify_log(session)
    assert report.ok, [p.message for p in report.problems]
