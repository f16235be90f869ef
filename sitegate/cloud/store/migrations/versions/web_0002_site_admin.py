"""web: site status through its life, notes and open issues on a site

Revision ID: web_0002
Revises: web_0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "web_0002"
down_revision = "web_0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "web_site_status",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(254), nullable=False),
    )
    op.create_table(
        "web_site_notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("closed_at", TZ),
        sa.Column("closed_by", sa.String(254)),
    )
    op.create_index("ix_web_site_notes_site", "web_site_notes", ["site_id"])


def downgrade() -> None:
    op.drop_index("ix_web_site_notes_site", "web_site_notes")
    op.drop_table("web_site_notes")
    op.drop_table("web_site_status")
