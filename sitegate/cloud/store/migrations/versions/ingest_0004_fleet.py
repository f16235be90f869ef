"""ingest: readings keyed with their time, partitioned by month on PostgreSQL; 64-bit seq

The unique key of ``readings`` becomes (gateway, epoch, seq, ts): PostgreSQL's range
partitioning needs the partition column in every unique key. On PostgreSQL the table is
rebuilt as a partitioned one (a partition per month from the oldest existing row's month,
at most 36 back, to two months ahead, and a default partition for anything older) and the rows
copied; sequence numbers and marks become BIGINT there (they were 32-bit, while gateways
count in 64 bits). SQLite keeps one table (its integers are 64-bit already); only the key
changes (the table is recreated, rows copied).

Revision ID: ingest_0004
Revises: ingest_0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

revision = "ingest_0004"
down_revision = "ingest_0003"
branch_labels = None
depends_on = None

OLD_KEY, NEW_KEY = "uq_readings_gateway_epoch_seq", "uq_readings_gateway_epoch_seq_ts"
COLUMNS = ("gateway_id", "epoch", "seq", "meter_id", "ts", "quantity", "value", "unit",
           "quality", "flags", "read_at", "received_at")
BIGINT = (("sessions", "seq"), ("events", "seq"), ("acks", "upto"), ("ack_ranges", "first"),
          ("ack_ranges", "last"), ("session_latest", "seq"))
BACK, AHEAD = 36, 2  # months of partitions made for existing rows, and ahead


def _add(m: date, k: int) -> date:
    """The first of the month ``k`` months after ``m``'s."""
    i = m.year * 12 + m.month - 1 + k
    return date(i // 12, i % 12 + 1, 1)


def _start(m: date) -> str:
    return datetime(m.year, m.month, 1, tzinfo=UTC).isoformat()


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        with op.batch_alter_table("readings") as b:
            b.drop_constraint(OLD_KEY, type_="unique")
            b.create_unique_constraint(NEW_KEY, ["gateway_id", "epoch", "seq", "ts"])
        return
    for table, column in BIGINT:
        op.alter_column(table, column, type_=sa.BigInteger)
    op.execute("ALTER TABLE readings RENAME TO readings_0003")
    op.execute(f"ALTER TABLE readings_0003 RENAME CONSTRAINT {OLD_KEY} TO readings_0003_key")
    op.execute("ALTER INDEX ix_readings_series RENAME TO readings_0003_series")
    op.execute("""
        CREATE TABLE readings (
            gateway_id VARCHAR(64) NOT NULL,
            epoch VARCHAR(40) DEFAULT '0' NOT NULL,
            seq BIGINT NOT NULL,
            meter_id VARCHAR(128) NOT NULL,
            ts TIMESTAMP WITH TIME ZONE NOT NULL,
            quantity VARCHAR(64) NOT NULL,
            value TEXT NOT NULL,
            unit VARCHAR(32) NOT NULL,
            quality VARCHAR(16) NOT NULL,
            flags TEXT NOT NULL,
            read_at TIMESTAMP WITH TIME ZONE,
            received_at TIMESTAMP WITH TIME ZONE NOT NULL,
            CONSTRAINT uq_readings_gateway_epoch_seq_ts UNIQUE (gateway_id, epoch, seq, ts)
        ) PARTITION BY RANGE (ts)""")
    op.execute("CREATE INDEX ix_readings_series ON readings (gateway_id, meter_id, quantity, ts)")
    now = datetime.now(UTC).date().replace(day=1)
    floor = datetime(*_add(now, -BACK).timetuple()[:3], tzinfo=UTC)
    lo, hi = bind.execute(sa.text("SELECT min(ts) FILTER (WHERE ts >= :f), max(ts) FROM "
                                  "readings_0003"), {"f": floor}).one()
    first = last = now
    if lo is not None:  # rows before the first month made go to the default partition
        first = min(lo.astimezone(UTC).date().replace(day=1), now)
    if hi is not None:
        last = max(now, min(hi.astimezone(UTC).date().replace(day=1), _add(now, 12)))
    m = first
    while m <= _add(last, AHEAD):
        op.execute(f"CREATE TABLE readings_y{m.year:04d}m{m.month:02d} PARTITION OF readings "
                   f"FOR VALUES FROM ('{_start(m)}') TO ('{_start(_add(m, 1))}')")
        m = _add(m, 1)
    op.execute("CREATE TABLE readings_default PARTITION OF readings DEFAULT")
    cols = ", ".join(COLUMNS)
    op.execute(f"INSERT INTO readings ({cols}) SELECT {cols} FROM readings_0003")
    op.execute("DROP TABLE readings_0003")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        with op.batch_alter_table("readings") as b:
            b.drop_constraint(NEW_KEY, type_="unique")
            b.create_unique_constraint(OLD_KEY, ["gateway_id", "epoch", "seq"])
        return
    op.execute("ALTER TABLE readings RENAME TO readings_0004")
    op.execute(f"ALTER TABLE readings_0004 RENAME CONSTRAINT {NEW_KEY} TO readings_0004_key")
    op.execute("ALTER INDEX ix_readings_series RENAME TO readings_0004_series")
    op.execute(f"""
        CREATE TABLE readings (
            gateway_id VARCHAR(64) NOT NULL, epoch VARCHAR(40) DEFAULT '0' NOT NULL,
            seq INTEGER NOT NULL, meter_id VARCHAR(128) NOT NULL,
            ts TIMESTAMP WITH TIME ZONE NOT NULL, quantity VARCHAR(64) NOT NULL,
            value TEXT NOT NULL, unit VARCHAR(32) NOT NULL, quality VARCHAR(16) NOT NULL,
            flags TEXT NOT NULL, read_at TIMESTAMP WITH TIME ZONE,
            received_at TIMESTAMP WITH TIME ZONE NOT NULL,
            CONSTRAINT {OLD_KEY} UNIQUE (gateway_id, epoch, seq))""")
    op.execute("CREATE INDEX ix_readings_series ON readings (gateway_id, meter_id, quantity, ts)")
    cols = ", ".join(COLUMNS)
    op.execute(f"INSERT INTO readings ({cols}) SELECT {cols} FROM readings_0004")
    op.execute("DROP TABLE readings_0004")
    for table, column in BIGINT:
        op.alter_column(table, column, type_=sa.Integer)
