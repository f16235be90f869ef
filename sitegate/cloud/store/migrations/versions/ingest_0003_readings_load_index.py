"""ingest: on SQLite, a readings index covering billing's per-register load

Billing loads each register's readings in time order (gateway, meter, quantity, ts range).
With ``ix_readings_series`` SQLite then fetched every reading from the table, where the
ingest interleaves all meters of a poll cycle: a page read per reading (~2x the time of the
whole load). ``ix_readings_load`` carries the columns billing reads after the series key,
so a register is one ordered index range; it replaces ``ix_readings_series``, its prefix.

PostgreSQL keeps ``ix_readings_series``: a B-tree entry there must stay under ~2.7 kB, and
``value`` is unbounded text, so a covering index could refuse an (odd but valid) reading.

Revision ID: ingest_0003
Revises: ingest_0002
Create Date: 2026-12-09
"""

from __future__ import annotations

from alembic import op

revision = "ingest_0003"
down_revision = "ingest_0002"
branch_labels = None
depends_on = None

SERIES = ["gateway_id", "meter_id", "quantity", "ts"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index("ix_readings_load", "readings", [*SERIES, "value", "unit", "quality"])
    op.drop_index("ix_readings_series", "readings")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index("ix_readings_series", "readings", SERIES)
    op.drop_index("ix_readings_load", "readings")
