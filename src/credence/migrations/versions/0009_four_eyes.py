"""Four eyes on what lifts a sanction: changes held until a second reviewer confirms.

One new covered table, ``pending_changes`` (``credence.ledger.lifting``): a retraction,
or a dispute answered deleted or corrected, of a record that restricts someone, held
until a reviewer other than whoever asked confirms or refuses it. Its rows carry the
journal's ``seq`` and ``salt`` from the start, like every covered table since 0008.

Only a new table: nothing existing changes, so this revision works with the release
before it (which simply does not read it, and lifts sanctions at once, as before).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=True),
        sa.Column("requested_by", sa.String(length=16), nullable=False),
        sa.Column("requested_principal_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("correction", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.Column("decided_principal_id", sa.Integer(), nullable=True),
        sa.Column("decided_reason", sa.Text(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("salt", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["decided_principal_id"],
            ["principals.id"],
            name=op.f("fk_pending_changes_decided_principal_id_principals"),
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_pending_changes_record_id_records")
        ),
        sa.ForeignKeyConstraint(
            ["requested_principal_id"],
            ["principals.id"],
            name=op.f("fk_pending_changes_requested_principal_id_principals"),
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_pending_changes_source_id_sources")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_pending_changes_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_changes")),
        sa.UniqueConstraint("public_id", name=op.f("uq_pending_changes_public_id")),
    )
    op.create_index(
        "uq_pending_changes_record_attempt",
        "pending_changes",
        ["record_id", "attempt"],
        unique=True,
    )
    op.create_index("ix_pending_changes_status", "pending_changes", ["status"], unique=False)
    op.create_index(
        "ix_pending_changes_subject_id", "pending_changes", ["subject_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_pending_changes_subject_id", table_name="pending_changes")
    op.drop_index("ix_pending_changes_status", table_name="pending_changes")
    op.drop_index("uq_pending_changes_record_attempt", table_name="pending_changes")
    op.drop_table("pending_changes")
