"""Identities: organisations' founding dates, probable duplicates and what the identity
authority found of them.

``subjects`` gains ``founded_on`` (nullable; an organisation's founding date) and an
index on ``(name, region)``, where registration looks for probable duplicates. The
column is left out of a row's canonical bytes while it is NULL (the encoder's
``added``), so every subject logged before this revision keeps its digest.

Five new covered tables (``credence.ledger.identities``): ``identity_flags`` (a subject
registered but flagged as a probable duplicate of another), ``identity_resolutions``
(the identity authority's answer to a flag: distinct, merged or voided),
``subject_aliases`` and ``alias_ends`` (a merge, and its undoing), ``identity_voids`` (a
subject voided as fictitious). Their rows carry the journal's ``seq`` and ``salt`` from
the start, like every covered table since 0008.

A release before this one does not read the new tables (it would neither flag
duplicates nor refuse decisions about a voided subject) and ignores ``founded_on``.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _journalled() -> list[sa.Column[object]]:
    return [
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("salt", sa.String(length=32), nullable=True),
    ]


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    op.add_column("subjects", sa.Column("founded_on", sa.Date(), nullable=True))
    op.create_index("ix_subjects_name_region", "subjects", ["name", "region"], unique=False)

    op.create_table(
        "identity_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("other_subject_id", sa.Integer(), nullable=False),
        sa.Column("test", sa.String(length=32), nullable=False),
        sa.Column("flagged_at", sa.BigInteger(), nullable=False),
        *_journalled(),
        _fk("identity_flags", "other_subject_id", "subjects"),
        _fk("identity_flags", "subject_id", "subjects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_flags")),
        sa.UniqueConstraint("public_id", name=op.f("uq_identity_flags_public_id")),
        sa.UniqueConstraint(
            "subject_id",
            "other_subject_id",
            name=op.f("uq_identity_flags_subject_id_other_subject_id"),
        ),
    )
    op.create_index(
        "ix_identity_flags_other_subject_id",
        "identity_flags",
        ["other_subject_id"],
        unique=False,
    )

    op.create_table(
        "identity_resolutions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=False),
        *_journalled(),
        _fk("identity_resolutions", "flag_id", "identity_flags"),
        _fk("identity_resolutions", "principal_id", "principals"),
        _fk("identity_resolutions", "source_id", "sources"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_resolutions")),
        sa.UniqueConstraint("flag_id", name=op.f("uq_identity_resolutions_flag_id")),
        sa.UniqueConstraint("public_id", name=op.f("uq_identity_resolutions_public_id")),
    )

    op.create_table(
        "subject_aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("resolution_id", sa.Integer(), nullable=False),
        sa.Column("alias_subject_id", sa.Integer(), nullable=False),
        sa.Column("into_subject_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("merged_at", sa.BigInteger(), nullable=False),
        *_journalled(),
        _fk("subject_aliases", "alias_subject_id", "subjects"),
        _fk("subject_aliases", "into_subject_id", "subjects"),
        _fk("subject_aliases", "resolution_id", "identity_resolutions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_aliases")),
        sa.UniqueConstraint(
            "alias_subject_id",
            "attempt",
            name=op.f("uq_subject_aliases_alias_subject_id_attempt"),
        ),
        sa.UniqueConstraint("public_id", name=op.f("uq_subject_aliases_public_id")),
        sa.UniqueConstraint("resolution_id", name=op.f("uq_subject_aliases_resolution_id")),
    )
    op.create_index(
        "ix_subject_aliases_into_subject_id",
        "subject_aliases",
        ["into_subject_id"],
        unique=False,
    )

    op.create_table(
        "alias_ends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=False),
        *_journalled(),
        _fk("alias_ends", "alias_id", "subject_aliases"),
        _fk("alias_ends", "principal_id", "principals"),
        _fk("alias_ends", "source_id", "sources"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_ends")),
        sa.UniqueConstraint("alias_id", name=op.f("uq_alias_ends_alias_id")),
    )

    op.create_table(
        "identity_voids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("resolution_id", sa.Integer(), nullable=False),
        sa.Column("voided_at", sa.BigInteger(), nullable=False),
        *_journalled(),
        _fk("identity_voids", "resolution_id", "identity_resolutions"),
        _fk("identity_voids", "subject_id", "subjects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_voids")),
        sa.UniqueConstraint("resolution_id", name=op.f("uq_identity_voids_resolution_id")),
        sa.UniqueConstraint("subject_id", name=op.f("uq_identity_voids_subject_id")),
    )


def downgrade() -> None:
    op.drop_table("identity_voids")
    op.drop_table("alias_ends")
    op.drop_index("ix_subject_aliases_into_subject_id", table_name="subject_aliases")
    op.drop_table("subject_aliases")
    op.drop_table("identity_resolutions")
    op.drop_index("ix_identity_flags_other_subject_id", table_name="identity_flags")
    op.drop_table("identity_flags")
    op.drop_index("ix_subjects_name_region", table_name="subjects")
    with op.batch_alter_table("subjects") as batch:
        batch.drop_column("founded_on")
