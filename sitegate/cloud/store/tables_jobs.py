"""Quote-to-invoice jobs (Alembic branch ``jobs``), on the one ``metadata``. A job's
invoices are ``billing_invoices`` rows with the period label ``job:<id>``."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

from sitegate.cloud.store.tables import metadata

TZ = DateTime(timezone=True)

jobs_settings = Table(
    "jobs_settings", metadata,
    Column("site_id", String(64), primary_key=True),
    Column("settings", Text, nullable=False),  # canonical JSON of jobs.model.JobsSettings
    Column("imported_at", TZ, nullable=False),
)

jobs = Table(
    "jobs", metadata,
    Column("site_id", String(64), primary_key=True),
    Column("id", String(24), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("spec", Text, nullable=False),  # canonical JSON: parties, orders, cost lines
    Column("quote", Text),  # the quote as sent: documents and each party's parts
    Column("token_hash", String(64)),  # SHA-256 of the acceptance link's one-time token
    Column("token_expires", TZ),
    Column("acceptance", Text),  # JSON: who, when, from where
    Column("updated_at", TZ, nullable=False),
    Index("ix_jobs_token", "token_hash"),
)

jobs_events = Table(
    "jobs_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("job_id", String(24), nullable=False),
    Column("at", TZ, nullable=False),
    Column("state", String(16), nullable=False),  # the state after the change
    Column("note", Text),
    Index("ix_jobs_events_job", "site_id", "job_id"),
)
