"""Imports every feature's tables so ``Base.metadata`` is complete (Alembic, tests)."""

from credence.access import sessions as session_tables
from credence.access import tables as access_tables
from credence.audit import tables as audit_tables
from credence.db import Base
from credence.decisions import tables as decision_tables
from credence.disputes import tables as dispute_tables
from credence.journal import tables as journal_tables
from credence.ledger import backfill as backfill_tables
from credence.ledger import holds as hold_tables
from credence.ledger import lifting as lifting_tables
from credence.ledger import suspension as suspension_tables
from credence.ledger import tables as ledger_tables
from credence.notifications import tables as notification_tables
from credence.rulebook import tables as rulebook_tables
from credence.scoring import tables as scoring_tables
from credence.tiers import tables as tier_tables
from credence.translog import tables as translog_tables
from credence.watch import alerts as alert_tables

metadata = Base.metadata

__all__ = [
    "access_tables",
    "alert_tables",
    "audit_tables",
    "backfill_tables",
    "decision_tables",
    "dispute_tables",
    "hold_tables",
    "journal_tables",
    "ledger_tables",
    "lifting_tables",
    "metadata",
    "notification_tables",
    "rulebook_tables",
    "scoring_tables",
    "session_tables",
    "suspension_tables",
    "tier_tables",
    "translog_tables",
]
