"""Intake defences: records held for review, and approved backfill runs.

Three new covered tables: ``record_holds`` (``credence.ledger.holds``: a record stored
but held at intake, counting nowhere until a reviewer releases it), ``backfill_runs``
and ``backfill_deliveries`` (``credence.ledger.backfill``: the runs an operator approved
for a source, exempt from the volume limits within their scope, and what each batch
delivered under one was exempted). Their rows carry the journal's ``seq`` and ``salt``
from the start, like every covered table since 0008.

One new column, ``records.backfill_run_id`` (nullable, no foreign key: added to a table
with rows): the run that exempted a record. Its encoder leaves a NULL out of a row's
canonical bytes, so every record logged before keeps its digest.

Otherwise only new tables. A release before this one does not read
them; it would count held records (do not roll back a store that has holds).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _journalled() -> list[sa.Column[object]]:
    return [
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("salt", sa.String(length=32), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "record_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("held_at", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.Column("decided_principal_id", sa.Integer(), nullable=True),
        sa.Column("decided_reason", sa.Text(), nullable=True),
        *_journalled(),
        sa.ForeignKeyConstraint(
            ["decided_principal_id"],
            ["principals.id"],
            name=op.f("fk_record_holds_decided_principal_id_principals"),
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_record_holds_record_id_records")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_record_holds_source_id_sources")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_record_holds_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_holds")),
        sa.UniqueConstraint("public_id", name=op.f("uq_record_holds_public_id")),
        sa.UniqueConstraint("record_id", name=op.f("uq_record_holds_record_id")),
    )
    op.create_index("ix_record_holds_subject_id", "record_holds", ["subject_id"], unique=False)
    op.create_index("ix_record_holds_status", "record_holds", ["status"], unique=False)
    op.create_table(
        "backfill_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("occurred_from", sa.BigInteger(), nullable=False),
        sa.Column("occurred_until", sa.BigInteger(), nullable=False),
        sa.Column("expected_records", sa.Integer(), nullable=False),
        sa.Column("approved_principal_id", sa.Integer(), nullable=True),
        sa.Column("approved_at", sa.BigInteger(), nullable=False),
        *_journalled(),
        sa.ForeignKeyConstraint(
            ["approved_principal_id"],
            ["principals.id"],
            name=op.f("fk_backfill_runs_approved_principal_id_principals"),
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_backfill_runs_source_id_sources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill_runs")),
        sa.UniqueConstraint("public_id", name=op.f("uq_backfill_runs_public_id")),
    )
    op.create_index(
        op.f("ix_backfill_runs_source_id"), "backfill_runs", ["source_id"], unique=False
    )
    op.create_table(
        "backfill_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("exempted", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=False),
        *_journalled(),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["backfill_runs.id"],
            name=op.f("fk_backfill_deliveries_run_id_backfill_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill_deliveries")),
    )
    op.create_index(
        op.f("ix_backfill_deliveries_run_id"), "backfill_deliveries", ["run_id"], unique=False
    )

    op.add_column("records", sa.Column("backfill_run_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("records", "backfill_run_id")
    op.drop_index(op.f("ix_backfill_deliveries_run_id"), table_name="backfill_deliveries")
    op.drop_table("backfill_deliveries")
    op.drop_index(op.f("ix_backfill_runs_source_id"), table_name="backfill_runs")
    op.drop_table("backfill_runs")
    op.drop_index("ix_record_holds_status", table_name="record_holds")
    op.drop_index("ix_record_holds_subject_id", table_name="record_holds")
    op.drop_table("record_holds")
