"""What billing reads of the ingest tables (``readings``, ``session_latest``), handed
over as billing's typed values: each register a compact ``Register``, bad values left out
and reported as ``Issue``s, session reports as stored (``billing.sessions`` reads them)."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    and_,
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
    """Register readings of the site's meters in [start - MARGIN, end + MARGIN], and
    beyond each edge the register's nearest reading that is not invalid (with what lies
    between), each register as a compact ``Register`` (16 bytes a reading).

    Set-based: one query per gateway and CHUNK meters, in (meter, quantity, ts) order
    (SQLite walks ``ix_readings_load`` in that order), read through the DBAPI cursor in
    large chunks; then one query per CHUNK registers for the nearest readings beyond the
    edges of those without a usable reading right on the edge, and only for those whose
    neighbour lies further out, the rows up to it. Values marked invalid, or that are not
    numbers, are skipped and reported."""
    keys = _meter_keys(model)
    quantities = sorted({q for m in model.meters for q in (m.import_quantity, m.export_quantity)})
    lo_s, hi_s = start - MARGIN, end + MARGIN
    dialect = conn.dialect
    bind = TS.dialect_impl(dialect).bind_processor(dialect) or (lambda v: v)
    lo, hi = bind(_dt(lo_s)), bind(_dt(hi_s))
    when_of = _Stamps(TS.dialect_impl(dialect).result_processor(dialect, None))
    by_gateway: dict[str, list[str]] = {}
    for gw, mid in sorted(keys):
        by_gateway.setdefault(gw, []).append(mid)
    found: dict[tuple[str, str, str], _Series] = {}
    cur = conn.connection.cursor()  # the DBAPI cursor: no row objects, no type processing
    try:
        for gw, mids in by_gateway.items():
            for i in range(0, len(mids), CHUNK):
                part = mids[i:i + CHUNK]
                sql, params = _window_sql(dialect, gw, part, quantities, lo, hi)
                cur.execute(sql, params)
                _read_rows(cur, gw, keys, when_of, found)
        # Registers without a usable reading right on an edge: their nearest neighbours.
        edges = [(gw, mid, qty) for gw, mids in by_gateway.items() for mid in mids
                 for qty in quantities]
        # (a register whose reading on the edge is unusable asks too, and is told the
        # edge itself: nothing further out is read)
        need_lo = [k for k in edges if not found.get(k) or found[k].reg.ts[:1] != _one(lo_s)]
        need_hi = [k for k in edges if not found.get(k) or found[k].reg.ts[-1:] != _one(hi_s)]
        for side, need, edge in (("lo", need_lo, lo), ("hi", need_hi, hi)):
            for key, nearest in _neighbours(cur, dialect, side, need, edge, when_of):
                sql, params = _beyond_sql(dialect, key, side, bind(_dt(nearest)), edge)
                cur.execute(sql, params)
                extra: dict[tuple[str, str, str], _Series] = {}
                _read_rows(cur, key[0], keys, when_of, extra)
                if key in extra:
                    found.setdefault(key, _Series(keys[(key[0], key[1])])).add_edge(
                        side, extra[key])
    finally:
        cur.close()
    out: dict[str, dict[str, Register]] = {}
    for key in sorted(found):
        series = found[key]
        if issues is not None:
            issues += series.issues()
        reg = series.register()
        if not len(reg):
            continue
        site_meter, qty = series.site_meter, key[2]
        have = out.setdefault(site_meter, {}).get(qty)
        if have is not None:  # two store meters billed as one: merge, then sort
            have.ts.extend(reg.ts)
            have.values.extend(reg.values)
        else:
            out[site_meter][qty] = reg
    for regs in out.values():
        for reg in regs.values():
            reg.sort()
    return out


def _one(ts: int) -> array:
    return array("q", (ts,))


CHUNK = 400  # meters (or registers) per query: within SQLite's 999 parameters


class _Series:
    """One register as it is read: the window's readings, and those beyond either edge
    (read later, kept apart so the order of readings and issues is time order)."""

    __slots__ = ("site_meter", "reg", "bad", "before", "after")

    def __init__(self, site_meter: str) -> None:
        self.site_meter = site_meter
        self.reg = Register()
        self.bad: list[Issue] = []
        self.before: _Series | None = None
        self.after: _Series | None = None

    def add_edge(self, side: str, other: _Series) -> None:
        if side == "lo":
            self.before = other
        else:
            self.after = other

    def issues(self) -> list[Issue]:
        return [*(self.before.bad if self.before else []), *self.bad,
                *(self.after.bad if self.after else [])]

    def register(self) -> Register:
        if self.before is None and self.after is None:
            return self.reg
        reg = Register()
        for part in (self.before, self, self.after):
            if part is not None:
                reg.ts.extend(part.reg.ts)
                reg.values.extend(part.reg.values)
        return reg


def _in(column: str, n: int, positional: bool, name: str) -> str:
    marks = ", ".join("?" if positional else f"%({name}{k})s" for k in range(n))
    return f"{column} IN ({marks})"


def _window_sql(dialect: Dialect, gw: str, mids: list[str], quantities: list[str],
                lo: Any, hi: Any) -> tuple[str, Any]:
    """Every reading of ``mids`` x ``quantities`` of gateway ``gw`` in [lo, hi], in
    (meter, quantity, ts) order."""
    positional = dialect.paramstyle == "qmark"
    table = READINGS.name
    where = (f"gateway_id = {'?' if positional else '%(gw)s'} AND "
             f"{_in('meter_id', len(mids), positional, 'm')} AND "
             f"{_in('quantity', len(quantities), positional, 'q')} AND "
             f"ts >= {'?' if positional else '%(lo)s'} AND ts <= {'?' if positional else '%(hi)s'}")
    sql = (f"SELECT meter_id, quantity, ts, value, unit, quality FROM {table} WHERE {where} "
           "ORDER BY meter_id, quantity, ts")
    if positional:
        return sql, [gw, *mids, *quantities, lo, hi]
    params = {"gw": gw, "lo": lo, "hi": hi, **{f"m{k}": m for k, m in enumerate(mids)},
              **{f"q{k}": q for k, q in enumerate(quantities)}}
    return sql, params


def _neighbours(cur: Any, dialect: Dialect, side: str, need: list[tuple[str, str, str]],
                edge: Any, when_of: _Stamps) -> list[tuple[tuple[str, str, str], int]]:
    """(register, epoch s) of each register's nearest reading not marked invalid at or
    beyond the edge, where it lies strictly beyond it: one query per CHUNK registers, an
    index probe per register."""
    positional = dialect.paramstyle == "qmark"
    agg, op = ("max", "<=") if side == "lo" else ("min", ">=")
    out = []
    for i in range(0, len(need), CHUNK):
        part = need[i:i + CHUNK]
        if positional:
            values = ", ".join("(?, ?, ?)" for _ in part)
            params: Any = [x for key in part for x in key] + [edge]
            e = "?"
        else:
            values = ", ".join(f"(%(g{k})s, %(m{k})s, %(q{k})s)" for k in range(len(part)))
            params = {f"{c}{k}": x for k, key in enumerate(part)
                      for c, x in zip("gmq", key, strict=True)} | {"edge": edge}
            e = "%(edge)s"
        sql = (f"WITH v(g, m, q) AS (VALUES {values}) SELECT v.g, v.m, v.q, "
               f"(SELECT {agg}(r.ts) FROM {READINGS.name} r WHERE r.gateway_id = v.g AND "
               f"r.meter_id = v.m AND r.quantity = v.q AND r.quality <> 'invalid' AND "
               f"r.ts {op} {e}) FROM v")
        if not positional:  # the edge is compared with each probe: one typed value
            sql = sql.replace(e, f"CAST({e} AS TIMESTAMPTZ)")
        cur.execute(sql, params)
        edge_s = when_of[edge]
        for g, m, q, nearest in cur.fetchall():
            if nearest is not None and when_of[nearest] != edge_s:
                out.append(((g, m, q), when_of[nearest]))
    return out


def _beyond_sql(dialect: Dialect, key: tuple[str, str, str], side: str, nearest: Any,
                edge: Any) -> tuple[str, Any]:
    """The register's readings from its nearest neighbour up to the edge (edge excluded)."""
    positional = dialect.paramstyle == "qmark"
    ph = ("?",) * 5 if positional else ("%(g)s", "%(m)s", "%(q)s", "%(a)s", "%(b)s")
    cond = (f"ts >= {ph[3]} AND ts < {ph[4]}" if side == "lo"
            else f"ts > {ph[3]} AND ts <= {ph[4]}")
    sql = (f"SELECT meter_id, quantity, ts, value, unit, quality FROM {READINGS.name} "
           f"WHERE gateway_id = {ph[0]} AND meter_id = {ph[1]} AND quantity = {ph[2]} AND "
           f"{cond} ORDER BY ts")
    a, b = (nearest, edge) if side == "lo" else (edge, nearest)
    if positional:
        return sql, [*key, a, b]
    return sql, {"g": key[0], "m": key[1], "q": key[2], "a": a, "b": b}


# Register units by unit text: decimals of a kWh value that are whole micro-kWh.
_SCALE = {"kWh": 6, "": 6, "Wh": 3, "m³": 6, "m3": 6}
_POW10 = tuple(10**k for k in range(7))
_DIGITS = 18  # at most this many digits in micro-kWh: far inside int64 and Decimal's 28


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


def _read_rows(cur: Any, gw: str, keys: dict[tuple[str, str], str], when_of: _Stamps,
               found: dict[tuple[str, str, str], _Series]) -> None:
    """Rows (meter, quantity, ts, value, unit, quality), in (meter, quantity, ts) order,
    into each register's ``_Series``.

    A plain decimal text ("-12.345") within the unit's resolution is converted to integer
    micro-kWh by integer arithmetic, exactly what Decimal gives; anything else (exponent,
    more decimals than micro-kWh, "+", spaces, NaN, odd units) goes through Decimal as
    before, so the result is the same either way."""
    pow10, scales, digits = _POW10, _SCALE, _DIGITS
    cur_mid = cur_qty = None
    ts_append = value_append = bad = site_meter = None
    while rows := cur.fetchmany(_FETCH):
        for mid, qty, raw_ts, value, unit, quality in rows:
            if mid != cur_mid or qty != cur_qty:
                cur_mid, cur_qty = mid, qty
                series = found.get((gw, mid, qty))
                if series is None:
                    series = found[(gw, mid, qty)] = _Series(keys[(gw, mid)])
                ts_append, value_append = series.reg.ts.append, series.reg.values.append
                bad, site_meter = series.bad, series.site_meter
            try:
                when = when_of[raw_ts]
            except (ValueError, TypeError, OverflowError) as exc:  # not a time: left out
                bad.append(Issue("skipped_reading", site_meter, 0, f"time {raw_ts!r}: {exc}"))
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
                bad.append(Issue("skipped_reading", site_meter, when, str(exc)))
                continue
            ts_append(when)


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
