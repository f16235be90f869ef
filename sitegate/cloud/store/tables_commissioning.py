"""Commissioning reports the gateways sent (Alembic branch ``commissioning``).

A gateway's ``sitegate commission`` puts the round's summary in its events stream (kind
``commissioning``); ingest keeps the event as every event and, in the same transaction,
one row here per report, unique on the event's (gateway, epoch, seq) so a resent batch
adds nothing. ``summary`` is the JSON the gateway sent (verdicts and problems, no values).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, String, Table, Text, UniqueConstraint

from sitegate.cloud.store.tables import metadata

TZ = DateTime(timezone=True)

commissioning_reports = Table(
    "commissioning_reports", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gateway_id", String(64), nullable=False, index=True),
    Column("epoch", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("started_at", String(40), nullable=False),  # as the gateway wrote it (ISO)
    Column("finished_at", String(40), nullable=False),
    Column("verdict", String(8), nullable=False),
    Column("meters", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("problems", Integer, nullable=False),
    Column("summary", Text, nullable=False),  # JSON
    Column("received_at", TZ, nullable=False),
    UniqueConstraint("gateway_id", "epoch", "seq", name="uq_commissioning_event"),
)
