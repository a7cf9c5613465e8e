"""Imports every feature's tables so ``Base.metadata`` is complete (Alembic, tests)."""

from credence.access import tables as access_tables
from credence.db import Base
from credence.decisions import tables as decision_tables
from credence.ledger import tables as ledger_tables
from credence.rulebook import tables as rulebook_tables
from credence.scoring import tables as scoring_tables

metadata = Base.metadata

__all__ = [
    "access_tables",
    "decision_tables",
    "ledger_tables",
    "metadata",
    "rulebook_tables",
    "scoring_tables",
]
