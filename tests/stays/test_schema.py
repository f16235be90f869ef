"""The stays, jobs and payments parts keep the billing core's structure: their rules never
touch SQL, and their migrations create exactly what the metadata declares (SQLite and,
when reachable, PostgreSQL)."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest

CLOUD = Path(__file__).resolve().parents[2] / "sitegate" / "cloud"
SQL_LIBS = ("sqlalchemy", "alembic", "psycopg", "sqlite3")
PARTS = ("stays", "jobs", "payments")
PREFIXES = ("stays_", "jobs_", "payments_")


def test_rules_import_no_sql() -> None:
    offenders = []
    for part in PARTS:
        for p in sorted((CLOUD / part).rglob("*.py")) if (CLOUD / part).exists() else []:
            for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                offenders += [f"{p.relative_to(CLOUD)}: {n}" for n in names
                              if n.split(".")[0] in SQL_LIBS]
    assert offenders == []


def _diff(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from sitegate.cloud.store.db import make_engine, upgrade
    from sitegate.cloud.store.tables import metadata

    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()

    def mine(d) -> bool:  # only the differences about our own tables
        item = d[0] if isinstance(d, list) else d
        text = repr(item)
        return any(f"'{p}" in text or f"Table('{p}" in text for p in PREFIXES)

    return [d for d in diff if mine(d)]


def test_migrations_match_metadata_sqlite(tmp_path) -> None:
    assert _diff(str(tmp_path / "c.db")) == []


@pytest.mark.postgres
def test_migrations_match_metadata_postgres() -> None:
    psycopg = pytest.importorskip("psycopg")
    admin = "postgresql://127.0.0.1:5432/test"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    name = f"stays_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE DATABASE {name}")
    try:
        assert _diff(f"postgresql://127.0.0.1:5432/{name}") == []
    finally:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
        conn.close()
