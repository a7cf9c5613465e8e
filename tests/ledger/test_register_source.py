"""A source's code, name and kind with a NUL character are refused with a clear error on
both stores (PostgreSQL cannot store one in text; SQLite would), nothing stored: the
command line registers sources without the API's request guard."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import FixedClock
from credence.errors import InvalidInput
from credence.ledger import registry
from credence.ledger.tables import Source
from credence.rulebook import store
from tests.world import World


@pytest.mark.parametrize("field", ["code", "name", "kind"])
def test_a_nul_in_a_sources_text_is_refused(
    sessions: sessionmaker[Session], clock: FixedClock, world: World, field: str
) -> None:
    values = {"code": "night_bank", "name": "Night Bank", "kind": "bank"}
    values[field] = values[field][:3] + "\x00" + values[field][3:]
    with sessions() as session:
        before = session.scalar(select(func.count()).select_from(Source))
        with pytest.raises(InvalidInput) as refused:
            registry.register_source(
                session,
                code=values["code"],
                name=values["name"],
                kind=values["kind"],
                record_types=["loan_repaid"],
                rulebook=store.in_force(session, clock.now()).rulebook,
                at=clock.now(),
            )
        session.rollback()
        assert refused.value.code == "invalid_character"
        assert field in str(refused.value)
        assert session.scalar(select(func.count()).select_from(Source)) == before
