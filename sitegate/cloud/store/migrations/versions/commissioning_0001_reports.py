"""commissioning: the reports of gateways' verification rounds

Revision ID: commissioning_0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "commissioning_0001"
down_revision = None
branch_labels = ("commissioning",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "commissioning_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("gateway_id", sa.String(64), nullable=False, index=True),
        sa.Column("epoch", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("finished_at", sa.String(40), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("meters", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("problems", sa.Integer, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.UniqueConstraint("gateway_id", "epoch", "seq", name="uq_commissioning_event"),
    )


def downgrade() -> None:
    op.drop_table("commissioning_reports")
