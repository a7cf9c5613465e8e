"""Audited access, shown tiers with hysteresis, and restriction warnings.

Only new tables, so this revision works with the release before it. Instants are BIGINT
microseconds (``credence.db.Instant``).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("principal_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("what", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name=op.f("fk_access_log_principal_id_principals")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_access_log_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    op.create_index("ix_access_log_subject_at", "access_log", ["subject_id", "at"], unique=False)
    op.create_table(
        "subject_tiers",
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=8), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("since", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_subject_tiers_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_subject_tiers")),
    )
    op.create_table(
        "restriction_warnings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("warned_at", sa.BigInteger(), nullable=False),
        sa.Column("effective_at", sa.BigInteger(), nullable=False),
        sa.Column("cleared_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name=op.f("fk_restriction_warnings_subject_id_subjects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restriction_warnings")),
    )
    op.create_index(
        "ix_restriction_warnings_subject_service",
        "restriction_warnings",
        ["subject_id", "service"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_restriction_warnings_subject_service", table_name="restriction_warnings")
    op.drop_table("restriction_warnings")
    op.drop_table("subject_tiers")
    op.drop_index("ix_access_log_subject_at", table_name="access_log")
    op.drop_table("access_log")
