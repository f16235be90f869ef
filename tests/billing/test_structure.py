"""The billing core's structure (issue 14): billing rules never touch SQL, one schema."""

from __future__ import annotations

import ast
from pathlib import Path

CLOUD = Path(__file__).resolve().parents[2] / "sitegate" / "cloud"
SQL_LIBS = ("sqlalchemy", "alembic", "psycopg", "sqlite3")


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_billing_module_imports_sql() -> None:
    offenders = {
        f"{p.relative_to(CLOUD)}: {name}"
        for p in sorted((CLOUD / "billing").rglob("*.py"))
        for name in _imported(p) if name.split(".")[0] in SQL_LIBS
    }
    assert offenders == set()


def test_this_test_can_fail(tmp_path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from sqlalchemy import select\n")
    assert "sqlalchemy" in _imported(bad)


def test_one_metadata_for_the_whole_schema() -> None:
    from sitegate.cloud.store import tables

    defining = sorted(str(p.relative_to(CLOUD)) for p in CLOUD.rglob("*.py")
                      if "migrations" not in p.parts and "MetaData(" in p.read_text())
    assert defining == ["store/tables.py"]
    assert {"reading_rows", "session_latest", "billing_sites", "billing_invoices",
            "billing_events"} <= set(tables.metadata.tables)
