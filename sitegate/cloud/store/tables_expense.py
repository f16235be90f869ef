"""Expense statements' tables (Alembic branch ``expense``), on the one ``metadata``.

Amounts are exact decimal strings, as in billing. The statements themselves are invoices
of the billing core (``billing_invoices``, period ``expense:<id>``): the same numbers,
lifecycle, payments and credit notes.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, String, Table, Text, UniqueConstraint

from sitegate.cloud.store.tables import metadata

TZ = DateTime(timezone=True)


def _period_key() -> tuple[Column, Column]:  # type: ignore[type-arg]
    """A row per site and accounting period (new columns each call: a table owns its own)."""
    return (Column("site_id", String(64), primary_key=True),
            Column("period_id", String(24), primary_key=True))


def _entered() -> tuple[Column, Column, Column]:  # type: ignore[type-arg]
    """Who entered a row by hand, when, and their note."""
    return (Column("note", Text, nullable=False, default=""),
            Column("entered_by", String(128), nullable=False),
            Column("entered_at", TZ, nullable=False))


# An accounting period: its definition (categories, keys, units) as canonical JSON.
expense_periods = Table(
    "expense_periods", metadata,
    *_period_key(),
    Column("spec", Text, nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

# The general invoices of a period, per cost category.
expense_costs = Table(
    "expense_costs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("period_id", String(24), nullable=False),
    Column("category", String(40), nullable=False),
    Column("amount", Text, nullable=False),
    Column("quantity", Text),  # fuel quantity (litres, kWh, m³, kg)
    Column("unit", String(16)),
    Column("invoice_date", String(10)),
    Column("supplier", Text, nullable=False, default=""),
    *_entered(),
)

# Advance payments per account and billing point for the period (one amount each).
expense_advances = Table(
    "expense_advances", metadata,
    *_period_key(),
    Column("account", String(64), primary_key=True),
    Column("billing_point", String(64), primary_key=True),
    Column("amount", Text, nullable=False),
    Column("entered_at", TZ, nullable=False),
)

# The last run of a period: the owner's overall statement and the consumption export.
expense_runs = Table(
    "expense_runs", metadata,
    *_period_key(),
    Column("document", Text, nullable=False),
    Column("consumption", Text, nullable=False),
    Column("run_at", TZ, nullable=False),
)

# Invoices received per billing meter (a utility's bill for the complex, a building),
# distributed down the site's hierarchy once their period has ended.
expense_received = Table(
    "expense_received", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("meter", String(64), nullable=False),
    Column("first", String(10), nullable=False),
    Column("end", String(10), nullable=False),  # exclusive
    Column("amount", Text, nullable=False),
    Column("consumption", Text, nullable=False),
    *_entered(),
    UniqueConstraint("site_id", "meter", "first", "end", name="uq_expense_received_period"),
)

# The site's hierarchy for received invoices (complex -> buildings -> units, each node with
# its billing meters per energy), as canonical JSON.
expense_hierarchy = Table(
    "expense_hierarchy", metadata,
    Column("site_id", String(64), primary_key=True),
    Column("spec", Text, nullable=False),
    Column("updated_at", TZ, nullable=False),
)
