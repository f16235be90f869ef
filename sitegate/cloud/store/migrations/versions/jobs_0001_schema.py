"""jobs: settings, jobs and their state changes

Revision ID: jobs_0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "jobs_0001"
down_revision = None
branch_labels = ("jobs",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs_settings",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("imported_at", TZ, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("quote", sa.Text),
        sa.Column("token_hash", sa.String(64)),
        sa.Column("token_expires", TZ),
        sa.Column("acceptance", sa.Text),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_jobs_token", "jobs", ["token_hash"])
    op.create_table(
        "jobs_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(24), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_jobs_events_job", "jobs_events", ["site_id", "job_id"])


def downgrade() -> None:
    op.drop_table("jobs_events")
    op.drop_table("jobs")
    op.drop_table("jobs_settings")
