"""A rotated key names the key it replaced, so that revoking either key during the
rotation's overlap cuts both (``credence.access.keys.revoke_key``).

One nullable column, so this revision works with the release before it.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("replaces_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_api_keys_replaces_id_api_keys"), "api_keys", ["replaces_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(op.f("fk_api_keys_replaces_id_api_keys"), type_="foreignkey")
        batch.drop_column("replaces_id")
