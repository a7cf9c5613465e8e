"""The CLI on the test's database and clock: ``cli`` invokes ``credence …`` in process,
with every command's context opened on the test's engine, sessions and fixed clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from credence.cli import app, terminal
from credence.clock import FixedClock
from credence.context import Context
from credence.settings import Settings

Invoke = Callable[..., Result]


@pytest.fixture
def cli(
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Invoke:
    """``cli("keys", "list", columns=80)``: the result of running the command in a
    terminal that many columns wide (default 80)."""

    def context(db: str | None = None) -> Context:
        return Context(settings=Settings(), engine=engine, sessions=sessions, clock=clock)

    monkeypatch.setattr(terminal, "open_context", context)

    def invoke(*args: str, columns: int = 80) -> Result:
        return CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})

    return invoke
