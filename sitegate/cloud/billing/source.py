"""The one place that reads the ingest tables (``readings``, ``sessions``).

Column names of the ingest part are named here only, so a rename is a one-line fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import Boolean, Connection, DateTime, and_, column, select, table

from sitegate.cloud.billing.compute import SessionIn
from sitegate.cloud.billing.consumption import Issue
from sitegate.cloud.billing.registers import Register
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.billing.units import kwh_to_units

TS = DateTime(timezone=True)
READINGS = table("readings", column("gateway_id"), column("seq"), column("meter_id"),
                 column("ts", TS), column("quantity"), column("value"), column("unit"),
                 column("quality"), column("received_at", TS))
SESSION_LATEST = table("session_latest", column("gateway_id"), column("session_id"),
                       column("completed", Boolean()), column("payload"),
                       column("stopped_at", TS))
MARGIN = 3 * 86400  # readings beyond the period, to interpolate across its edges
_CHUNK = 500
_YIELD = 20_000  # rows fetched at a time (a server-side cursor on PostgreSQL)


def utc(ts: datetime | str) -> datetime:
    """SQLite hands back naive datetimes: they are UTC by the store's convention."""
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _meter_keys(model: SiteModel) -> dict[tuple[str, str], str]:
    return {(m.gateway, m.source_id): m.id for m in model.meters}


def load_readings(conn: Connection, model: SiteModel, start: int, end: int,
                  issues: list[Issue] | None = None) -> dict[str, dict[str, Register]]:
    """Register readings of the site's meters in [start - MARGIN, end + MARGIN], each
    register as a compact ``Register`` (16 bytes a reading; rows are streamed from the
    database, never all held as row objects).

    Values marked invalid, or that are not numbers, are skipped and reported."""
    keys = _meter_keys(model)
    quantities = sorted({q for m in model.meters for q in (m.import_quantity, m.export_quantity)})
    by_gw: dict[str, list[str]] = {}
    for gw, mid in keys:
        by_gw.setdefault(gw, []).append(mid)
    out: dict[str, dict[str, Register]] = {}
    r = READINGS.c
    for gw, mids in sorted(by_gw.items()):
        for i in range(0, len(mids), _CHUNK):
            q = select(r.meter_id, r.ts, r.quantity, r.value, r.unit, r.quality).where(and_(
                r.gateway_id == gw, r.meter_id.in_(mids[i:i + _CHUNK]),
                r.quantity.in_(quantities),
                r.ts >= _dt(start - MARGIN), r.ts <= _dt(end + MARGIN)))
            rows = conn.execute(q.execution_options(yield_per=_YIELD))
            for mid, ts, qty, value, unit, quality in rows:
                site_meter = keys[(gw, mid)]
                when = int(utc(ts).timestamp())
                try:
                    if quality == "invalid":
                        raise ValueError("reading marked invalid")
                    units = kwh_to_units(Decimal(value), unit)
                except (ValueError, InvalidOperation) as exc:
                    if issues is not None:
                        issues.append(Issue("skipped_reading", site_meter, when, str(exc)))
                    continue
                reg = out.setdefault(site_meter, {}).get(qty)
                if reg is None:
                    reg = out[site_meter][qty] = Register()
                reg.append(when, units)
    for regs in out.values():
        for reg in regs.values():
            reg.sort()
    return out


def load_sessions(conn: Connection, model: SiteModel, start: int, end: int) -> list[SessionIn]:
    """Completed sessions of the site's gateways ending in [start, end + 1 day), from the
    ingest's one current report per session (a session is reported while running, then
    completed; the completed report wins, across buffer epochs too)."""
    gateways = sorted(set(model.site.gateways) | {m.gateway for m in model.meters})
    s = SESSION_LATEST.c
    q = select(s.gateway_id, s.payload).where(and_(
        s.gateway_id.in_(gateways), s.completed.is_(True), s.stopped_at >= _dt(start - 86400),
        s.stopped_at < _dt(end + 86400))).order_by(s.gateway_id, s.session_id)
    rows: list[tuple[str, dict]] = []
    for gw, payload in conn.execute(q):
        try:
            rows.append((gw, json.loads(payload)))
        except ValueError:
            continue  # the ingest keeps the broken payload; nothing billable in it
    return list(_sessions(rows))


def _sessions(rows: Iterable[tuple[str, dict]]) -> Iterable[SessionIn]:
    for gw, d in rows:
        if d.get("status", "completed") != "completed" or not d.get("stop"):
            continue
        start = int(utc(datetime.fromisoformat(d["start"])).timestamp())
        stop = int(utc(datetime.fromisoformat(d["stop"])).timestamp())
        energy = d.get("energy_wh")
        if energy is None and d.get("meter_stop_wh") is not None:
            energy = Decimal(d["meter_stop_wh"]) - Decimal(d["meter_start_wh"])
        yield SessionIn(d["session_id"], gw, d.get("charge_point", ""), d.get("connector", 0),
                        d.get("kind", "ev"), d.get("badge"), start, stop,
                        Decimal(str(energy or 0)))


def late_readings(conn: Connection, model: SiteModel, start: int, end: int,
                  since: datetime) -> dict[str, dict]:
    """Readings of the period received after ``since``: site meter -> count, first ts."""
    keys = _meter_keys(model)
    r = READINGS.c
    out: dict[str, dict] = {}
    q = select(r.gateway_id, r.meter_id, r.ts).where(and_(
        r.ts >= _dt(start), r.ts <= _dt(end), r.received_at > since)).order_by(r.ts)
    for gw, mid, ts in conn.execute(q):
        site_meter = keys.get((gw, mid))
        if site_meter is None:
            continue
        row = out.setdefault(site_meter, {"count": 0, "first": utc(ts).isoformat()})
        row["count"] += 1
    return out
