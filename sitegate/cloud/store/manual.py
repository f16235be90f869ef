"""Readings entered from outside the gateway: stored with who entered them and from
where, read back as billing's ``Manual`` values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Connection, select

from sitegate.cloud.billing.manual import Manual
from sitegate.cloud.store.readings import utc
from sitegate.cloud.store.tables import billing_manual_readings as MR


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def save(conn: Connection, site_id: str, rows: list[Manual], now: datetime) -> int:
    if rows:
        conn.execute(MR.insert(), [
            {"site_id": site_id, "meter": r.meter, "quantity": r.quantity, "ts": _dt(r.ts),
             "value": format(r.value, "f"), "unit": r.unit, "source": r.source,
             "entered_by": r.entered_by, "note": r.note, "entered_at": now} for r in rows])
    return len(rows)


def _typed(row: tuple) -> Manual:
    meter, qty, ts, value, unit, source, by, note, rid = row
    return Manual(meter, qty, int(utc(ts).timestamp()), Decimal(value), unit, source, by,
                  note, rid)


def load(conn: Connection, site_id: str, start: int | None = None,
         end: int | None = None) -> list[Manual]:
    """The site's outside readings in [start, end] and, per register, the nearest one
    before and after (the neighbours an estimate across the window's edges needs), in
    time order. One query: a site has few of them next to its gateway readings."""
    c = MR.c
    q = select(c.meter, c.quantity, c.ts, c.value, c.unit, c.source, c.entered_by, c.note,
               c.id).where(c.site_id == site_id).order_by(c.meter, c.quantity, c.ts)
    rows = [_typed(r) for r in conn.execute(q)]
    if start is None or end is None:
        return rows
    out: list[Manual] = []
    by_reg: dict[tuple[str, str], list[Manual]] = {}
    for r in rows:
        by_reg.setdefault((r.meter, r.quantity), []).append(r)
    for regs in by_reg.values():
        before = [r for r in regs if r.ts < start]
        after = [r for r in regs if r.ts > end]
        out += before[-1:] + [r for r in regs if start <= r.ts <= end] + after[:1]
    return out
