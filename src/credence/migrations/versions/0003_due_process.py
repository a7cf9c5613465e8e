"""Due process: disputes, their answers and lapses, statements, repairs, notifications.

Only new tables: nothing existing changes, so this revision works with the release
before it (which simply does not read them). Instants are BIGINT microseconds
(``credence.db.Instant``).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disputes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("new_information", sa.Text(), nullable=True),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=False),
        sa.Column("rulebook_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_disputes_record_id_records")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_disputes_source_id_sources")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_disputes_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
        sa.UniqueConstraint("public_id", name=op.f("uq_disputes_public_id")),
    )
    op.create_index("ix_disputes_record_id", "disputes", ["record_id"], unique=False)
    op.create_index(
        "ix_disputes_source_deadline", "disputes", ["source_id", "deadline"], unique=False
    )
    op.create_index("ix_disputes_subject_id", "disputes", ["subject_id"], unique=False)
    op.create_table(
        "dispute_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dispute_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("answered_at", sa.BigInteger(), nullable=False),
        sa.Column("answered_by", sa.String(length=16), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=True),
        sa.Column("corrected_record_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["corrected_record_id"],
            ["records.id"],
            name=op.f("fk_dispute_answers_corrected_record_id_records"),
        ),
        sa.ForeignKeyConstraint(
            ["dispute_id"], ["disputes.id"], name=op.f("fk_dispute_answers_dispute_id_disputes")
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.id"],
            name=op.f("fk_dispute_answers_principal_id_principals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute_answers")),
        sa.UniqueConstraint("dispute_id", name=op.f("uq_dispute_answers_dispute_id")),
    )
    op.create_table(
        "dispute_lapses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dispute_id", sa.Integer(), nullable=False),
        sa.Column("lapsed_at", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dispute_id"], ["disputes.id"], name=op.f("fk_dispute_lapses_dispute_id_disputes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute_lapses")),
        sa.UniqueConstraint("dispute_id", name=op.f("uq_dispute_lapses_dispute_id")),
    )
    op.create_table(
        "statements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_statements_record_id_records")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_statements_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statements")),
    )
    op.create_index("ix_statements_record_at", "statements", ["record_id", "at"], unique=False)
    op.create_table(
        "repairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("commitment", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("applied_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_repairs_record_id_records")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_repairs_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repairs")),
        sa.UniqueConstraint("public_id", name=op.f("uq_repairs_public_id")),
    )
    op.create_index("ix_repairs_record_id", "repairs", ["record_id"], unique=False)
    op.create_index("ix_repairs_subject_id", "repairs", ["subject_id"], unique=False)
    op.create_table(
        "repair_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repair_id", sa.Integer(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.BigInteger(), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.id"],
            name=op.f("fk_repair_decisions_principal_id_principals"),
        ),
        sa.ForeignKeyConstraint(
            ["repair_id"], ["repairs.id"], name=op.f("fk_repair_decisions_repair_id_repairs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repair_decisions")),
        sa.UniqueConstraint("repair_id", name=op.f("uq_repair_decisions_repair_id")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_notifications_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(
        "ix_notifications_delivered_at", "notifications", ["delivered_at"], unique=False
    )
    op.create_index(
        "ix_notifications_subject_at", "notifications", ["subject_id", "at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_subject_at", table_name="notifications")
    op.drop_index("ix_notifications_delivered_at", table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("repair_decisions")
    op.drop_index("ix_repairs_subject_id", table_name="repairs")
    op.drop_index("ix_repairs_record_id", table_name="repairs")
    op.drop_table("repairs")
    op.drop_index("ix_statements_record_at", table_name="statements")
    op.drop_table("statements")
    op.drop_table("dispute_lapses")
    op.drop_table("dispute_answers")
    op.drop_index("ix_disputes_subject_id", table_name="disputes")
    op.drop_index("ix_disputes_source_deadline", table_name="disputes")
    op.drop_index("ix_disputes_record_id", table_name="disputes")
    op.drop_table("disputes")
