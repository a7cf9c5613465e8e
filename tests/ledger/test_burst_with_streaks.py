"""The burst limit for subjects whose batch carries a streak type, on SQLite and
PostgreSQL: intake counts their stored positives in the same look-up that checks the
streaks' spacing, and the count must be the burst limit's own (every positive type from
the source in the window, no backfill run's, not another source's, not the window's
outside), so a batch crosses the line exactly where it would without a streak in it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.ledger.tables import Subject
from tests.world import World, history_run, rec, submit


def test_a_streak_in_the_batch_does_not_change_the_burst_count(
    sessions: sessionmaker[Session], clock: FixedClock, world: World
) -> None:
    p, q, r = world.people[0], world.people[1], world.people[2]
    now = clock.now()

    def repaid(prefix: str, who: Subject, n: int, back: int = 1) -> list[dict[str, object]]:
        return [
            rec(f"{prefix}-{i}", who, "loan_repaid", now - timedelta(days=i + back))
            for i in range(n)
        ]

    # Outside the window (received 40 days ago): not counted.
    early = now - timedelta(days=40)
    assert set(submit(sessions, world, "bank", early, *repaid("OLD", p, 5, back=41))) == {"created"}
    # In the window: p has 10 repayments and a streak from the bank (11 positives), q
    # 10 repayments; another source's positives about p do not count.
    streak = rec("S-p", p, "on_time_payment_streak", now - timedelta(days=400))
    assert set(submit(sessions, world, "bank", now, *repaid("A", p, 10), streak)) == {"created"}
    assert set(submit(sessions, world, "bank", now, *repaid("B", q, 10))) == {"created"}
    assert set(
        submit(
            sessions,
            world,
            "volunteers",
            now,
            *[
                rec(f"V-{i}", p, "volunteer_service", now - timedelta(days=i + 1), quantity=1)
                for i in range(3)
            ],
        )
    ) == {"created"}
    # An approved backfill run's records about r are not counted: 12 of them, then r's
    # streak and one repayment are 2 live positives.
    run = history_run(sessions, world, "bank", now, years=1)
    history = [rec(f"H-{i}", r, "loan_repaid", now - timedelta(days=i + 2)) for i in range(12)]
    assert set(submit(sessions, world, "bank", now, *history, backfill_run=run)) == {"created"}

    later = now + timedelta(days=1)
    # p: 11 stored + a streak (a year after the stored one) + a repayment = 13: held whole.
    # q: 10 stored + a streak + a repayment = 12: the limit, taken. r: 2, taken.
    batch = [
        rec("S-p2", p, "on_time_payment_streak", now - timedelta(days=1)),
        rec("A-x", p, "loan_repaid", now - timedelta(days=1)),
        rec("S-q", q, "on_time_payment_streak", now - timedelta(days=1)),
        rec("B-x", q, "loan_repaid", now - timedelta(days=1)),
        rec("S-r", r, "on_time_payment_streak", now - timedelta(days=1)),
        rec("H-x", r, "loan_repaid", now - timedelta(days=1)),
    ]
    assert submit(sessions, world, "bank", later, *batch) == [
        "held",
        "held",
        "created",
        "created",
        "created",
        "created",
    ]
