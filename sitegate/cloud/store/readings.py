"""What billing reads of the ingest tables (``readings``, ``session_latest``), handed
over as billing's typed values: each register a compact ``Register``, bad values left out
and reported as ``Issue``s, session reports as stored (``billing.sessions`` reads them)."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
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
from sitegate.cloud.store.plain import plain_units

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
    """Register readings of the site's meters in [start - MARGIN, end + MARGIN], widened
    to each register's nearest reading beyond either edge; each register as a compact
    ``Register`` (16 bytes a reading).

    Rows never become Python objects one by one: the store hands back each register
    whole, its times and its values as one text (SQLite: one aggregate query a register,
    in-process) or its times as binary and its values as one text (PostgreSQL: one query
    a few hundred registers, a LATERAL aggregate each), parsed at C speed (numpy). A
    register with anything else (a row marked invalid, mixed or odd units, an exponent,
    more decimals than micro-kWh, a time that is none) is read again row by row
    (``_read_series``), so it gives the same readings and issues as always."""
    keys = _meter_keys(model)
    quantities = sorted({q for m in model.meters for q in (m.import_quantity, m.export_quantity)})
    regs = [(gw, mid, qty) for gw, mid in sorted(keys) for qty in quantities]
    dialect = conn.dialect
    bind = TS.dialect_impl(dialect).bind_processor(dialect) or (lambda v: v)
    lo, hi = _dt(start - MARGIN), _dt(end + MARGIN)
    if dialect.name == "postgresql":
        got, odd = _load_pg(conn, regs, lo, hi)
    else:
        got, odd = _load_sqlite(conn, regs, bind(lo), bind(hi))
    if odd:
        slow = _load_rows(conn, odd, keys, bind(lo), bind(hi), issues)
        for reg in slow.values():
            reg.sort()  # in time order from the query; ties by value
        got.update(slow)
    out: dict[str, dict[str, Register]] = {}
    merged: list[Register] = []
    for key in regs:  # in register order: two store meters billed as one are merged
        reg = got.get(key)
        if reg is None or not len(reg):
            continue
        site_meter = keys[key[:2]]
        have = out.setdefault(site_meter, {}).get(key[2])
        if have is not None:
            have.extend(reg)
            merged.append(have)
        else:
            out[site_meter][key[2]] = reg
    for reg in merged:  # the others came in order
        reg.sort()
    return out


Key = tuple[str, str, str]  # gateway, store meter id, quantity


class _Shared:
    """The times of the register loaded last: the next one with the same times (the
    site's other meters, read at the same quarter hours) shares that array, not a copy
    (at 10,000 meters a month, 240 MB less)."""

    def __init__(self) -> None:
        self.last = np.zeros(0, dtype=np.int64)
        self.array = array("q")

    def register(self, ts: np.ndarray, values: np.ndarray) -> Register:
        """A Register of two int64 arrays, in (time, value) order as ``Register.sort``
        puts it."""
        if len(ts) > 1 and not bool((ts[1:] > ts[:-1]).all()):
            order = np.lexsort((values, ts))
            ts, values = ts[order], values[order]
        vals = array("q", np.ascontiguousarray(values, dtype=np.int64).tobytes())
        if len(ts) == len(self.last) and np.array_equal(ts, self.last):
            return Register(self.array, vals, shared=True)
        self.last = np.array(ts, dtype=np.int64)
        self.array = array("q", self.last.tobytes())
        return Register(self.array, vals, shared=True)


def _whole(shared: _Shared, count: int, times: np.ndarray | None, values: str | None,
           units: tuple[Any, Any], invalid: Any) -> Register | None:
    """A register handed back whole, or None when it must be read row by row."""
    unit = units[0]
    scale = _SCALE.get(unit) if unit == units[1] else None
    if scale is None or invalid or times is None or len(times) != count:
        return None
    got = plain_units(values or "", count, scale)
    return None if got is None else shared.register(times, got)


# The aggregates read the stored rows (``reading_rows``, not the view ``readings``): unit
# and quality as their ids (SQLite: unit texts looked up once a load, ``_unit_texts``;
# PostgreSQL: the ids of the units in a sub-select evaluated once a query), so no row
# joins a lookup table.
_INVALID = tables.QUALITY_IDS["invalid"]
_REGISTER_SQLITE = f"""
SELECT count(*), group_concat(r.ts), group_concat(r.value), min(r.unit_id), max(r.unit_id),
       max(r.quality_id = {_INVALID})
FROM reading_rows r
WHERE r.gateway_id = ?1 AND r.meter_id = ?2 AND r.quantity = ?3
  AND r.ts >= coalesce((SELECT max(n.ts) FROM reading_rows n WHERE n.gateway_id = ?1
                        AND n.meter_id = ?2 AND n.quantity = ?3 AND n.quality_id <> {_INVALID}
                        AND n.ts <= ?4), ?4)
  AND r.ts <= coalesce((SELECT min(n.ts) FROM reading_rows n WHERE n.gateway_id = ?1
                        AND n.meter_id = ?2 AND n.quantity = ?3 AND n.quality_id <> {_INVALID}
                        AND n.ts >= ?5), ?5)"""


def _unit_texts(conn: Connection) -> dict[Any, Any]:
    """Unit id -> text (None stays None: a register without rows)."""
    u = tables.reading_units.c
    return {None: None, **dict(conn.execute(select(u.id, u.unit)).all())}


class _Times(dict):
    """A register's times text -> epoch seconds: the meters of a site share their quarter
    hours, so most registers repeat a text already parsed (a few kept)."""

    def __init__(self, stamps: _Stamps) -> None:
        super().__init__()
        self.stamps = stamps

    def __missing__(self, text: str) -> np.ndarray | None:
        try:
            got = np.array([self.stamps[t] for t in text.split(",")], dtype=np.int64)
        except (ValueError, TypeError, OverflowError):
            got = None  # not a time: the register is read row by row, which says so
        if len(self) >= 8:
            self.clear()
        self[text] = got
        return got


def _load_sqlite(conn: Connection, regs: list[Key], lo: Any,
                 hi: Any) -> tuple[dict[Key, Register], list[Key]]:
    """SQLite: each register in one aggregate query (the index ``ix_readings_load`` covers
    it); the registers to read row by row."""
    dialect = conn.dialect
    times = _Times(_Stamps(TS.dialect_impl(dialect).result_processor(dialect, None)))
    got: dict[Key, Register] = {}
    shared = _Shared()
    odd: list[Key] = []
    unit = _unit_texts(conn)
    cur = conn.connection.cursor()
    try:
        for key in regs:
            cur.execute(_REGISTER_SQLITE, (*key, lo, hi))
            count, ts_text, values, u_min, u_max, invalid = cur.fetchone()
            if not count:
                continue
            reg = _whole(shared, count, times[ts_text], values, (unit[u_min], unit[u_max]),
                         invalid)
            if reg is None:
                odd.append(key)
            else:
                got[key] = reg
    finally:
        cur.close()
    return got, odd


_PG_METERS = 250  # meters a query (all their quantities): ~1.5 M readings at a time
_PG_CHUNK = 500  # registers a query on the register-by-register path
_PG_EPOCH = 946_684_800  # PostgreSQL's binary times count microseconds from 2000-01-01
# A register's fast form, on one of the two paths below: rows, times and values as 8-byte
# binary (values in micro-kWh: the NUMERIC times 10**6, or 10**3 for Wh, cast to bigint,
# which rounds half away from zero as ``kwh_to_units``; exact), and what its units, values
# and qualities are (1: kWh and alike, 2: Wh, 4: anything else, a value beyond the
# protocol's 1e12, or marked invalid; OR-ed over its rows).
_UNITS_PG = "ARRAY(SELECT id FROM reading_units WHERE unit IN ({}))"
_WH_PG = f"r.unit_id = ANY({_UNITS_PG.format(repr('Wh'))})"
_AGG_PG = f"""count(*), string_agg(timestamptz_send(r.ts), ''::bytea),
       string_agg(int8send(CASE WHEN NOT abs(r.value) < 1e12 THEN 0
                                WHEN {_WH_PG} THEN (r.value * 1000)::int8
                                ELSE (r.value * 1000000)::int8 END), ''::bytea),
       bit_or(CASE WHEN r.quality_id = {_INVALID} OR NOT abs(r.value) < 1e12 THEN 4
                   WHEN {_WH_PG} THEN 2
                   WHEN r.unit_id = ANY({_UNITS_PG.format("'kWh', '', 'm³', 'm3'")}) THEN 1
                   ELSE 4 END)"""
# Many meters of one gateway in one query: the planner reads their rows with one bitmap
# scan, each heap page once in its physical order (the ingest stores a quarter hour of all
# meters together, so one register's rows lie on as many pages as it has readings: an
# index scan per register would visit them one by one).
_WINDOW_PG = f"""
SELECT r.meter_id, r.quantity, {_AGG_PG}
FROM reading_rows r
WHERE r.gateway_id = %(gw)s AND r.meter_id = ANY(%(mids)s) AND r.quantity = ANY(%(qtys)s)
  AND r.ts >= %(lo)s AND r.ts <= %(hi)s
GROUP BY r.meter_id, r.quantity"""
# The nearest valid readings beyond the window's edges (an index probe each side), for
# the registers without a reading on both edges.
_BEYOND_PG = f"""
WITH k AS (SELECT * FROM unnest(%(gw)s::text[], %(mid)s::text[], %(qty)s::text[])
           WITH ORDINALITY AS k(gw, mid, qty, idx))
SELECT k.idx,
  (SELECT max(n.ts) FROM reading_rows n WHERE n.gateway_id = k.gw AND n.meter_id = k.mid
     AND n.quantity = k.qty AND n.quality_id <> {_INVALID} AND n.ts < %(lo)s),
  (SELECT min(n.ts) FROM reading_rows n WHERE n.gateway_id = k.gw AND n.meter_id = k.mid
     AND n.quantity = k.qty AND n.quality_id <> {_INVALID} AND n.ts > %(hi)s)
FROM k"""
# Register by register (a LATERAL aggregate each), with the nearest readings beyond the
# window's edges: for the registers without a reading on both edges.
_REGISTERS_PG = f"""
WITH k AS (SELECT * FROM unnest(%(gw)s::text[], %(mid)s::text[], %(qty)s::text[])
           WITH ORDINALITY AS k(gw, mid, qty, idx))
SELECT k.idx, a.*
FROM k CROSS JOIN LATERAL (
  SELECT {_AGG_PG}
  FROM reading_rows r
  WHERE r.gateway_id = k.gw AND r.meter_id = k.mid AND r.quantity = k.qty
    AND r.ts >= coalesce((SELECT max(n.ts) FROM reading_rows n WHERE n.gateway_id = k.gw
                          AND n.meter_id = k.mid AND n.quantity = k.qty
                          AND n.quality_id <> {_INVALID} AND n.ts <= %(lo)s), %(lo)s)
    AND r.ts <= coalesce((SELECT min(n.ts) FROM reading_rows n WHERE n.gateway_id = k.gw
                          AND n.meter_id = k.mid AND n.quantity = k.qty
                          AND n.quality_id <> {_INVALID} AND n.ts >= %(hi)s), %(hi)s)) a"""


def _pg_register(shared: _Shared, count: int, ts: bytes | None, values: bytes | None,
                 kinds: int | None) -> tuple[Register | None, int, int]:
    """A register in its fast form (None: read it row by row), its first and last time."""
    if not count or kinds not in (1, 2) or ts is None or values is None:
        return None, 0, 0
    micros = np.frombuffer(ts, dtype=">i8")
    if bool((np.abs(micros) > 2**60).any()):
        return None, 0, 0  # infinity: row by row says so
    times = micros.astype(np.int64) // 1_000_000 + _PG_EPOCH
    units = np.frombuffer(values, dtype=">i8").astype(np.int64)
    if len(times) != count or len(units) != count:
        return None, 0, 0
    return shared.register(times, units), int(times.min()), int(times.max())


def _load_pg(conn: Connection, regs: list[Key], lo: datetime,
             hi: datetime) -> tuple[dict[Key, Register], list[Key]]:
    """PostgreSQL: the window's readings from one bitmap-scan query per few hundred
    meters; a register without a reading on both edges of the window is probed for
    nearer readings beyond them and, when it has any, read with them by one LATERAL query
    per few hundred registers; each register aggregated in the database, its times as
    binary, its values as one text."""
    got: dict[Key, Register] = {}
    shared = _Shared()
    edges: dict[Key, tuple[int, int]] = {}
    seen: set[Key] = set()  # with rows in the window
    cur = conn.connection.cursor()
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    try:
        by_gw: dict[str, list[Key]] = {}
        for key in regs:
            by_gw.setdefault(key[0], []).append(key)
        before = _window_settings(cur, _WINDOW_SETTINGS)
        for gw, keys in by_gw.items():
            mids = sorted({k[1] for k in keys})
            qtys = sorted({k[2] for k in keys})
            for c0 in range(0, len(mids), _PG_METERS):
                cur.execute(_WINDOW_PG, {"gw": gw, "mids": mids[c0:c0 + _PG_METERS],
                                         "qtys": qtys, "lo": lo, "hi": hi}, binary=True)
                for mid, qty, *agg in cur.fetchall():
                    seen.add((gw, mid, qty))
                    reg, first, last = _pg_register(shared, *agg)
                    if reg is not None:
                        got[(gw, mid, qty)] = reg
                        edges[(gw, mid, qty)] = first, last
        _window_settings(cur, before)
        probe = [k for k in regs if edges.get(k) != (lo_s, hi_s)]
        again: list[Key] = []
        for chunk in _chunks(probe, _PG_CHUNK):
            cur.execute(_BEYOND_PG, _keys(chunk, lo, hi), binary=True)
            for idx, before, after in cur.fetchall():
                key = chunk[idx - 1]
                if before is not None or after is not None or (key in seen and key not in got):
                    # readings beyond an edge belong to it, or it has rows the fast form
                    # cannot hold: read again whole
                    got.pop(key, None)
                    again.append(key)
        odd: list[Key] = []
        for chunk in _chunks(again, _PG_CHUNK):
            cur.execute(_REGISTERS_PG, _keys(chunk, lo, hi), binary=True)
            for idx, *agg in cur.fetchall():
                if not agg[0]:
                    continue
                reg, _, _ = _pg_register(shared, *agg)
                if reg is None:
                    odd.append(chunk[idx - 1])
                else:
                    got[chunk[idx - 1]] = reg
    finally:
        cur.close()
    order = {k: i for i, k in enumerate(regs)}
    return got, sorted(odd, key=order.__getitem__)


# For the window queries only, in the billing's transaction: a bitmap scan, never a
# sequential one. A chunk of a site's meters is often more than the few per cent of a
# partition where the planner switches to reading all of it, but its rows lie together
# (the ingest stores a gateway's meters of a quarter hour side by side), so bitmap scans
# read each page about once over all chunks where sequential scans read the partition once
# a chunk (2,000 meters: 8 times). The aggregate of a chunk in memory, not sorted on disk.
_WINDOW_SETTINGS = {"enable_seqscan": "off", "work_mem": "64MB"}


def _window_settings(cur: Any, settings: dict[str, str]) -> dict[str, str]:
    """Set these for the transaction (``set_config(..., true)``); what they were."""
    before = {}
    for name, value in settings.items():
        cur.execute("SELECT current_setting(%s), set_config(%s, %s, true)",
                    (name, name, value))
        before[name] = cur.fetchone()[0]
    return before


def _chunks(keys: list[Key], size: int) -> list[list[Key]]:
    return [keys[i:i + size] for i in range(0, len(keys), size)]


def _keys(chunk: list[Key], lo: datetime, hi: datetime) -> dict[str, Any]:
    return {"gw": [k[0] for k in chunk], "mid": [k[1] for k in chunk],
            "qty": [k[2] for k in chunk], "lo": lo, "hi": hi}


def _load_rows(conn: Connection, regs: list[Key], keys: dict[tuple[str, str], str], lo: Any,
               hi: Any, issues: list[Issue] | None) -> dict[Key, Register]:
    """Registers read row by row (the rows the store did not convert say why)."""
    dialect = conn.dialect
    sql, order = _series_sql(dialect)
    when_of = _Stamps(TS.dialect_impl(dialect).result_processor(dialect, None))
    got: dict[Key, Register] = {}
    cur = conn.connection.cursor()  # the DBAPI cursor: no row objects, no type processing
    try:
        for gw, mid, qty in regs:
            p = {"gw": gw, "mid": mid, "qty": qty, "lo": lo, "hi": hi}
            cur.execute(sql, [p[k] for k in order] if order else p)
            got[(gw, mid, qty)] = _read_series(cur, when_of, keys[(gw, mid)], issues)
    finally:
        cur.close()
    return got


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
