"""Source alerts: the operators' queue of anomalies in what sources report.

Two new tables (``credence.watch.alerts``): ``source_alerts``, covered, one alert per
source, detector and UTC day (unique), with the figures that fired it, written by the
``source_alert_raised`` entry and again by ``source_alert_acknowledged`` and
``source_alert_closed``; and ``source_alert_scans``, not covered, the days each scan
judged (where the next one starts). Only new tables: a release before this one does not
read them.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("detector", sa.String(length=32), nullable=False),
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("median", sa.Float(), nullable=True),
        sa.Column("mad", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("raised_at", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("acknowledged_at", sa.BigInteger(), nullable=True),
        sa.Column("acknowledged_principal_id", sa.Integer(), nullable=True),
        sa.Column("acknowledged_note", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.BigInteger(), nullable=True),
        sa.Column("closed_principal_id", sa.Integer(), nullable=True),
        sa.Column("closed_note", sa.Text(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("salt", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_source_alerts_source_id_sources")
        ),
        sa.ForeignKeyConstraint(
            ["acknowledged_principal_id"],
            ["principals.id"],
            name=op.f("fk_source_alerts_acknowledged_principal_id_principals"),
        ),
        sa.ForeignKeyConstraint(
            ["closed_principal_id"],
            ["principals.id"],
            name=op.f("fk_source_alerts_closed_principal_id_principals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_alerts")),
        sa.UniqueConstraint(
            "source_id", "detector", "day", name=op.f("uq_source_alerts_source_id_detector_day")
        ),
    )
    op.create_table(
        "source_alert_scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.BigInteger(), nullable=False),
        sa.Column("last_day", sa.BigInteger(), nullable=False),
        sa.Column("scanned_at", sa.BigInteger(), nullable=False),
        sa.Column("raised", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_alert_scans")),
    )


def downgrade() -> None:
    op.drop_table("source_alert_scans")
    op.drop_table("source_alerts")
