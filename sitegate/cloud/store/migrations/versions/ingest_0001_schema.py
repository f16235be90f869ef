"""ingest: gateways, readings, sessions, events, dead letters, acknowledgement marks

Revision ID: ingest_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ingest_0001"
down_revision = None
branch_labels = ("ingest",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gateways",
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("status", sa.Text),
        sa.Column("applied_config_version", sa.Integer),
    )
    op.create_table(
        "readings",
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("meter_id", sa.String(128), nullable=False),
        sa.Column("ts", TZ, nullable=False),
        sa.Column("quantity", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("quality", sa.String(16), nullable=False),
        sa.Column("flags", sa.Text, nullable=False),
        sa.Column("read_at", TZ),
        sa.Column("received_at", TZ, nullable=False),
        sa.UniqueConstraint("gateway_id", "seq", name="uq_readings_gateway_seq"),
    )
    op.create_index("ix_readings_series", "readings",
                    ["gateway_id", "meter_id", "quantity", "ts"])
    op.create_table(
        "sessions",
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("session_id", sa.String(128)),
        sa.Column("charge_point_id", sa.String(128)),
        sa.Column("connector", sa.Integer),
        sa.Column("badge", sa.String(64)),
        sa.Column("started_at", TZ),
        sa.Column("stopped_at", TZ),
        sa.Column("energy_wh", sa.Text),
        sa.Column("received_at", TZ, nullable=False),
        sa.UniqueConstraint("gateway_id", "seq", name="uq_sessions_gateway_seq"),
    )
    op.create_index("ix_sessions_session", "sessions", ["gateway_id", "session_id"])
    op.create_table(
        "events",
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("ts", TZ, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.UniqueConstraint("gateway_id", "seq", name="uq_events_gateway_seq"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "acks",
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(16), primary_key=True),
        sa.Column("upto", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "ack_ranges",
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(16), primary_key=True),
        sa.Column("first", sa.Integer, primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for name in ("ack_ranges", "acks", "dead_letters", "events", "sessions", "readings",
                 "gateways"):
        op.drop_table(name)
