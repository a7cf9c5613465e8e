"""Look-ups by national identifier are kept on the subject's file: ``lookup_inquiries``.

Only a new table, so this revision works with the release before it (which simply does
not write look-ups down). Instants are BIGINT microseconds (``credence.db.Instant``).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lookup_inquiries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=True),
        sa.Column("party_id", sa.Integer(), nullable=True),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["party_id"],
            ["relying_parties.id"],
            name=op.f("fk_lookup_inquiries_party_id_relying_parties"),
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.id"],
            name=op.f("fk_lookup_inquiries_principal_id_principals"),
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_lookup_inquiries_source_id_sources")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_lookup_inquiries_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lookup_inquiries")),
        sa.UniqueConstraint("public_id", name=op.f("uq_lookup_inquiries_public_id")),
    )
    op.create_index(
        "ix_lookup_inquiries_subject_at", "lookup_inquiries", ["subject_id", "at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_lookup_inquiries_subject_at", table_name="lookup_inquiries")
    op.drop_table("lookup_inquiries")
