"""Sources' suspensions: a source's new records held for reviewers while it is suspended.

One new covered table, ``source_suspensions`` (``credence.ledger.suspension``): a
suspension of a source, from ``suspended_at`` until ``reinstated_at`` (null: in force),
with a reason from a catalogue and, for a legal order, its reference. The row is written
by the ``source_suspended`` entry and written again by the ``source_reinstated`` one; it
carries the journal's ``seq`` and ``salt`` from the start, like every covered table
since 0008. Only a new table: a release before this one does not read it (and holds no
source's records).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_suspensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("suspended_at", sa.BigInteger(), nullable=False),
        sa.Column("suspended_principal_id", sa.Integer(), nullable=True),
        sa.Column("reinstated_at", sa.BigInteger(), nullable=True),
        sa.Column("reinstated_principal_id", sa.Integer(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("salt", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_source_suspensions_source_id_sources")
        ),
        sa.ForeignKeyConstraint(
            ["suspended_principal_id"],
            ["principals.id"],
            name=op.f("fk_source_suspensions_suspended_principal_id_principals"),
        ),
        sa.ForeignKeyConstraint(
            ["reinstated_principal_id"],
            ["principals.id"],
            name=op.f("fk_source_suspensions_reinstated_principal_id_principals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_suspensions")),
    )
    op.create_index(
        "ix_source_suspensions_source_id",
        "source_suspensions",
        ["source_id", "suspended_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_source_suspensions_source_id", table_name="source_suspensions")
    op.drop_table("source_suspensions")
