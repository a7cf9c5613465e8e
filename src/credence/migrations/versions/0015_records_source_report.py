"""Records by source, type and receipt: each source's last report of a type, as of any
instant, in one index seek.

``credence.ledger.freshness.outages`` asks, per declared source and record type, for the
latest ``received_at`` by an instant (a correlated ``max``): scoring and every decision
read it. The index ``ix_records_source_type_received`` answers it without scanning the
source's records. Only an index: nothing else changes, and a release before this one
simply does not use it.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_records_source_type_received",
        "records",
        ["source_id", "record_type", "received_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_records_source_type_received", table_name="records")
