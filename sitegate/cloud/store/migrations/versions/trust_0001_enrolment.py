"""trust: claim tokens, enrolled gateway identities, issued client certificates

Revision ID: trust_0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "trust_0001"
down_revision = None
branch_labels = ("trust",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "claim_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("used_at", TZ),
        sa.Column("used_by", sa.String(64)),
        sa.Column("used_key", sa.String(64)),
    )
    op.create_table(
        "gateway_identities",
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("enrolled_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ),
    )
    op.create_table(
        "gateway_certs",
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("issued_at", TZ, nullable=False),
        sa.Column("not_after", TZ, nullable=False),
        sa.Column("revoked_at", TZ),
    )
    op.create_index("ix_gateway_certs_gateway_id", "gateway_certs", ["gateway_id"])


def downgrade() -> None:
    op.drop_table("gateway_certs")
    op.drop_table("gateway_identities")
    op.drop_table("claim_tokens")
