"""ocmf: public keys pinned per charger for signed meter values

Revision ID: ocmf_0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ocmf_0001"
down_revision = None
branch_labels = ("ocmf",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocmf_keys",
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("charge_point", sa.String(64), primary_key=True),
        sa.Column("public_key", sa.String(1024), nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("first_session", sa.String(128)),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ocmf_keys")
