"""Stay settlements' tables (Alembic branch ``stays``), on the one ``metadata``.

The accommodation setup is kept like the site model: one validated canonical JSON per site.
Settlement documents are ``billing_invoices`` rows (the site's one number sequence)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, String, Table, Text

from sitegate.cloud.store.tables import metadata

TZ = DateTime(timezone=True)

stays_setups = Table(
    "stays_setups", metadata,
    Column("site_id", String(64), primary_key=True),
    Column("setup", Text, nullable=False),  # canonical JSON of stays.setup.StaySetup
    Column("imported_at", TZ, nullable=False),
)

stays_reservations = Table(
    "stays_reservations", metadata,
    Column("site_id", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("parent_id", String(64)),  # None: a parent (year-round) reservation
    Column("unit_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("data", Text, nullable=False),  # canonical JSON of the reservation as given
    Column("checked_out_on", String(10)),  # the departure settled
    Column("first_day", String(10)),  # from the start reading
    Column("last_day", String(10)),  # from the end reading
    Column("invoice_number", Integer),  # the settlement document
    Column("updated_at", TZ, nullable=False),
    Index("ix_stays_reservations_unit", "site_id", "unit_id"),
)

stays_readings = Table(
    "stays_readings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("unit_id", String(64), nullable=False),
    Column("meter", String(64), nullable=False),
    Column("ts", TZ, nullable=False),
    Column("value", Text, nullable=False),  # plain decimal as entered
    Column("is_start", Boolean, nullable=False, default=False),
    Column("source", String(16), nullable=False),  # manual | bulk
    Column("entered_by", String(128), nullable=False),
    Column("entered_at", TZ, nullable=False),
    Index("uq_stays_readings_instant", "site_id", "unit_id", "meter", "ts", unique=True),
)
