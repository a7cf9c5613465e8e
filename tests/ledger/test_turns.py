"""Intake's turns (:mod:`credence.ledger.turns`) on both stores, from separate
connections as two processes would hold them: a turn is exclusive until its transaction
ends, turns of other sources do not wait on each other (PostgreSQL), and a deadlock over
turns is one PostgreSQL ends and :func:`~credence.ledger.turns.is_deadlock` recognises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session, sessionmaker

from credence.ledger import turns

#: Long enough for a waiter to have reached the lock it waits on.
SETTLE = 0.5


def _in_thread(work: Callable[[], None]) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def test_a_sources_turn_waits_for_the_transaction_holding_it(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as holder:
        turns.take_sources(holder, [7])

        def second() -> None:
            with sessions() as other:
                turns.take_sources(other, [7])
                other.rollback()

        thread, done = _in_thread(second)
        assert not done.wait(SETTLE), "a second transaction took a turn already held"
        holder.commit()
        thread.join(30)
        assert done.is_set()


@pytest.mark.postgresql
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_other_sources_turns_do_not_wait(sessions: sessionmaker[Session]) -> None:
    with sessions() as holder:
        turns.take_sources(holder, [7])
        turns.take_subjects(holder, [7])  # a subject 7 is not source 7

        def other_source() -> None:
            with sessions() as other:
                turns.take_sources(other, [8])
                turns.take_subjects(other, [8])
                other.rollback()

        thread, done = _in_thread(other_source)
        thread.join(30)
        assert done.is_set()
        holder.rollback()


@pytest.mark.postgresql
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_deadlock_over_turns_is_recognised(sessions: sessionmaker[Session]) -> None:
    errors: list[BaseException] = []
    both = threading.Barrier(2)

    def writer(first: int, then: int) -> None:
        with sessions() as session:
            try:
                turns.take_subjects(session, [first])
                both.wait()
                turns.take_subjects(session, [then])
            except Exception as error:
                errors.append(error)
            finally:
                session.rollback()

    threads = [threading.Thread(target=writer, args=pair) for pair in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(errors) == 1, errors
    assert turns.is_deadlock(errors[0])
    assert not turns.is_deadlock(ValueError("not a deadlock"))
