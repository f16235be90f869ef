"""The web console's read queries: invoice summaries without their documents (the
overview of a site with thousands of invoices must not parse thousands of documents),
and the fleet's and plots' figures. Set-based: a page is a fixed number of queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from sitegate.cloud.store import tables as t
from sitegate.cloud.store.tables import billing_events as EV
from sitegate.cloud.store.tables import billing_invoices as INV

SUMMARY = (INV.c.id, INV.c.number, INV.c.kind, INV.c.account_id, INV.c.period, INV.c.state,
           INV.c.reminder_level, INV.c.issue_date, INV.c.due_date, INV.c.total_due,
           INV.c.borne_by)


def invoice_summaries(conn: Connection, site_id: str,
                      period: str | None = None) -> list[dict[str, Any]]:
    """The site's invoices and credit notes (of one period) without documents, by number."""
    q = select(*SUMMARY).where(INV.c.site_id == site_id).order_by(INV.c.number)
    if period is not None:
        q = q.where(INV.c.period == period)
    res = conn.execute(q)
    keys = list(res.keys())
    return [dict(zip(keys, r, strict=True)) for r in res.all()]


def invoice_periods(conn: Connection, site_id: str) -> list[str]:
    """The periods the site has invoices of, newest first."""
    q = select(INV.c.period).where(INV.c.site_id == site_id).distinct()
    return sorted((p for (p,) in conn.execute(q)), reverse=True)


def site_model_text(conn: Connection, site_id: str) -> str | None:
    """A site's stored model (canonical JSON), or None."""
    q = select(t.billing_sites.c.model).where(t.billing_sites.c.site_id == site_id)
    return conn.execute(q).scalar()


def event_amounts(conn: Connection, site_id: str,
                  period: str | None = None) -> dict[int, list[dict[str, Any]]]:
    """Every event of the site's invoices (of one period), by invoice id: one query."""
    q = select(EV.c.invoice_id, EV.c.kind, EV.c.amount).join(
        INV, INV.c.id == EV.c.invoice_id).where(INV.c.site_id == site_id).order_by(EV.c.id)
    if period is not None:
        q = q.where(INV.c.period == period)
    out: dict[int, list[dict[str, Any]]] = {}
    for inv_id, kind, amount in conn.execute(q).all():
        if inv_id in out:
            out[inv_id].append({"kind": kind, "amount": amount})
        else:
            out[inv_id] = [{"kind": kind, "amount": amount}]
    return out


# -- fleet ---------------------------------------------------------------------------------


def gateway_rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(
        select(t.gateways).order_by(t.gateways.c.gateway_id))]


def gateway_sites(conn: Connection) -> dict[str, str]:
    """gateway id -> the site it enrolled for."""
    gi = t.gateway_identities.c
    return {g: s for g, s in conn.execute(select(gi.gateway_id, gi.site_id))}


def last_readings(conn: Connection, gateway_ids: list[str]) -> dict[str, datetime]:
    """The newest reading's time per gateway (one indexed lookup each)."""
    c = t.readings.c
    out = {}
    for g in gateway_ids:
        ts = conn.execute(select(func.max(c.ts)).where(c.gateway_id == g)).scalar()
        if ts is not None:
            out[g] = ts
    return out


def recent_alarms(conn: Connection, gateway_ids: list[str], since: datetime,
                  limit: int = 200) -> list[dict[str, Any]]:
    """Warnings and errors the gateways reported since ``since``, newest first."""
    c = t.events.c
    q = (select(c.gateway_id, c.ts, c.kind, c.severity, c.payload)
         .where(c.gateway_id.in_(gateway_ids), c.ts >= since,
                c.severity.in_(("warning", "alarm", "error", "critical")))
         .order_by(c.ts.desc()).limit(limit))
    return [dict(r._mapping) for r in conn.execute(q)]


# -- plots ---------------------------------------------------------------------------------


def register_series(conn: Connection, gateway_id: str, meter_id: str, quantity: str,
                    since: datetime, until: datetime,
                    limit: int = 40_000) -> list[tuple[datetime, str]]:
    """(ts, value) of one cumulative register in [since, until), oldest first."""
    c = t.readings.c
    q = (select(c.ts, c.value).where(and_(c.gateway_id == gateway_id, c.meter_id == meter_id,
                                          c.quantity == quantity, c.ts >= since,
                                          c.ts < until))
         .order_by(c.ts).limit(limit))
    return [(ts, v) for ts, v in conn.execute(q)]


def latest_values(conn: Connection, gateway_id: str, meter_id: str,
                  limit: int = 50) -> list[dict[str, Any]]:
    """The newest readings of a meter (every quantity), newest first."""
    c = t.readings.c
    q = (select(c.ts, c.quantity, c.value, c.unit, c.quality)
         .where(c.gateway_id == gateway_id, c.meter_id == meter_id)
         .order_by(c.ts.desc()).limit(limit))
    return [dict(r._mapping) for r in conn.execute(q)]


def sessions_for_badges(conn: Connection, badges: list[str],
                        limit: int = 200) -> list[dict[str, Any]]:
    """Charging and relay sessions of these badges (their current report), newest first."""
    if not badges:
        return []
    return _sessions(conn, t.session_latest.c.badge.in_(badges), limit)


def register_at(conn: Connection, gateway_id: str, meter_id: str, quantity: str,
                at: datetime, within: datetime) -> tuple[datetime, str] | None:
    """The first reading of a register at or after ``at`` and before ``within``."""
    return _register_edge(conn, (gateway_id, meter_id, quantity), at, within, first=True)


def last_value(conn: Connection, gateway_id: str, meter_id: str,
               quantity: str) -> dict[str, Any] | None:
    """The newest reading of one register."""
    c = t.readings.c
    q = (select(c.ts, c.value, c.unit, c.quality)
         .where(c.gateway_id == gateway_id, c.meter_id == meter_id, c.quantity == quantity)
         .order_by(c.ts.desc()).limit(1))
    row = conn.execute(q).first()
    return None if row is None else dict(row._mapping)


def register_before(conn: Connection, gateway_id: str, meter_id: str, quantity: str,
                    at: datetime, since: datetime) -> tuple[datetime, str] | None:
    """The last reading of a register in [since, at): how far a running bucket has got."""
    return _register_edge(conn, (gateway_id, meter_id, quantity), since, at, first=False)


def _register_edge(conn: Connection, register: tuple[str, str, str], lo: datetime,
                   hi: datetime, first: bool) -> tuple[datetime, str] | None:
    """The first (or last) reading of a register in [lo, hi)."""
    c = t.readings.c
    gateway_id, meter_id, quantity = register
    q = (select(c.ts, c.value).where(c.gateway_id == gateway_id, c.meter_id == meter_id,
                                     c.quantity == quantity, c.ts >= lo, c.ts < hi)
         .order_by(c.ts if first else c.ts.desc()).limit(1))
    row = conn.execute(q).first()
    return None if row is None else (row[0], row[1])


def sessions_of_gateways(conn: Connection, gateway_ids: list[str],
                         limit: int = 50) -> list[dict[str, Any]]:
    """The newest charging and relay sessions of these gateways (their current report)."""
    if not gateway_ids:
        return []
    return _sessions(conn, t.session_latest.c.gateway_id.in_(gateway_ids), limit)


def _sessions(conn: Connection, where: Any, limit: int) -> list[dict[str, Any]]:
    c = t.session_latest.c
    q = (select(c.gateway_id, c.session_id, c.completed, c.charge_point_id, c.connector,
                c.badge, c.started_at, c.stopped_at, c.energy_wh)
         .where(where).order_by(c.started_at.desc()).limit(limit))
    return [dict(r._mapping) for r in conn.execute(q)]
