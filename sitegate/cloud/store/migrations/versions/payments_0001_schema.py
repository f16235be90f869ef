"""payments: bank files imported and their credits

Revision ID: payments_0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "payments_0001"
down_revision = None
branch_labels = ("payments",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "payments_imports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("imported_at", TZ, nullable=False),
        sa.Column("credits", sa.Integer, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False),
        sa.Column("unmatched", sa.Integer, nullable=False),
    )
    op.create_index("uq_payments_imports_digest", "payments_imports", ["site_id", "digest"],
                    unique=True)
    op.create_table(
        "payments_credits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("import_id", sa.Integer, nullable=False),
        sa.Column("entry", sa.String(120), nullable=False),
        sa.Column("amount", sa.Text, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("booking_date", sa.String(10)),
        sa.Column("reference", sa.String(64)),
        sa.Column("debtor", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("invoice_number", sa.Integer),
        sa.Column("outcome", sa.String(16)),
        sa.Column("balance_after", sa.Text),
        sa.Column("reason", sa.Text),
    )
    op.create_index("uq_payments_credits_key", "payments_credits", ["site_id", "key"],
                    unique=True)


def downgrade() -> None:
    op.drop_table("payments_credits")
    op.drop_table("payments_imports")
