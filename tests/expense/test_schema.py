"""The expense tables: the migration (branch ``expense``) builds what the metadata says,
on SQLite and on PostgreSQL, and a statement runs on PostgreSQL as on SQLite."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from houses import SITE
from sqlalchemy import Table

from sitegate.cloud.billing import ops as billing_ops
from sitegate.cloud.billing.sitemodel import parse_site
from sitegate.cloud.expense import ops
from sitegate.cloud.store import tables_expense
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.cloud.store.tables import metadata

OURS = {t.name for t in vars(tables_expense).values() if isinstance(t, Table)}


def _diffs(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()

    def table_of(d) -> str | None:
        d = d[0] if isinstance(d, list) else d
        for x in d[1:]:
            name = getattr(x, "name", None) if not isinstance(x, str) else x
            if name in OURS:
                return name
            table = getattr(x, "table", None)
            if table is not None and table.name in OURS:
                return table.name
        return None

    return [d for d in diffs if table_of(d) is not None]


def test_migration_matches_the_metadata_on_sqlite(tmp_path) -> None:
    url = str(tmp_path / "cloud.db")
    upgrade(url)
    assert OURS == {"expense_periods", "expense_costs", "expense_advances", "expense_runs",
                    "expense_received", "expense_hierarchy"}
    assert _diffs(url) == []


PERIOD = """
[period]
id = "2025"
from = 2025-01-01
to = 2026-01-01
[[categories]]
id = "hauswart"
label = "Hauswart"
kind = "caretaker"
key = "area"
"""


@pytest.mark.postgres
def test_migration_and_a_run_on_postgresql(postgres_url) -> None:
    upgrade(postgres_url)
    assert _diffs(postgres_url) == []
    engine = make_engine(postgres_url)
    try:
        billing_ops.import_site(engine, parse_site(SITE))
        ops.create_period(engine, None, "p.toml", PERIOD)
        ops.add_cost(engine, None, "2025", "hauswart", "1000.00", "test")
        ops.run_statements(engine, None, "2025")
        # by area 60 : 90 : 50 of 200 m²: 300.00, 450.00, 250.00
        assert {v["account"]: D(v["total_due"]) for v in ops.statements(engine, None, "2025")} \
            == {"anna": D("300.00"), "ben": D("450.00"), "carla": D("250.00")}
    finally:
        engine.dispose()
