"""The ocmf part's schema: its migration branch creates exactly what the metadata
declares, on SQLite and on PostgreSQL; pins are kept and replaced."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sitegate.cloud.store import ocmf as store
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.cloud.store.tables import metadata


def _diff(url: str) -> list:
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
            store.pin(conn, "gw", "CP1", "AA", "fp1", "CP1-1")
            store.pin(conn, "gw", "CP1", "BB", "fp2", None)  # an operator's confirmation
            assert store.pinned(conn, ["gw"]) == {("gw", "CP1"): "BB"}
    finally:
        engine.dispose()
    return [d for d in diffs if "ocmf_keys" in repr(d)]


def test_migration_matches_metadata_sqlite(tmp_path: Path) -> None:
    assert _diff(str(tmp_path / "cloud.db")) == []


@pytest.mark.postgres
def test_migration_matches_metadata_postgres(postgres_url: str) -> None:
    assert _diff(postgres_url) == []
