"""expense: accounting periods, their costs and advances, runs, received invoices, the hierarchy

Revision ID: expense_0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "expense_0001"
down_revision = None
branch_labels = ("expense",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "expense_periods",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("period_id", sa.String(24), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "expense_costs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("period_id", sa.String(24), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("amount", sa.Text, nullable=False),
        sa.Column("quantity", sa.Text),
        sa.Column("unit", sa.String(16)),
        sa.Column("invoice_date", sa.String(10)),
        sa.Column("supplier", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("entered_by", sa.String(128), nullable=False),
        sa.Column("entered_at", TZ, nullable=False),
    )
    op.create_table(
        "expense_advances",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("period_id", sa.String(24), primary_key=True),
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("billing_point", sa.String(64), primary_key=True),
        sa.Column("amount", sa.Text, nullable=False),
        sa.Column("entered_at", TZ, nullable=False),
    )
    op.create_table(
        "expense_runs",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("period_id", sa.String(24), primary_key=True),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("consumption", sa.Text, nullable=False),
        sa.Column("run_at", TZ, nullable=False),
    )
    op.create_table(
        "expense_received",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("meter", sa.String(64), nullable=False),
        sa.Column("first", sa.String(10), nullable=False),
        sa.Column("end", sa.String(10), nullable=False),
        sa.Column("amount", sa.Text, nullable=False),
        sa.Column("consumption", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("entered_by", sa.String(128), nullable=False),
        sa.Column("entered_at", TZ, nullable=False),
        sa.UniqueConstraint("site_id", "meter", "first", "end",
                            name="uq_expense_received_period"),
    )
    op.create_table(
        "expense_hierarchy",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    for name in ("expense_hierarchy", "expense_received", "expense_runs",
                 "expense_advances", "expense_costs", "expense_periods"):
        op.drop_table(name)
