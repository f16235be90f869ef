"""Every stays query: the accommodation setup, reservations, unit meter readings, and the
gateway's readings at arrival and departure. Plain rows in, plain rows out."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from sitegate.cloud.store.readings import utc
from sitegate.cloud.store.tables import readings as RD
from sitegate.cloud.store.tables_stays import stays_readings as SR
from sitegate.cloud.store.tables_stays import stays_reservations as RES
from sitegate.cloud.store.tables_stays import stays_setups as SETUP


def setup_text(conn: Connection, site_id: str) -> str | None:
    return conn.execute(select(SETUP.c.setup).where(SETUP.c.site_id == site_id)).scalar()


def put_setup(conn: Connection, site_id: str, text: str, at: datetime) -> bool:
    exists = setup_text(conn, site_id) is not None
    if exists:
        conn.execute(SETUP.update().where(SETUP.c.site_id == site_id)
                     .values(setup=text, imported_at=at))
    else:
        conn.execute(SETUP.insert().values(site_id=site_id, setup=text, imported_at=at))
    return exists


def reservations(conn: Connection, site_id: str) -> list[dict[str, Any]]:
    q = select(RES).where(RES.c.site_id == site_id).order_by(RES.c.unit_id, RES.c.id)
    return [dict(r._mapping) for r in conn.execute(q)]


def upsert_reservation(conn: Connection, site_id: str, rid: str, at: datetime,
                       **values: Any) -> None:
    where = (RES.c.site_id == site_id) & (RES.c.id == rid)
    if not conn.execute(RES.update().where(where).values(updated_at=at, **values)).rowcount:
        conn.execute(RES.insert().values(site_id=site_id, id=rid, updated_at=at, **values))


def unit_readings(conn: Connection, site_id: str,
                  units: list[str] | None = None) -> list[dict[str, Any]]:
    """The readings of the site's units (or some of them), by unit, meter and time."""
    c = SR.c
    q = select(c.unit_id, c.meter, c.ts, c.value, c.is_start, c.source, c.entered_by).where(
        c.site_id == site_id).order_by(c.unit_id, c.meter, c.ts)
    wanted = None if units is None else set(units)
    if units is not None and len(units) <= 500:  # else the whole site: no huge IN list
        q = q.where(c.unit_id.in_(units))
    return [{**dict(r._mapping), "ts": utc(r.ts), "value": Decimal(r.value)}
            for r in conn.execute(q) if wanted is None or r.unit_id in wanted]


def save_readings(conn: Connection, site_id: str, rows: list[dict[str, Any]],
                  now: datetime) -> int:
    if rows:
        conn.execute(SR.insert(), [{"site_id": site_id, "entered_at": now, **r} for r in rows])
    return len(rows)


def gateway_value(conn: Connection, gateway: str, meter_id: str, quantity: str,
                  at: datetime, before: bool) -> tuple[datetime, Decimal, str] | None:
    """The gateway's register reading nearest ``at``: the last one at or before it
    (``before``), or the first one at or after it."""
    c = RD.c
    q = select(c.ts, c.value, c.unit).where(c.gateway_id == gateway, c.meter_id == meter_id,
                                            c.quantity == quantity)
    q = (q.where(c.ts <= at).order_by(c.ts.desc()) if before
         else q.where(c.ts >= at).order_by(c.ts))
    row = conn.execute(q.limit(1)).first()
    return None if row is None else (utc(row.ts), Decimal(row.value), row.unit)


def now() -> datetime:
    return datetime.now(UTC)
