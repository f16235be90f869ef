"""Payments coming in (Alembic branch ``payments``), on the one ``metadata``: the bank
files imported and each credit in them, matched to an invoice or listed for the operator.
The payment itself is the invoice's ``billing_events`` row (kind ``payment``)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

from sitegate.cloud.store.tables import metadata

TZ = DateTime(timezone=True)

payments_imports = Table(
    "payments_imports", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("digest", String(64), nullable=False),  # SHA-256 of the file
    Column("file_name", String(255), nullable=False),
    Column("kind", String(8), nullable=False),  # camt.053 | camt.054
    Column("message_id", String(200), nullable=False),
    Column("imported_at", TZ, nullable=False),
    Column("credits", Integer, nullable=False),
    Column("matched", Integer, nullable=False),
    Column("unmatched", Integer, nullable=False),
    Index("uq_payments_imports_digest", "site_id", "digest", unique=True),
)

payments_credits = Table(
    "payments_credits", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("key", String(120), nullable=False),  # the bank's reference: same in 053 and 054
    Column("import_id", Integer, nullable=False),
    Column("entry", String(120), nullable=False),  # where it was in the file
    Column("amount", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("booking_date", String(10)),
    Column("reference", String(64)),
    Column("debtor", String(200)),
    Column("status", String(16), nullable=False),  # matched | unmatched | assigned
    Column("invoice_number", Integer),
    Column("outcome", String(16)),  # full | partial | over
    Column("balance_after", Text),  # the invoice's balance after this payment
    Column("reason", Text),  # unmatched: why
    Index("uq_payments_credits_key", "site_id", "key", unique=True),
)
