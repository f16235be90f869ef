"""stays: accommodation setup, reservations and unit meter readings

Revision ID: stays_0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "stays_0001"
down_revision = None
branch_labels = ("stays",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stays_setups",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("setup", sa.Text, nullable=False),
        sa.Column("imported_at", TZ, nullable=False),
    )
    op.create_table(
        "stays_reservations",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("parent_id", sa.String(64)),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("checked_out_on", sa.String(10)),
        sa.Column("first_day", sa.String(10)),
        sa.Column("last_day", sa.String(10)),
        sa.Column("invoice_number", sa.Integer),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_stays_reservations_unit", "stays_reservations",
                    ["site_id", "unit_id"])
    op.create_table(
        "stays_readings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("meter", sa.String(64), nullable=False),
        sa.Column("ts", TZ, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("is_start", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("entered_by", sa.String(128), nullable=False),
        sa.Column("entered_at", TZ, nullable=False),
    )
    op.create_index("uq_stays_readings_instant", "stays_readings",
                    ["site_id", "unit_id", "meter", "ts"], unique=True)


def downgrade() -> None:
    op.drop_table("stays_readings")
    op.drop_table("stays_reservations")
    op.drop_table("stays_setups")
