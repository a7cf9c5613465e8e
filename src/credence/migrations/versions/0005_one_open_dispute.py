"""One open dispute per record: ``disputes.prior_disputes``, unique with ``record_id``.

A dispute is stored with the number of disputes of its record opened before it; a
unique index on (record_id, prior_disputes) replaces the plain index on record_id (its
first column serves the same look-ups). Two disputes of one record opened at once
counted the same earlier ones: only one of them can be stored. Existing disputes are
numbered in the order they were opened.

With the column's default the release before this one can still open a record's
first dispute, but not a later one (after a ``verified`` answer): it would store a
second 0. Upgrade every server with the database.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "disputes",
        sa.Column("prior_disputes", sa.Integer(), server_default="0", nullable=False),
    )
    op.execute(
        "UPDATE disputes SET prior_disputes = ("
        "SELECT count(*) FROM disputes AS earlier "
        "WHERE earlier.record_id = disputes.record_id "
        "AND (earlier.opened_at < disputes.opened_at "
        "OR (earlier.opened_at = disputes.opened_at AND earlier.id < disputes.id)))"
    )
    op.drop_index("ix_disputes_record_id", table_name="disputes")
    op.create_index(
        "uq_disputes_record_prior", "disputes", ["record_id", "prior_disputes"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_disputes_record_prior", table_name="disputes")
    op.create_index("ix_disputes_record_id", "disputes", ["record_id"], unique=False)
    op.drop_column("disputes", "prior_disputes")
