"""Outage catch-ups: backfill runs intake opens by itself when a source recovers.

Three nullable columns on the covered table ``backfill_runs``
(``credence.ledger.backfill``, ``credence.ledger.catchup``): ``kind`` (``approved`` or
``outage_catch_up``), ``record_types`` (a catch-up's types, comma-separated) and
``outage_since`` (a catch-up's outage). Runs approved before this release keep NULL in
all three (approved runs): the table's encoder leaves a NULL of these columns out of a
row's canonical bytes, so every run logged before keeps its digest. A unique index on
(source, outage, types) makes one catch-up per outage (approved runs, NULL there, never
meet in it).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("backfill_runs", sa.Column("kind", sa.String(length=20), nullable=True))
    op.add_column("backfill_runs", sa.Column("record_types", sa.Text(), nullable=True))
    op.add_column("backfill_runs", sa.Column("outage_since", sa.BigInteger(), nullable=True))
    op.create_index(
        "ux_backfill_runs_catch_up",
        "backfill_runs",
        ["source_id", "outage_since", "record_types"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_backfill_runs_catch_up", table_name="backfill_runs")
    with op.batch_alter_table("backfill_runs") as batch:
        batch.drop_column("outage_since")
        batch.drop_column("record_types")
        batch.drop_column("kind")
