"""ingest: buffer epochs (rows unique on gateway, epoch, seq; one ack mark per epoch) and
session_latest (the current report of each session)

A gateway whose buffer was found corrupt starts a new buffer whose sequences restart at 1
under a new epoch id; keyed on (gateway, seq) alone the cloud dropped those rows as
duplicates. Existing rows and marks get the legacy epoch "0" (what gateways from before
epochs send). Works on SQLite (batch mode: tables are recreated) and PostgreSQL.

Revision ID: ingest_0002
Revises: ingest_0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "ingest_0002"
down_revision = "ingest_0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
LEGACY = "0"  # frozen here: protocol.LEGACY_EPOCH when this revision was written
STREAM_TABLES = ("readings", "sessions", "events")


def _epoch_column(primary_key: bool = False) -> sa.Column:
    return sa.Column("epoch", sa.String(40), nullable=False, server_default=LEGACY,
                     primary_key=primary_key)


def _rebuild(name: str, columns: list[sa.Column], copy: list[str]) -> None:
    """Replace table ``name`` by one with ``columns`` (a new primary key), copying ``copy``:
    the same statements on SQLite and PostgreSQL, which cannot both alter a primary key."""
    op.create_table(f"{name}_new", *columns)
    cols = ", ".join(f'"{c}"' for c in copy)
    op.execute(f'INSERT INTO "{name}_new" ({cols}) SELECT {cols} FROM "{name}"')
    op.drop_table(name)
    op.rename_table(f"{name}_new", name)


def upgrade() -> None:
    for name in STREAM_TABLES:
        with op.batch_alter_table(name) as b:
            b.add_column(_epoch_column())
            b.drop_constraint(f"uq_{name}_gateway_seq", type_="unique")
            b.create_unique_constraint(f"uq_{name}_gateway_epoch_seq",
                                       ["gateway_id", "epoch", "seq"])
    _rebuild("acks", [
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(16), primary_key=True),
        _epoch_column(primary_key=True),
        sa.Column("upto", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    ], ["gateway_id", "stream", "upto", "updated_at"])
    _rebuild("ack_ranges", [
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(16), primary_key=True),
        _epoch_column(primary_key=True),
        sa.Column("first", sa.Integer, primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    ], ["gateway_id", "stream", "first", "last"])

    latest = op.create_table(
        "session_latest",
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("completed", sa.Boolean, nullable=False),
        sa.Column("epoch", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("charge_point_id", sa.String(128)),
        sa.Column("connector", sa.Integer),
        sa.Column("badge", sa.String(64)),
        sa.Column("started_at", TZ),
        sa.Column("stopped_at", TZ),
        sa.Column("energy_wh", sa.Text),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_index("ix_session_latest_stopped", "session_latest", ["stopped_at"])
    _backfill_latest(latest)


def _backfill_latest(latest: sa.Table) -> None:
    """The current report of every session already stored (all of the legacy epoch)."""
    conn = op.get_bind()
    sessions = sa.table("sessions", *(sa.column(c) for c in (
        "gateway_id", "seq", "payload", "session_id", "charge_point_id", "connector", "badge",
        "energy_wh")), *(sa.column(c, TZ) for c in ("started_at", "stopped_at", "received_at")))
    best: dict[tuple[str, str], dict] = {}
    rows = conn.execute(sa.select(sessions).where(sessions.c.session_id.is_not(None))
                        .order_by(sessions.c.gateway_id, sessions.c.seq)).mappings()
    for r in rows:
        try:
            completed = json.loads(r["payload"]).get("status") == "completed"
        except (ValueError, AttributeError):
            completed = False
        key = (r["gateway_id"], r["session_id"])
        have = best.get(key)
        if have is None or (completed, r["seq"]) > (have["completed"], have["seq"]):
            best[key] = {**r, "completed": completed, "epoch": LEGACY}
    if best:
        op.bulk_insert(latest, list(best.values()))


def downgrade() -> None:
    # Fails (unique violation) once two epochs of one gateway share sequence numbers: the
    # old schema cannot hold them.
    op.drop_index("ix_session_latest_stopped", "session_latest")
    op.drop_table("session_latest")
    _rebuild("ack_ranges", [
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(16), primary_key=True),
        sa.Column("first", sa.Integer, primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    ], ["gateway_id", "stream", "first", "last"])
    _rebuild("acks", [
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(16), primary_key=True),
        sa.Column("upto", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    ], ["gateway_id", "stream", "upto", "updated_at"])
    for name in STREAM_TABLES:
        with op.batch_alter_table(name) as b:
            b.drop_constraint(f"uq_{name}_gateway_epoch_seq", type_="unique")
            b.create_unique_constraint(f"uq_{name}_gateway_seq", ["gateway_id", "seq"])
            b.drop_column("epoch")
