"""Every query of payments coming in: imported files and their credits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from sitegate.cloud.store.tables_payments import payments_credits as CR
from sitegate.cloud.store.tables_payments import payments_imports as IMP


def import_of(conn: Connection, site_id: str, digest: str) -> dict[str, Any] | None:
    row = conn.execute(select(IMP).where(IMP.c.site_id == site_id,
                                         IMP.c.digest == digest)).first()
    return None if row is None else dict(row._mapping)


def add_import(conn: Connection, at: datetime, **values: Any) -> int:
    return conn.execute(IMP.insert().values(imported_at=at, **values)).inserted_primary_key[0]


def update_import(conn: Connection, import_id: int, **values: Any) -> None:
    conn.execute(IMP.update().where(IMP.c.id == import_id).values(**values))


def known_keys(conn: Connection, site_id: str, keys: list[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(keys), 500):  # bounded IN lists
        q = select(CR.c.key).where(CR.c.site_id == site_id, CR.c.key.in_(keys[i:i + 500]))
        out |= {k for (k,) in conn.execute(q)}
    return out


def add_credit(conn: Connection, **values: Any) -> int:
    return conn.execute(CR.insert().values(**values)).inserted_primary_key[0]


def credits(conn: Connection, site_id: str, status: str | None = None) -> list[dict]:
    q = select(CR).where(CR.c.site_id == site_id).order_by(CR.c.id)
    if status is not None:
        q = q.where(CR.c.status == status)
    return [dict(r._mapping) for r in conn.execute(q)]


def credit(conn: Connection, site_id: str, credit_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(CR).where(CR.c.site_id == site_id, CR.c.id == credit_id)).first()
    return None if row is None else dict(row._mapping)


def update_credit(conn: Connection, credit_id: int, **values: Any) -> None:
    conn.execute(CR.update().where(CR.c.id == credit_id).values(**values))
