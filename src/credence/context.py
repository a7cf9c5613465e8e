"""What every service call needs: settings, the store and the one clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import Clock, SystemClock
from credence.db import make_engine, session_factory
from credence.settings import Settings


@dataclass
class Context:
    """Shared, long-lived state of one running Credence (API process or CLI command)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock = field(default_factory=SystemClock)


def open_context(
    db_url: str | None = None, *, clock: Clock | None = None, settings: Settings | None = None
) -> Context:
    """A context on ``db_url`` (default: the settings' URL)."""
    settings = settings or Settings()
    if db_url is not None:
        settings = settings.model_copy(update={"db_url": db_url})
    engine = make_engine(settings.db_url)
    return Context(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        clock=clock or SystemClock(),
    )
