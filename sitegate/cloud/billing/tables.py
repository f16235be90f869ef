"""Billing tables (Alembic branch ``billing``). Amounts are exact decimal strings."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# The imported site model, as validated canonical JSON: billing reads it back as is.
billing_sites = Table(
    "billing_sites", metadata,
    Column("site_id", String(64), primary_key=True),
    Column("model", Text, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
)

billing_invoices = Table(
    "billing_invoices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("number", Integer, nullable=False),  # gap-free per site, drafts included
    Column("kind", String(16), nullable=False),  # invoice | credit_note
    Column("account_id", String(64), nullable=False),
    Column("period", String(32), nullable=False),  # a Period label
    Column("state", String(16), nullable=False),  # draft issued settled cancelled written_off
    Column("reminder_level", Integer, nullable=False, default=0),
    Column("issue_date", String(10)),
    Column("due_date", String(10)),
    Column("issued_at", DateTime(timezone=True)),  # wall clock of issue: late-reading cut
    Column("total_due", Text, nullable=False),
    Column("document", Text, nullable=False),  # canonical JSON, never edited once issued
    Column("inputs", Text, nullable=False, default="{}"),  # meter -> digest of readings
    Column("credited_invoice_id", Integer, ForeignKey("billing_invoices.id")),
    Column("borne_by", String(16)),  # cancelled: operator; written off: owner
    UniqueConstraint("site_id", "number", name="uq_billing_invoices_number"),
    Index("ix_billing_invoices_period", "site_id", "period", "account_id"),
)

# Payments, reminders and state changes of an invoice, in order.
billing_events = Table(
    "billing_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", Integer, ForeignKey("billing_invoices.id"), nullable=False),
    Column("date", String(10), nullable=False),
    Column("kind", String(16), nullable=False),  # issue payment reminder credit cancel write_off
    Column("amount", Text),
    Column("note", Text),
    Index("ix_billing_events_invoice", "invoice_id"),
)
