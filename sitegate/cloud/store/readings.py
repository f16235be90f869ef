"""What billing reads of the ingest tables (``readings``, ``session_latest``), handed
over as billing's typed values: each register a compact ``Register``, bad values left out
and reported as ``Issue``s, session reports as stored (``billing.sessions`` reads them)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    and_,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.engine import Dialect

from sitegate.cloud.billing.consumption import Issue
from sitegate.cloud.billing.registers import Register
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.billing.units import kwh_to_units
from sitegate.cloud.store import tables

TS = DateTime(timezone=True)
READINGS = tables.readings
SESSION_LATEST = tables.session_latest
MARGIN = 3 * 86400  # readings beyond the period, to interpolate across its edges
_FETCH = 20_000  # rows fetched from the cursor at a time


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
    register as a compact ``Register`` (16 bytes a reading).

    One query per (meter, quantity), ordered by time, read through the DBAPI cursor in
    large chunks (the index ``ix_readings_load`` covers it), so values append straight to
    the register's arrays. Values marked invalid, or that are not numbers, are skipped and
    reported."""
    keys = _meter_keys(model)
    quantities = sorted({q for m in model.meters for q in (m.import_quantity, m.export_quantity)})
    dialect = conn.dialect
    sql, order = _series_sql(dialect)
    bind = TS.dialect_impl(dialect).bind_processor(dialect) or (lambda v: v)
    lo, hi = bind(_dt(start - MARGIN)), bind(_dt(end + MARGIN))
    when_of = _Stamps(TS.dialect_impl(dialect).result_processor(dialect, None))
    out: dict[str, dict[str, Register]] = {}
    cur = conn.connection.cursor()  # the DBAPI cursor: no row objects, no type processing
    try:
        for gw, mid in sorted(keys):
            site_meter = keys[(gw, mid)]
            for qty in quantities:
                p = {"gw": gw, "mid": mid, "qty": qty, "lo": lo, "hi": hi}
                cur.execute(sql, [p[k] for k in order] if order else p)
                reg = _read_series(cur, when_of, site_meter, issues)
                if len(reg):
                    have = out.setdefault(site_meter, {}).get(qty)
                    if have is not None:  # two store meters billed as one: merge, then sort
                        have.ts.extend(reg.ts)
                        have.values.extend(reg.values)
                    else:
                        out[site_meter][qty] = reg
    finally:
        cur.close()
    for regs in out.values():
        for reg in regs.values():
            reg.sort()
    return out


# Register units by unit text: decimals of a kWh value that are whole micro-kWh.
_SCALE = {"kWh": 6, "": 6, "Wh": 3, "m³": 6, "m3": 6}
_POW10 = tuple(10**k for k in range(7))
_DIGITS = 18  # at most this many digits in micro-kWh: far inside int64 and Decimal's 28


def _neighbour(agg: Any, op: str, edge: str) -> Any:
    """The register's nearest reading at or beyond the window's edge (else the edge), so
    a gap of any length is bridged by the same two readings whatever window is billed:
    January alone and January inside Q1 interpolate between the same neighbours."""
    n = READINGS.alias("n").c
    edge_p = bindparam(edge, type_=TS)
    beyond = n.ts <= edge_p if op == "<=" else n.ts >= edge_p
    nearest = select(agg(n.ts)).where(and_(
        n.gateway_id == bindparam("gw"), n.meter_id == bindparam("mid"),
        n.quantity == bindparam("qty"), n.quality != literal_column("'invalid'"), beyond,
    )).scalar_subquery()
    return func.coalesce(nearest, edge_p)


def _series_sql(dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """The per-register query as the driver's SQL text, and its parameter order when the
    driver takes positional parameters (SQLite) rather than named ones (psycopg)."""
    r = READINGS.c
    lo, hi = _neighbour(func.max, "<=", "lo"), _neighbour(func.min, ">=", "hi")
    q = select(r.ts, r.value, r.unit, r.quality).where(and_(
        r.gateway_id == bindparam("gw"), r.meter_id == bindparam("mid"),
        r.quantity == bindparam("qty"), r.ts >= lo, r.ts <= hi)).order_by(r.ts)
    compiled = q.compile(dialect=dialect)
    order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
    return str(compiled), order


class _Stamps(dict):
    """Stored ``ts`` -> epoch seconds, parsed once per distinct value: a site's meters share
    their quarter-hours, so a month is ~3,000 parses, not one per reading. A value is
    parsed as SQLAlchemy would (the dialect's own result processor), then as ``utc``."""

    def __init__(self, parse: Callable[[Any], Any] | None) -> None:
        super().__init__()
        self.parse = parse

    def __missing__(self, raw: Any) -> int:
        ts = self.parse(raw) if self.parse is not None else raw
        when = self[raw] = int(utc(ts).timestamp())
        return when


def _read_series(cur: Any, when_of: _Stamps, site_meter: str,
                 issues: list[Issue] | None) -> Register:
    """One register's rows (ts, value, unit, quality), in time order, into a Register.

    A plain decimal text ("-12.345") within the unit's resolution is converted to integer
    micro-kWh by integer arithmetic, exactly what Decimal gives; anything else (exponent,
    more decimals than micro-kWh, "+", spaces, NaN, odd units) goes through Decimal as
    before, so the result is the same either way."""
    reg = Register()
    ts_append, value_append = reg.ts.append, reg.values.append
    pow10, scales, digits = _POW10, _SCALE, _DIGITS
    while rows := cur.fetchmany(_FETCH):
        for raw_ts, value, unit, quality in rows:
            try:
                when = when_of[raw_ts]
            except (ValueError, TypeError, OverflowError) as exc:  # not a time: left out
                if issues is not None:
                    issues.append(Issue("skipped_reading", site_meter, 0,
                                        f"time {raw_ts!r}: {exc}"))
                continue
            if quality != "invalid":
                scale = scales.get(unit)
                if scale is not None:
                    whole, _, frac = value.partition(".")
                    body = whole + frac
                    pad = scale - len(frac)
                    if (pad >= 0 and len(body) + pad <= digits and body.isascii()
                            and (body.isdigit() or (body[:1] == "-" and body[1:].isdigit()))):
                        ts_append(when)
                        value_append(int(body) * pow10[pad])
                        continue
            try:
                if quality == "invalid":
                    raise ValueError("reading marked invalid")
                units = kwh_to_units(Decimal(value), unit)
                value_append(units)
            except (ValueError, InvalidOperation, OverflowError) as exc:
                if isinstance(exc, OverflowError):
                    exc = ValueError(f"value {value!r} out of range")
                if issues is not None:
                    issues.append(Issue("skipped_reading", site_meter, when, str(exc)))
                continue
            ts_append(when)
    return reg


def session_rows(conn: Connection, gateways: list[str], start: int,
                 end: int) -> list[tuple[str, str, int | None, str]]:
    """(gateway, session id, stop epoch s, stored payload) of the completed sessions of
    the gateways ending in [start - 1 day, end + 1 day), from the ingest's one current
    report per session (the completed report wins, across buffer epochs too)."""
    s = SESSION_LATEST.c
    q = select(s.gateway_id, s.session_id, s.stopped_at, s.payload).where(and_(
        s.gateway_id.in_(gateways), s.completed.is_(True), s.stopped_at >= _dt(start - 86400),
        s.stopped_at < _dt(end + 86400))).order_by(s.gateway_id, s.session_id)
    return [(gw, sid, int(utc(stopped).timestamp()) if stopped is not None else None, payload)
            for gw, sid, stopped, payload in conn.execute(q)]


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
