"""billing: room for a from..to period label (2026-01-15..2026-02-14) in invoices

Revision ID: billing_0002
Revises: billing_0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "billing_0002"
down_revision = "billing_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite does not enforce VARCHAR lengths: only PostgreSQL needs the wider column.
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("billing_invoices", "period", type_=sa.String(32),
                        existing_type=sa.String(16), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("billing_invoices", "period", type_=sa.String(16),
                        existing_type=sa.String(32), existing_nullable=False)
