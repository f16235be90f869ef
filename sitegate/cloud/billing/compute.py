"""Billing one site for one period: pure function from the site model, the readings and
the sessions to one invoice document per account, plus the site's reconciliation.

Invoices are typed values (``document.Invoice``), JSON only when stored; built in a fixed
order, so billing the same period twice from the same data gives the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from sitegate.cloud.billing import solar as sol
from sitegate.cloud.billing.consumption import (
    ESTIMATED,
    MISSING,
    Assignment,
    Issue,
    Series,
    Split,
    billing_point_series,
    interval_consumption,
)
from sitegate.cloud.billing.daily import Daily, day_bounds
from sitegate.cloud.billing.document import Invoice, Recipient, Totals
from sitegate.cloud.billing.invoice import line_amount
from sitegate.cloud.billing.lines import Days, Line, plain
from sitegate.cloud.billing.periods import STEP, Grid, Period, grid_for, local_midnight
from sitegate.cloud.billing.registers import Register
from sitegate.cloud.billing.sitemodel import (
    Meter,
    Occupancy,
    SiteModel,
    Tariff,
    local_dt,
    nearest_quarter,
)
from sitegate.cloud.billing.tariffs import (
    interval_keys,
    month_chunks,
    segments,
    session_quantities,
    session_tariff,
    version_at,
    version_spans,
)
from sitegate.cloud.billing.units import CENT, kwh_to_units, round_money, units_to_kwh
from sitegate.cloud.billing.vat import categories, change_dates, vat_of

IMPORT = "1-0:1.8.0"
EXPORT = "1-0:2.8.0"
# Register readings by site meter id, then quantity: a Register (what the store hands
# over), or any iterable of (epoch s, micro-kWh) pairs in any order (made a Register).
Readings = Mapping[str, Mapping[str, Register | Iterable[tuple[int, int]]]]
# Readings entered from outside the gateway: site meter id -> epoch s -> what explain shows.
Manual_ = Mapping[str, Mapping[int, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class SessionIn:
    session_id: str
    gateway: str
    charge_point: str
    connector: int
    kind: str  # ev | laundry | ebike
    badge: str | None
    start: int  # epoch s
    stop: int
    energy_wh: Decimal
    # the cloud's check of its signed values (billing.calibrated), None: not calibrated
    signed: dict[str, Any] | None = None


@dataclass(slots=True)
class BillRun:
    invoices: dict[str, Invoice]  # account id -> its invoice
    summary: dict[str, Any]
    digests: dict[str, str]  # site meter id -> digest of the readings billed
    issues: list[Issue] = field(default_factory=list)

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        """The invoices as stored (JSON)."""
        return {acc: inv.to_json() for acc, inv in self.invoices.items()}


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _epoch(v: date | datetime, model: SiteModel) -> int:
    if isinstance(v, datetime):
        return int((v if v.tzinfo else v.replace(tzinfo=model.tz)).timestamp())
    return local_midnight(v, model.tz)


def _digest(rows: dict[str, Register]) -> str:
    h = hashlib.sha256()
    for q in sorted(rows):
        h.update(q.encode())
        rows[q].digest(h)  # the arrays' bytes: one C-level pass, not one per reading
    return h.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Stay:
    """One account's share of a billing point in the period: fixed fees for the days
    [first, end), energy for the intervals [t0, t1) (epoch s, boundaries of the grid)."""

    account: str
    first: date
    end: date
    t0: int
    t1: int


def _edge(v: date | datetime, model: SiteModel) -> tuple[date, int]:
    """An occupancy's from / to: its local day (fees) and the 15-min boundary nearest it
    (energy; a date alone is its midnight)."""
    local = local_dt(v, model.tz)
    return local.date(), int(nearest_quarter(local).replace(tzinfo=model.tz).timestamp())


def occupants(owner: str, occupancy: Sequence[Occupancy], period: Period, grid: Grid,
              model: SiteModel) -> list[Stay]:
    """Who is billed for a billing point over the period: tenants, the owner in between.
    Days and intervals are each cut without gap or overlap (the site model forbids
    overlapping occupancy, and rounding to the nearest boundary keeps the order)."""
    edges = []
    for o in occupancy:
        end = _edge(o.end, model) if o.end is not None else (date.max, 1 << 62)
        edges.append((_edge(o.start, model), end, o.account))
    edges.sort(key=lambda e: (e[0][1], e[0][0]))
    out: list[Stay] = []
    cur_d, cur_t = period.first, grid.start
    for (d0, t0), (d1, t1), acc in edges:
        lo_d, hi_d = max(d0, cur_d), min(d1, period.end)
        lo_t, hi_t = max(t0, cur_t), min(t1, grid.end)
        if lo_d >= hi_d and lo_t >= hi_t:
            continue
        if lo_d > cur_d or lo_t > cur_t:
            out.append(Stay(owner, cur_d, lo_d, cur_t, lo_t))
        out.append(Stay(acc, lo_d, max(lo_d, hi_d), lo_t, max(lo_t, hi_t)))
        cur_d, cur_t = max(lo_d, hi_d), max(lo_t, hi_t)
    if cur_d < period.end or cur_t < grid.end:
        out.append(Stay(owner, cur_d, period.end, cur_t, grid.end))
    return out


def move_splits(occupancy: Sequence[Occupancy], grid: Grid, model: SiteModel) -> list[Split]:
    """Every move of a billing point inside the grid (its edges included), with the
    handover reading noted there; a move-out reading first when both sides give one."""
    by_ts: dict[int, Split] = {}
    for o in occupancy:
        for when, reading in ((o.end, o.end_reading), (o.start, o.start_reading)):
            if when is None:
                continue
            ts = _edge(when, model)[1]
            if not grid.start <= ts <= grid.end:
                continue
            units = kwh_to_units(reading) if reading is not None else None
            noted = when.isoformat() if isinstance(when, datetime) else \
                datetime.combine(when, time()).isoformat()
            prev = by_ts.get(ts)
            if prev is None or (prev.reading is None and units is not None):
                by_ts[ts] = Split(ts, units, noted)
    return [by_ts[t] for t in sorted(by_ts)]


def _local_label(ts: int, tz: Any) -> str:
    """A line's from / to: the local date at midnight, else the local date-time."""
    dt = datetime.fromtimestamp(ts, tz)
    return dt.date().isoformat() if dt.time() == time() else dt.strftime("%Y-%m-%dT%H:%M")


def energy_spans(tariff: Tariff, t0: int, t1: int, tz: Any,
                 cuts: Sequence[date] = ()) -> list[tuple[int, str, str]]:
    """[t0, t1) cut where a tariff segment starts (a version, or a VAT change: at its
    local midnight): (segment index, from, to)."""
    froms = [local_midnight(d, tz) for _, d in segments(tariff, cuts)]
    out = []
    for k, vf in enumerate(froms):
        vend = froms[k + 1] if k + 1 < len(froms) else 1 << 62
        lo, hi = max(t0, vf), min(t1, vend)
        if lo < hi:
            out.append((k, _local_label(lo, tz), _local_label(hi, tz)))
    return out


def _series(model: SiteModel, meter_id: str, quantity: str, readings: Readings,
            grid: Grid) -> Series:
    m = {x.id: x for x in model.meters}[meter_id]
    rows = readings.get(meter_id, {}).get(quantity, [])
    roll = kwh_to_units(m.rollover) if m.rollover else None
    s = interval_consumption(rows, grid.start, grid.n, meter_id, roll)
    return s


class _Trace:
    """Where a line's numbers come from: meters, their readings, intervals."""

    def __init__(self, model: SiteModel, readings: dict[str, dict[str, Register]],
                 grid: Grid, manual: Manual_ | None = None) -> None:
        self.model, self.readings, self.grid = model, readings, grid
        self.manual = manual or {}
        self.meters = {m.id: m for m in model.meters}
        self.sources: list[dict[str, Any]] = []

    def _rows(self, meter: str) -> Register:
        q = self.meters[meter].import_quantity if meter in self.meters else IMPORT
        return self.readings.get(meter, {}).get(q) or Register()

    def add(self, bp: str, assignments: Sequence[Assignment], i0: int, i1: int,
            series: Series) -> str:
        lo, hi = self.grid.start + i0 * STEP, self.grid.start + i1 * STEP
        meters = []
        for a in assignments:
            a_lo, a_hi = max(lo, a.start), min(hi, a.end if a.end is not None else hi)
            if a_lo >= a_hi:
                continue
            rows = self._rows(a.meter)
            j0, j1 = rows.span(a_lo, a_hi)
            first, last = (rows[j0], rows[j1 - 1]) if j1 > j0 else (None, None)
            m = self.meters[a.meter]
            entry = {
                "meter": a.meter, "gateway": m.gateway, "meter_id": m.source_id,
                "from": _iso(a_lo), "to": _iso(a_hi), "readings": j1 - j0,
                "first": [_iso(first[0]), str(units_to_kwh(first[1]))] if first else None,
                "last": [_iso(last[0]), str(units_to_kwh(last[1]))] if last else None,
                "start_reading": str(units_to_kwh(a.start_reading))
                if a.start_reading is not None and a_lo == a.start else None,
                "end_reading": str(units_to_kwh(a.end_reading))
                if a.end_reading is not None and a_hi == a.end else None,
            }
            outside = self._outside(a.meter, rows, j0, j1)
            if outside:
                entry["manual"] = outside
            meters.append(entry)
        fl = [f for i, f in series.flags.items() if i0 <= i < i1]
        sid = f"S{len(self.sources) + 1}"
        src: dict[str, Any] = {
            "id": sid, "billing_point": bp, "intervals": [_iso(lo), _iso(hi)],
            "interval_count": i1 - i0, "estimated": fl.count(ESTIMATED),
            "missing": fl.count(MISSING), "meters": meters,
        }
        for key, ts in (("move_in", lo), ("move_out", hi)):
            if ts in series.splits:
                src[key] = _split_view(ts, series.splits[ts])
        self.sources.append(src)
        return sid

    def _outside(self, meter: str, rows: Register, j0: int, j1: int) -> list[dict[str, Any]]:
        """Readings entered from outside among those the span used: inside it, and the
        neighbours on either side that estimates across its edges come from."""
        notes = self.manual.get(meter)
        if not notes:
            return []
        return [notes[rows.ts[j]] for j in range(max(j0 - 1, 0), min(j1 + 1, len(rows)))
                if rows.ts[j] in notes]


def _split_view(ts: int, info: dict[str, Any]) -> dict[str, Any]:
    """How a move's boundary got its register value, for the trace."""
    out = {"at": _iso(ts), "noted": info["noted"], "meter": info["meter"],
           "method": info["method"], "estimated": info.get("estimated", False),
           "reading": str(units_to_kwh(info["reading"])) if "reading" in info else None}
    if "reading_at" in info:
        out["reading_at"] = _iso(info["reading_at"])
    if "rejected" in info:
        out["rejected"] = info["rejected"]
    return out


@dataclass(frozen=True, slots=True)
class _Pricing:
    """What turns a tariff item into a line's price and VAT: the tariff's segments (its
    versions cut at VAT changes), the VAT in force on a day, the solar price cap."""

    model: SiteModel
    segs: list[tuple[int, date]]

    def vat(self, item: Any, day: date) -> Decimal:
        return vat_of(item, self.model, day)

    def price(self, c: Any) -> Decimal:
        cap = self.model.site.solar_reference_price
        return min(c.price, cap) if c.applies == "solar" and cap is not None else c.price


def bucket_index(keys: np.ndarray, nk: int) -> list[np.ndarray]:
    """Per tariff bucket (segment * 2 + peak), the intervals in it, in order."""
    return [np.flatnonzero(keys == k) for k in range(nk)]


def _energy_lines(tariff: Tariff, buckets: list[np.ndarray], solar: np.ndarray,
                  cons: np.ndarray, i0: int, i1: int, bp: str, src: str,
                  labels: dict[str, str], spans: list[tuple[int, str, str]], pr: _Pricing,
                  unit: str = "kWh") -> list[Line]:
    s_acc, g_acc = [], []
    for idx in buckets:  # the bucket's intervals inside [i0, i1): sums in int64, exact
        if i0 > 0 or i1 < len(cons):
            idx = idx[np.searchsorted(idx, i0):np.searchsorted(idx, i1)]
        s = int(solar[idx].sum())
        s_acc.append(s)
        g_acc.append(int(cons[idx].sum()) - s)
    lines = []
    for vi, v_from, v_to in spans:
        version = tariff.versions[pr.segs[vi][0]]
        day = pr.segs[vi][1]
        for c in version.components:
            q = 0
            for peak in (0, 1):
                if c.tou == "all" or (c.tou == "peak") == bool(peak):
                    k = vi * 2 + peak
                    q += (s_acc[k] if c.applies != "grid" else 0) + \
                         (g_acc[k] if c.applies != "solar" else 0)
            if q == 0:
                continue
            qty = units_to_kwh(q)
            price = pr.price(c)
            extra = {"capped_from": plain(c.price)} if price != c.price else {}
            lines.append(Line(c.key, labels.get(c.key, c.label), v_from, v_to, qty, unit,
                              price, line_amount(qty, price), pr.vat(c, max(day, _day(v_from))),
                              bp, src, extra=extra))
    return lines


def _day(label: str) -> date:
    return date.fromisoformat(label[:10])


def _demand_lines(tariff: Tariff, cons: np.ndarray, i0: int, i1: int, grid: Grid, bp: str,
                  src: str, labels: dict[str, str], pr: _Pricing) -> list[Line]:
    """Per local month of [i0, i1): the highest 15-minute average power (the interval's
    energy x 4) times each demand charge of the version in force that month."""
    lines = []
    first = grid.local(i0).date()
    last = grid.local(i1 - 1).date()
    for lo, hi, _dim in month_chunks(first, last + timedelta(days=1)):
        j0 = max(i0, grid.index(local_midnight(lo, grid.tz)))
        j1 = min(i1, grid.index(local_midnight(hi, grid.tz)))
        if j0 >= j1:
            continue
        vi = version_at([v.valid_from for v in tariff.versions], lo)
        if vi < 0 or not tariff.versions[vi].demand:
            continue
        at = j0 + int(np.argmax(cons[j0:j1]))  # the first interval at the maximum
        peak = int(cons[at])
        if peak <= 0:
            continue
        kw = units_to_kwh(peak * 4)
        for d in tariff.versions[vi].demand:
            lines.append(Line(d.key, labels.get(d.key, d.label), _local_label(
                grid.start + j0 * STEP, grid.tz), _local_label(grid.start + j1 * STEP, grid.tz),
                kw, "kW", d.price, line_amount(kw, d.price), pr.vat(d, lo), bp, src,
                extra={"peak_at": _iso(grid.start + at * STEP)}))
    return lines


def _fee_lines(tariff: Tariff, first: date, end: date, bp: str,
               labels: dict[str, str], pr: _Pricing, cuts: Sequence[date]) -> list[Line]:
    lines = []
    for vi, lo, hi in version_spans(tariff, first, end, cuts):
        for fee in tariff.versions[vi].fees:
            for c_lo, c_hi, dim in month_chunks(lo, hi):
                share = Days((c_hi - c_lo).days, dim)
                lines.append(Line(fee.key, labels.get(fee.key, fee.label), c_lo.isoformat(),
                                  c_hi.isoformat(), share, "month", fee.monthly,
                                  round_money(fee.monthly * share.days / share.of),
                                  pr.vat(fee, c_lo), bp))
    return lines


def _session_lines(model: SiteModel, sessions: Sequence[SessionIn], period: Period,
                   issues: list[Issue]) -> dict[str, list[Line]]:
    """Sessions are billed in the period they end in, at the tariff valid when they began."""
    tz = model.tz
    badge_acc = {b.tag: b.account for b in model.badges}
    gateways = set(model.site.gateways) | {m.gateway for m in model.meters}
    agg: dict[tuple, list] = {}
    for s in sorted(sessions, key=lambda s: (s.stop, s.session_id)):
        stop_day = datetime.fromtimestamp(s.stop, tz).date()
        if s.gateway not in gateways or not period.first <= stop_day < period.end:
            continue
        acc = badge_acc.get(s.badge or "")
        t = session_tariff(model.session_tariffs, s.kind,
                           datetime.fromtimestamp(s.start, tz).date())
        if acc is None or t is None:
            why = "unknown badge" if acc is None else f"no {s.kind} tariff"
            issues.append(Issue("unbilled_session", s.charge_point, s.stop,
                                f"{s.session_id}: {why} {s.badge!r}"))
            continue
        energy, entry = _calibrated(model, s, issues)
        if energy is None:
            continue  # held back: its signed values do not vouch for it
        q = session_quantities(energy, s.stop - s.start)
        vat = vat_of(t, model, datetime.fromtimestamp(s.start, tz).date())
        first = next((c for c in _COMPONENTS if getattr(t, c)), None)
        for comp in _COMPONENTS:
            price = getattr(t, comp)
            if price:
                row = agg.setdefault((acc, t.kind, t.valid_from, vat, comp),
                                     [t, Decimal(0), Decimal(0), [], []])
                row[1] += q[comp]
                row[2] += q[comp] * price
                row[3].append(s.session_id)
                if entry is not None and comp == first:
                    row[4].append(entry)
    units = {"per_kwh": "kWh", "per_session": "session", "per_hour": "h", "per_minute": "min"}
    out: dict[str, list[Line]] = {}
    for (acc, kind, _vf, vat, comp), (t, qty, amount, ids, signed) in agg.items():
        key = f"{kind}_{comp}"
        shown = qty if comp != "per_hour" else qty.quantize(Decimal("0.0001"))
        extra: dict[str, Any] = {"sessions": ids}
        if signed:
            extra["calibrated"] = signed
        out.setdefault(acc, []).append(Line(
            key, model.site.labels.get(key, t.label), period.first.isoformat(),
            period.end.isoformat(), shown, units[comp], getattr(t, comp), round_money(amount),
            vat, extra=extra))
    return out


_COMPONENTS = ("per_kwh", "per_session", "per_hour", "per_minute")


def _calibrated(model: SiteModel, s: SessionIn, issues: list[Issue]
                ) -> tuple[Decimal | None, dict[str, Any] | None]:
    """The energy a session is billed with and what the invoice lists of its signed
    values. Verified: the signed energy (the calibrated meter's, equal to the unsigned
    within its rounding). Otherwise, per ``site.unsigned_sessions``: held back (None, an
    issue) or the unsigned energy with a note; never billed silently."""
    c = s.signed
    if c is None:
        return s.energy_wh, None
    entry: dict[str, Any] = {
        "session": s.session_id, "gateway": s.gateway, "charge_point": s.charge_point,
        "status": c["status"],
        "meter": (c.get("meter") or {}).get("serial"), "start": c.get("start"),
        "stop": c.get("stop"), "energy_wh": c.get("energy_wh"),
        "records": c.get("records", []), "public_key": c.get("public_key")}
    if c["status"] == "verified":
        entry["billed_wh"] = c["energy_wh"]
        return Decimal(c["energy_wh"]), entry
    why = "; ".join(c.get("problems") or []) or c["status"]
    if model.site.unsigned_sessions == "hold":
        issues.append(Issue("held_session", s.charge_point, s.stop,
                            f"{s.session_id}: signed values {c['status']}: {why}"[:500]))
        return None, None
    entry["billed_wh"] = format(s.energy_wh, "f")
    entry["note"] = f"billed from unsigned values: signed values {c['status']} ({why[:200]})"
    issues.append(Issue("unsigned_session_billed", s.charge_point, s.stop,
                        f"{s.session_id}: {entry['note']}"))
    return s.energy_wh, entry


def bill_site(model: SiteModel, period: Period, readings: Readings,
              sessions: Sequence[SessionIn] = (), manual: Manual_ | None = None) -> BillRun:
    """``manual``: per meter, per instant, what explain shows of a reading entered from
    outside the gateway (already merged into ``readings``)."""
    regs = {m: {q: Register.of(rows) for q, rows in qs.items()} for m, qs in readings.items()}
    return _bill(model, period, regs, sessions, manual)


@dataclass(slots=True)
class _Ctx:
    """What every step of one site's bill reads: the model, the window, the readings, and
    the issues found on the way."""

    model: SiteModel
    period: Period
    grid: Grid
    readings: dict[str, dict[str, Register]]
    issues: list[Issue] = field(default_factory=list)

    @property
    def zero(self) -> np.ndarray:
        return np.zeros(self.grid.n, dtype=np.int64)


@dataclass(slots=True)
class _Community:
    """Per-interval solar used by the consumers, the grid meter's flows, and the
    intervals without grid data (billed as grid)."""

    used: np.ndarray
    grid_import: np.ndarray
    grid_export: np.ndarray
    unknown: list[int]


def _billed_media(model: SiteModel) -> dict[str, str]:
    """The one medium the billing core bills each metered billing point by: electricity
    where it has an electricity meter, else its first meter's. A flat's heat and water
    meters next to its electricity meter are the expense statement's, never added to it."""
    media = {m.id: m.medium for m in model.meters}
    out: dict[str, str] = {}
    for a in model.meter_assignments:
        medium = media[a.meter]
        if out.get(a.billing_point) != "electricity":
            out[a.billing_point] = medium if a.billing_point not in out or \
                medium == "electricity" else out[a.billing_point]
    return out


def _assignments(model: SiteModel) -> dict[str, list[Assignment]]:
    """Each metered billing point's meters of its billed medium over time, in time order."""
    meters = {m.id: m for m in model.meters}
    billed = _billed_media(model)
    out: dict[str, list[Assignment]] = {}
    for a in model.meter_assignments:
        m = meters[a.meter]
        if m.medium != billed[a.billing_point]:
            continue
        out.setdefault(a.billing_point, []).append(Assignment(
            meter=a.meter, start=_epoch(a.start, model),
            end=_epoch(a.end, model) if a.end is not None else None,
            start_reading=kwh_to_units(a.start_reading) if a.start_reading is not None else None,
            end_reading=kwh_to_units(a.end_reading) if a.end_reading is not None else None,
            rollover=kwh_to_units(m.rollover) if m.rollover else None,
        ))
    for lst in out.values():
        lst.sort(key=lambda a: a.start)
    return out


def _occupancy(model: SiteModel) -> dict[str, list[Occupancy]]:
    out: dict[str, list[Occupancy]] = {}
    for o in model.occupancy:
        out.setdefault(o.billing_point, []).append(o)
    return out


def _consumption(ctx: _Ctx, assigns: dict[str, list[Assignment]],
                 occ: dict[str, list[Occupancy]]) -> dict[str, Series]:
    """Consumption of every metered billing point, in id order (the allocation order)."""
    model, grid = ctx.model, ctx.grid
    qty = {m.id: m.import_quantity for m in model.meters}
    imports = {mid: rows.get(qty.get(mid, IMPORT), []) for mid, rows in ctx.readings.items()}
    tolerance = 60 * model.site.handover_tolerance_minutes
    series = {}
    for bp in sorted(b.id for b in model.billing_points if b.id in assigns):
        splits = move_splits(occ.get(bp, []), grid, model)
        series[bp] = billing_point_series(assigns[bp], imports, grid.start, grid.n, splits,
                                          tolerance)
        ctx.issues.extend(series[bp].issues)
    return series


def _community(ctx: _Ctx, total: np.ndarray) -> _Community:
    """The community: solar used per interval, from the grid-connection meter."""
    site, grid = ctx.model.site, ctx.grid
    if not site.grid_meter:
        return _Community(ctx.zero, total, ctx.zero, [])
    g_imp = _series(ctx.model, site.grid_meter, IMPORT, ctx.readings, grid)
    g_exp = _series(ctx.model, site.grid_meter, EXPORT, ctx.readings, grid)
    ctx.issues.extend(g_imp.issues + g_exp.issues)
    used = sol.solar_used(total, g_imp.values)
    # More imported than the consumers' meters counted: solar would be negative (a
    # consumer meter missing from the model, a meter fault, losses). Billed as 0 solar,
    # and said.
    over = g_imp.values > total
    for i, f in g_imp.flags.items():
        if f == MISSING:
            over[i] = False
    negative = np.flatnonzero(over).tolist()
    if negative:
        ctx.issues.append(Issue(
            "negative_solar", site.grid_meter, grid.start + negative[0] * STEP,
            f"{len(negative)} intervals import more from the grid than the consumers' meters "
            f"counted (solar would be negative, billed as 0): "
            f"{units_to_kwh(int((g_imp.values[over] - total[over]).sum()))} kWh "
            "unexplained"))
    # No grid data for an interval (outside the meter's first/last reading): its solar
    # part cannot be known, so it is billed as grid, never guessed as solar.
    unknown = sorted(i for i, f in g_imp.flags.items() if f == MISSING)
    for i in unknown:
        used[i] = 0
    if unknown:
        ctx.issues.append(Issue("solar_unknown", site.grid_meter,
                                grid.start + unknown[0] * STEP,
                                f"{len(unknown)} intervals without grid data billed as grid"))
    return _Community(used, g_imp.values, g_exp.values, unknown)


def _reconcile(ctx: _Ctx, total: np.ndarray, com: _Community) -> sol.Reconciliation:
    """The site's energy balance: consumers, solar, grid, battery, metered production."""
    model, grid, site = ctx.model, ctx.grid, ctx.model.site
    charge = discharge = production = None
    if site.battery_meter:
        charge = _series(model, site.battery_meter, IMPORT, ctx.readings, grid).values
        discharge = _series(model, site.battery_meter, EXPORT, ctx.readings, grid).values
    if site.pv_meters:
        meters = {m.id: m for m in model.meters}
        production = ctx.zero
        for pv in site.pv_meters:
            s = _series(model, pv, meters[pv].export_quantity, ctx.readings, grid)
            ctx.issues.extend(s.issues)
            production += s.values
    return sol.reconcile(total, com.used, com.grid_import, com.grid_export, charge, discharge,
                         production)


def _medium(meters: Mapping[str, Meter], assigns: Sequence[Assignment]) -> str:
    """What a billing point's meters measure (the site model keeps them alike)."""
    return meters[assigns[0].meter].medium if assigns else "electricity"


def _unit(meters: Mapping[str, Meter], assigns: Sequence[Assignment]) -> str:
    return meters[assigns[0].meter].unit if assigns else "kWh"


def _point_lines(ctx: _Ctx, assigns: dict[str, list[Assignment]],
                 occ: dict[str, list[Occupancy]], series: dict[str, Series],
                 alloc: sol.Allocator, trace: _Trace, daily: Daily) -> dict[str, list[Line]]:
    """Energy and fee lines of every billing point, by the account billed for each stay;
    electricity also by day into ``daily``."""
    model, grid, labels = ctx.model, ctx.grid, ctx.model.site.labels
    tariffs = {t.id: t for t in model.tariffs}
    meters = {m.id: m for m in model.meters}
    used = sorted({b.tariff for b in model.billing_points})
    cuts = {t: change_dates(model, categories(tariffs[t])) for t in used}
    pricing = {t: _Pricing(model, segments(tariffs[t], cuts[t])) for t in used}
    buckets = {t: bucket_index(np.frombuffer(interval_keys(tariffs[t], grid, cuts[t]),
                                             dtype=np.int64), 2 * len(pricing[t].segs))
               for t in used}
    lines_by_acc: dict[str, list[Line]] = {}
    for bpm in sorted(model.billing_points, key=lambda b: b.id):
        bp, tariff = bpm.id, tariffs[bpm.tariff]
        cons = series[bp].values if bp in series else None
        unit = _unit(meters, assigns.get(bp, []))
        # water, gas and heat take no part in the solar community
        electric = unit == "kWh" and _medium(meters, assigns.get(bp, [])) == "electricity"
        solar = None if cons is None else alloc.share(cons) if electric else ctx.zero
        for stay in occupants(bpm.owner, occ.get(bp, []), ctx.period, grid, model):
            lines = lines_by_acc.setdefault(stay.account, [])
            if cons is not None and solar is not None and stay.t0 < stay.t1:
                i0 = (stay.t0 - grid.start) // STEP
                i1 = (stay.t1 - grid.start) // STEP
                src = trace.add(bp, assigns[bp], i0, i1, series[bp])
                if electric:
                    daily.add(stay.account, solar, cons, i0, i1)
                pr = pricing[tariff.id]
                energy = _energy_lines(tariff, buckets[tariff.id], solar, cons, i0, i1,
                                       bp, src, labels,
                                       energy_spans(tariff, stay.t0, stay.t1, model.tz,
                                                    cuts[tariff.id]), pr, unit)
                energy += _demand_lines(tariff, cons, i0, i1, grid, bp, src, labels, pr)
                if trace.sources[-1]["estimated"]:  # said on the line, not only in explain
                    energy = [replace(ln, extra={**ln.extra, "estimated": True})
                              for ln in energy]
                lines += energy
            lines += _fee_lines(tariff, stay.first, stay.end, bp, labels, pricing[tariff.id],
                                cuts[tariff.id])
    return lines_by_acc


def _invoices(ctx: _Ctx, lines_by_acc: dict[str, list[Line]], trace: _Trace,
              daily: Daily) -> dict[str, Invoice]:
    """One invoice per account with lines: numbered lines, the sources they name, the
    advances paid in the period, totals."""
    site, period = ctx.model.site, ctx.period
    accounts = {a.id: a for a in ctx.model.accounts}
    sources = {s["id"]: s for s in trace.sources}
    out: dict[str, Invoice] = {}
    for acc in sorted(acc for acc, lines in lines_by_acc.items() if lines):
        lines = tuple(replace(ln, n=k) for k, ln in enumerate(lines_by_acc[acc], 1))
        a = accounts[acc]
        adv = sum((x.amount for x in a.advances if period.first <= x.paid_on < period.end),
                  Decimal("0"))
        used = sorted({ln.source for ln in lines if ln.source}, key=lambda s: int(s[1:]))
        out[acc] = Invoice(
            site.id, site.name, site.currency, period.label, period.first, period.last,
            Recipient(a.id, a.name, a.delivery, a.email,
                      a.address.model_dump(mode="json") if a.address else None),
            lines, Totals.compute(((ln.vat_rate, ln.amount) for ln in lines), adv,
                                  site.cash_unit),
            tuple(sources[s] for s in used), daily.chart(acc))
    return out


def _summary(ctx: _Ctx, rec: sol.Reconciliation, unknown: list[int],
             invoices: dict[str, Invoice]) -> dict[str, Any]:
    energy = {k: str(units_to_kwh(getattr(rec, k))) for k in (
        "consumption", "solar", "grid", "grid_import", "grid_export", "battery_charge",
        "battery_discharge", "production_derived")}
    if unknown:  # derived from the grid meter, which did not say: not a number to trust
        energy["production_derived"] = None
    return {
        "site": ctx.model.site.id, "period": ctx.period.label, "intervals": ctx.grid.n,
        "billing_points": len(ctx.model.billing_points), "invoices": len(invoices),
        "energy_kwh": energy,
        "production_metered_kwh": str(units_to_kwh(rec.production_metered))
        if rec.production_metered is not None else None,
        "unexplained_import_kwh": None if unknown else str(units_to_kwh(rec.unexplained_import)),
        "intervals_without_grid_data": len(unknown),
        "amount_total": str(sum((inv.total_due for inv in invoices.values()),
                                Decimal("0")).quantize(CENT)),
        "issues": [{"kind": i.kind, "meter": i.meter, "at": _iso(i.ts), "detail": i.detail}
                   for i in ctx.issues],
    }


def _bill(model: SiteModel, period: Period, readings: dict[str, dict[str, Register]],
          sessions: Sequence[SessionIn], manual: Manual_ | None = None) -> BillRun:
    ctx = _Ctx(model, period, grid_for(period, model.tz), readings)
    assigns, occ = _assignments(model), _occupancy(model)
    series = _consumption(ctx, assigns, occ)
    meters = {m.id: m for m in model.meters}
    electric = [s.values for bp, s in series.items()
                if _medium(meters, assigns[bp]) == "electricity"]
    total = sol.totals(electric, ctx.grid.n)
    com = _community(ctx, total)
    rec = _reconcile(ctx, total, com)
    trace = _Trace(model, readings, ctx.grid, manual)
    daily = Daily(day_bounds(ctx.grid))
    lines_by_acc = _point_lines(ctx, assigns, occ, series, sol.Allocator(total, com.used), trace,
                                daily)
    for acc, lines in _session_lines(model, sessions, period, ctx.issues).items():
        lines_by_acc.setdefault(acc, []).extend(lines)
    invoices = _invoices(ctx, lines_by_acc, trace, daily)
    digests = {m: _digest(readings[m]) for m in sorted(readings)}
    return BillRun(invoices, _summary(ctx, rec, com.unknown, invoices), digests, ctx.issues)
