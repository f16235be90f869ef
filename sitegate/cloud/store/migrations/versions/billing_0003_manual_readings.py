"""billing: register readings entered from outside the gateway (hand-noted, utility files)

Revision ID: billing_0003
Revises: billing_0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "billing_0003"
down_revision = "billing_0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "billing_manual_readings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("meter", sa.String(64), nullable=False),
        sa.Column("quantity", sa.String(64), nullable=False),
        sa.Column("ts", TZ, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("entered_by", sa.String(128), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("entered_at", TZ, nullable=False),
        sa.UniqueConstraint("site_id", "meter", "quantity", "ts",
                            name="uq_billing_manual_readings_instant"),
    )


def downgrade() -> None:
    op.drop_table("billing_manual_readings")
