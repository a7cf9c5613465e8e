"""Transparency log: signed checkpoints, the log's leaf hashes, journal rows by subject.

Only additions: two new tables and one index on ``journal``, so this revision works with
the release before it (which simply does not read them). ``log_leaves.leaf_index`` is
INTEGER PRIMARY KEY on SQLite and BIGINT on PostgreSQL, like ``journal.seq``.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_note", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "log_leaves",
        sa.Column(
            "leaf_index",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_log_leaves")),
        sa.UniqueConstraint("seq", name=op.f("uq_log_leaves_seq")),
    )
    op.create_index("ix_journal_subject_id", "journal", ["subject_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_journal_subject_id", table_name="journal")
    op.drop_table("log_leaves")
    op.drop_table("checkpoints")
