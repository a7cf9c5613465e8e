"""Reasons and notifications as codes with parameters (credence.wording).

Four nullable columns: ``inquiries.reason_codes`` (the JSON list of a decision's coded
reasons, ``[{"code", "params"}]``, beside the English ``reasons``), ``notifications.code``
and ``notifications.params`` (a notification's code and its JSON parameters, beside the
English ``text``), and ``restriction_warnings.reason_codes`` (the coded reasons that
caught the subject, on a covered table: its encoder leaves a NULL of this column out of
a row's canonical bytes, so every warning logged before keeps its digest). Rows written
before this release keep NULL: they are shown from their English text, as written.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("inquiries", sa.Column("reason_codes", sa.Text(), nullable=True))
    op.add_column("notifications", sa.Column("code", sa.String(length=64), nullable=True))
    op.add_column("notifications", sa.Column("params", sa.Text(), nullable=True))
    op.add_column("restriction_warnings", sa.Column("reason_codes", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("restriction_warnings") as batch:
        batch.drop_column("reason_codes")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("params")
        batch.drop_column("code")
    with op.batch_alter_table("inquiries") as batch:
        batch.drop_column("reason_codes")
