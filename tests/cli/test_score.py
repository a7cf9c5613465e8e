"""``credence score`` says how many subjects changed shown tier, up and down."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from tests.cli.conftest import Invoke
from tests.world import build_world, rec, submit


def test_score_reports_tier_moves_up_and_down(
    cli: Invoke, sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    world = build_world(sessions, clock, people=3)
    first = cli("score")
    assert first.exit_code == 0, first.output
    assert "scored 4 subjects" in first.output
    assert "0 subjects changed tier: 0 up, 0 down; 4 shown a tier for the first time" in (
        first.output
    )

    clock.advance(timedelta(days=1))
    day = clock.now() - timedelta(hours=1)
    falls, rises = world.people[0], world.people[1]
    for source, record in (
        ("court", rec("C-1", falls, "fraud_judgment", day, decision_ref="C-1")),
        ("volunteers", rec("V-1", rises, "heroic_act", day, decision_ref="V-1")),
        ("volunteers", rec("V-2", rises, "heroic_act", day, decision_ref="V-2")),
    ):
        assert submit(sessions, world, source, clock.now(), record) == ["created"]
    second = cli("score")
    assert second.exit_code == 0, second.output
    assert "2 subjects changed tier: 1 up, 1 down" in second.output

    third = cli("score")  # nothing new: nobody moves
    assert "0 subjects changed tier: 0 up, 0 down" in third.output
    assert "first time" not in third.output
