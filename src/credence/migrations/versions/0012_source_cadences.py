"""Sources' cadences: how often each source says it reports each record type.

One new covered table, ``source_cadences`` (``credence.ledger.freshness``): a source's
declaration, per record type, of its cadence and grace in days, in force from
``declared_at`` until a later declaration for the same source and type. Rows are never
changed (a new declaration is a new row), so the status of sources as of any past
instant reads again exactly; they carry the journal's ``seq`` and ``salt`` from the
start, like every covered table since 0008.

Sources registered before this revision have no declaration: none of their types is
watched for outages until the operator declares one (``credence sources cadence``).
Only a new table: a release before this one does not read it.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_cadences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("record_type", sa.String(length=64), nullable=False),
        sa.Column("cadence_days", sa.Integer(), nullable=False),
        sa.Column("grace_days", sa.Integer(), nullable=False),
        sa.Column("declared_at", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("salt", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_source_cadences_source_id_sources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_cadences")),
    )
    op.create_index(
        "ix_source_cadences_source_id",
        "source_cadences",
        ["source_id", "record_type", "declared_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_source_cadences_source_id", table_name="source_cadences")
    op.drop_table("source_cadences")
