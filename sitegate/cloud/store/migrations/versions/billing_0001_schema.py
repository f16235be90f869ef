"""billing: imported site models, invoices (gap-free numbers per site), invoice events

Revision ID: billing_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "billing_0001"
down_revision = None
branch_labels = ("billing",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "billing_sites",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("imported_at", TZ, nullable=False),
    )
    op.create_table(
        "billing_invoices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reminder_level", sa.Integer, nullable=False),
        sa.Column("issue_date", sa.String(10)),
        sa.Column("due_date", sa.String(10)),
        sa.Column("issued_at", TZ),
        sa.Column("total_due", sa.Text, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("credited_invoice_id", sa.Integer, sa.ForeignKey("billing_invoices.id")),
        sa.Column("borne_by", sa.String(16)),
        sa.UniqueConstraint("site_id", "number", name="uq_billing_invoices_number"),
    )
    op.create_index("ix_billing_invoices_period", "billing_invoices",
                    ["site_id", "period", "account_id"])
    op.create_table(
        "billing_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("invoice_id", sa.Integer, sa.ForeignKey("billing_invoices.id"),
                  nullable=False),
        sa.Column("date", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.Text),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_billing_events_invoice", "billing_events", ["invoice_id"])


def downgrade() -> None:
    op.drop_table("billing_events")
    op.drop_table("billing_invoices")
    op.drop_table("billing_sites")
