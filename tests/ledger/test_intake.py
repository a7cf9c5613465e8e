"""Group commit of concurrent record batches (credence.ledger.intake), on both stores:
each batch gets its own results, in arrival order, only after its group committed, and
one batch's failure stays its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.errors import CredenceError, Forbidden
from credence.journal import JournalEntry
from credence.ledger import intake as intake_module
from credence.ledger import service as ledger
from credence.ledger.intake import Intake
from credence.ledger.schemas import RecordIn, RecordResult
from credence.ledger.tables import Record
from tests.world import World, build_world


@pytest.fixture
def intake(engine: Engine, sessions: sessionmaker[Session], clock: FixedClock) -> Iterator[Intake]:
    made = Intake(engine, sessions, clock)
    yield made
    made.close()


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: FixedClock) -> World:
    return build_world(sessions, clock, people=3)


def batch(world: World, clock: FixedClock, tag: str, n: int = 5) -> list[RecordIn | CredenceError]:
    return [
        RecordIn(
            source_ref=f"{tag}-{i}",
            subject_id=world.people[i % 3].public_id,
            record_type="loan_repaid",
            occurred_at=clock.now() - timedelta(days=1 + i),
        )
        for i in range(n)
    ]


def stored(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count(Record.id))) or 0)


def submit_all(
    intake: Intake, jobs: Sequence[tuple[int | None, list[RecordIn | CredenceError]]]
) -> list[list[RecordResult] | BaseException]:
    """Submit every job from a thread of its own, all at once; the outcomes in order."""
    outcomes: list[Any] = [None] * len(jobs)

    def run(k: int) -> None:
        try:
            outcomes[k] = intake.submit(*jobs[k])
        except BaseException as exc:
            outcomes[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def held_then_released(
    intake: Intake, monkeypatch: pytest.MonkeyPatch, expected: int
) -> threading.Thread:
    """Hold back the intake's leader until ``expected`` batches wait, so they form one
    group: the leader takes its group once it holds the store's write lock, which is
    replaced here (on both stores) by a lock this test holds."""
    lock = threading.Lock()
    monkeypatch.setattr(intake_module, "write_lock", lambda engine: lock)
    lock.acquire()

    def release() -> None:
        deadline = time.monotonic() + 30
        while intake.pending() < expected and time.monotonic() < deadline:
            time.sleep(0.005)
        lock.release()

    releaser = threading.Thread(target=release)
    releaser.start()
    return releaser


def test_concurrent_batches_share_one_commit_and_get_their_own_results(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    world: World,
    intake: Intake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bank = world.sources["bank"].id
    jobs: list[tuple[int | None, list[RecordIn | CredenceError]]] = [
        (bank, batch(world, clock, f"b{k}")) for k in range(6)
    ]
    releaser = held_then_released(intake, monkeypatch, expected=6)
    outcomes = submit_all(intake, jobs)
    releaser.join()
    for (_, records), results in zip(jobs, outcomes, strict=True):
        assert isinstance(results, list)
        assert [r.source_ref for r in results] == [r.source_ref for r in records]  # type: ignore[union-attr]
        assert {r.status for r in results} == {"created"}
    assert (intake.groups, intake.batches) == (1, 6)  # every batch waited: one commit
    assert stored(sessions) == 30
    with sessions() as session:  # one journal entry per record, in the records' order
        ids = session.scalars(select(Record.public_id).order_by(Record.id)).all()
        entries = session.scalars(
            select(JournalEntry.data)
            .where(JournalEntry.kind == "record")
            .order_by(JournalEntry.seq)
        ).all()
    assert [orjson.loads(data)["record"] for data in entries] == list(ids)


def test_a_source_ref_sent_by_two_batches_of_a_group_is_a_duplicate_the_second_time(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    world: World,
    intake: Intake,
) -> None:
    bank = world.sources["bank"].id
    same = batch(world, clock, "same", n=2)
    outcomes = submit_all(intake, [(bank, same), (bank, list(same))])
    statuses = sorted(
        tuple(r.status for r in results) for results in outcomes if isinstance(results, list)
    )
    assert statuses == [("created", "created"), ("duplicate", "duplicate")]
    assert stored(sessions) == 2


def test_one_failing_batch_does_not_fail_the_others_of_its_group(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    intake: Intake,
) -> None:
    real = ledger.submit_records

    def failing(session: Session, **kwargs: Any) -> list[RecordResult]:
        if any(
            isinstance(r, RecordIn) and r.source_ref.startswith("boom") for r in kwargs["records"]
        ):
            raise RuntimeError("the store failed")
        return real(session, **kwargs)

    monkeypatch.setattr(ledger, "submit_records", failing)
    bank = world.sources["bank"].id
    jobs: list[tuple[int | None, list[RecordIn | CredenceError]]] = [
        (bank, batch(world, clock, "ok1")),
        (bank, batch(world, clock, "boom")),
        (None, batch(world, clock, "nosource")),
        (bank, batch(world, clock, "ok2")),
    ]
    releaser = held_then_released(intake, monkeypatch, expected=4)
    outcomes = submit_all(intake, jobs)
    releaser.join()
    assert isinstance(outcomes[0], list)
    assert isinstance(outcomes[3], list)
    assert isinstance(outcomes[1], RuntimeError)
    assert isinstance(outcomes[2], Forbidden)
    assert stored(sessions) == 10  # the two good batches, nothing of the failed one


def test_results_come_back_only_after_the_commit(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    world: World,
    intake: Intake,
) -> None:
    for k in range(3):
        results = intake.submit(world.sources["bank"].id, batch(world, clock, f"seq{k}"))
        assert {r.status for r in results} == {"created"}
        assert stored(sessions) == 5 * (k + 1)  # visible to another session at once
    assert intake.groups == 3
