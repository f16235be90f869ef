"""trust: a claim token can be revoked before it is used

Revision ID: trust_0002
Revises: trust_0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "trust_0002"
down_revision = "trust_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("claim_tokens", sa.Column("revoked_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("claim_tokens") as batch:
        batch.drop_column("revoked_at")
