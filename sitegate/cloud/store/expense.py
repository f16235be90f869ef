"""Every expense query: accounting periods, their costs and advances, the last run, and
received invoices. Rows in and out as plain dicts of the stored values."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select

from sitegate.cloud.store.tables_expense import expense_advances as ADV
from sitegate.cloud.store.tables_expense import expense_costs as COSTS
from sitegate.cloud.store.tables_expense import expense_hierarchy as HIERARCHY
from sitegate.cloud.store.tables_expense import expense_periods as PERIODS
from sitegate.cloud.store.tables_expense import expense_received as RECEIVED
from sitegate.cloud.store.tables_expense import expense_runs as RUNS


def period(conn: Connection, site: str, pid: str) -> dict[str, Any] | None:
    row = conn.execute(select(PERIODS).where(PERIODS.c.site_id == site,
                                             PERIODS.c.period_id == pid)).first()
    return None if row is None else dict(row._mapping)


def periods(conn: Connection, site: str) -> list[dict[str, Any]]:
    q = select(PERIODS).where(PERIODS.c.site_id == site).order_by(PERIODS.c.period_id)
    return [dict(r._mapping) for r in conn.execute(q)]


def put_period(conn: Connection, site: str, pid: str, spec: str, now: Any) -> bool:
    """Insert or replace a period's definition; True when it replaced one."""
    if period(conn, site, pid) is not None:
        conn.execute(PERIODS.update().where(PERIODS.c.site_id == site,
                                            PERIODS.c.period_id == pid)
                     .values(spec=spec, updated_at=now))
        return True
    conn.execute(PERIODS.insert().values(site_id=site, period_id=pid, spec=spec,
                                         created_at=now, updated_at=now))
    return False


def add_cost(conn: Connection, **values: Any) -> int:
    return conn.execute(COSTS.insert().values(**values)).inserted_primary_key[0]


def costs(conn: Connection, site: str, pid: str) -> list[dict[str, Any]]:
    q = select(COSTS).where(COSTS.c.site_id == site, COSTS.c.period_id == pid) \
        .order_by(COSTS.c.id)
    return [dict(r._mapping) for r in conn.execute(q)]


def delete_cost(conn: Connection, site: str, pid: str, cost_id: int) -> bool:
    return conn.execute(delete(COSTS).where(COSTS.c.site_id == site, COSTS.c.period_id == pid,
                                            COSTS.c.id == cost_id)).rowcount > 0


def set_advance(conn: Connection, site: str, pid: str, account: str, billing_point: str,
                amount: str, now: Any) -> None:
    conn.execute(delete(ADV).where(ADV.c.site_id == site, ADV.c.period_id == pid,
                                   ADV.c.account == account,
                                   ADV.c.billing_point == billing_point))
    conn.execute(ADV.insert().values(site_id=site, period_id=pid, account=account,
                                     billing_point=billing_point, amount=amount,
                                     entered_at=now))


def advances(conn: Connection, site: str, pid: str) -> list[dict[str, Any]]:
    q = select(ADV).where(ADV.c.site_id == site, ADV.c.period_id == pid) \
        .order_by(ADV.c.account, ADV.c.billing_point)
    return [dict(r._mapping) for r in conn.execute(q)]


def put_run(conn: Connection, site: str, pid: str, document: str, consumption: str,
            now: Any) -> None:
    conn.execute(delete(RUNS).where(RUNS.c.site_id == site, RUNS.c.period_id == pid))
    conn.execute(RUNS.insert().values(site_id=site, period_id=pid, document=document,
                                      consumption=consumption, run_at=now))


def last_run(conn: Connection, site: str, pid: str) -> dict[str, Any] | None:
    row = conn.execute(select(RUNS).where(RUNS.c.site_id == site,
                                          RUNS.c.period_id == pid)).first()
    return None if row is None else dict(row._mapping)


def add_received(conn: Connection, **values: Any) -> int:
    return conn.execute(RECEIVED.insert().values(**values)).inserted_primary_key[0]


def received(conn: Connection, site: str, meter: str | None = None) -> list[dict[str, Any]]:
    q = select(RECEIVED).where(RECEIVED.c.site_id == site)
    if meter is not None:
        q = q.where(RECEIVED.c.meter == meter)
    q = q.order_by(RECEIVED.c.meter, RECEIVED.c.first, RECEIVED.c.id)
    return [dict(r._mapping) for r in conn.execute(q)]


def received_one(conn: Connection, site: str, rid: int) -> dict[str, Any] | None:
    row = conn.execute(select(RECEIVED).where(RECEIVED.c.site_id == site,
                                              RECEIVED.c.id == rid)).first()
    return None if row is None else dict(row._mapping)


def hierarchy(conn: Connection, site: str) -> str | None:
    return conn.execute(select(HIERARCHY.c.spec).where(HIERARCHY.c.site_id == site)).scalar()


def put_hierarchy(conn: Connection, site: str, spec: str, now: Any) -> None:
    conn.execute(delete(HIERARCHY).where(HIERARCHY.c.site_id == site))
    conn.execute(HIERARCHY.insert().values(site_id=site, spec=spec, updated_at=now))
