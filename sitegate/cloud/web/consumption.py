"""Energy per day or month from a meter's cumulative register, for the console's plots.

A bucket's energy is the register's difference between its first readings at or after the
bucket's two boundaries (within an hour of them): no interpolation, and a bucket without
readings on both sides is empty, not zero. The bucket still running (this month) ends at
its newest reading so far. A tenant's figures are restricted to the times
the billing point was theirs: a bucket outside their occupancy is empty too, so last
year's bar never shows the previous tenant's consumption.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import Engine

from sitegate.cloud.billing.sitemodel import SiteModel, local_dt
from sitegate.cloud.store import console

SLACK = timedelta(hours=1)


def _utc(v: datetime) -> datetime:
    return v if v.tzinfo else v.replace(tzinfo=UTC)


def add_months(d: date, n: int) -> date:
    k = d.year * 12 + d.month - 1 + n
    return date(k // 12, k % 12 + 1, 1)


def month_bounds(last: date, n: int) -> list[date]:
    """The n + 1 month starts bounding the ``n`` months up to and including ``last``'s."""
    first = add_months(last, -(n - 1))
    return [add_months(first, k) for k in range(n + 1)]


def day_bounds(last: date, n: int) -> list[date]:
    """The n + 1 midnights bounding the ``n`` days up to and including ``last``."""
    return [last - timedelta(days=n - 1 - k) for k in range(n + 1)]


def energy(engine: Engine, model: SiteModel, meter: str, bounds: list[date],
           export: bool = False) -> list[Decimal | None]:
    """kWh (or m³) between consecutive local-date boundaries of one site-model meter (its
    import register, or with ``export`` its export register)."""
    m = next((x for x in model.meters if x.id == meter), None)
    if m is None:
        return [None] * (len(bounds) - 1)
    quantity = m.export_quantity if export else m.import_quantity
    values: list[Decimal | None] = []
    now = datetime.now(UTC)
    with engine.connect() as conn:
        prev = None
        for d in bounds:
            at = datetime(d.year, d.month, d.day, tzinfo=model.tz).astimezone(UTC)
            if at > now and prev is not None and prev <= now:
                # the bucket still running (this month, today): as far as it has got
                got = console.register_before(conn, m.gateway, m.source_id, quantity,
                                              now + SLACK, prev)
            else:
                got = console.register_at(conn, m.gateway, m.source_id, quantity, at,
                                          at + SLACK)
            prev = at
            try:
                values.append(Decimal(got[1]) if got else None)
            except InvalidOperation:
                values.append(None)
    out: list[Decimal | None] = []
    for a, b in zip(values, values[1:], strict=False):
        out.append(b - a if a is not None and b is not None and b >= a else None)
    return out


def meters_of(model: SiteModel, point: str, first: date, end: date) -> list[str]:
    """Meters assigned to a billing point at some time in [first, end)."""
    out = []
    for a in model.meter_assignments:
        lo = local_dt(a.start, model.tz).date()
        hi = local_dt(a.end, model.tz).date() if a.end is not None else None
        if a.billing_point == point and lo < end and (hi is None or first < hi):
            out.append(a.meter)
    return out


def occupied(model: SiteModel, account: str, point: str, first: date, end: date) -> bool:
    """The account held the billing point for the whole of [first, end)."""
    for o in model.occupancy:
        if o.account != account or o.billing_point != point:
            continue
        lo = local_dt(o.start, model.tz).date()
        hi = local_dt(o.end, model.tz).date() if o.end is not None else None
        if lo <= first and (hi is None or end <= hi):
            return True
    return False


def points_of(model: SiteModel, account: str) -> list[str]:
    return sorted({o.billing_point for o in model.occupancy if o.account == account})


def tenant_series(engine: Engine, model: SiteModel, account: str, bounds: list[date]
                  ) -> dict[str, list[Decimal | None]]:
    """Per billing point of the account: energy per bucket, only where it was theirs."""
    out: dict[str, list[Decimal | None]] = {}
    for bp in points_of(model, account):
        total: list[Decimal | None] = [None] * (len(bounds) - 1)
        for meter in meters_of(model, bp, bounds[0], bounds[-1]):
            for i, v in enumerate(energy(engine, model, meter, bounds)):
                if v is not None:
                    total[i] = (total[i] or Decimal(0)) + v
        for i in range(len(total)):
            if not occupied(model, account, bp, bounds[i], bounds[i + 1]):
                total[i] = None
        out[bp] = total
    return out


def day_profile(engine: Engine, model: SiteModel, meter: str, day: date
                ) -> tuple[list[str], list[Decimal | None]]:
    """A day's 15-minute energies of one meter: (local "HH:MM" labels, kWh per quarter)."""
    m = next((x for x in model.meters if x.id == meter), None)
    start = datetime(day.year, day.month, day.day, tzinfo=model.tz).astimezone(UTC)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=model.tz).astimezone(UTC)
    n = int((end - start).total_seconds() // 900)  # 92, 96 or 100 (DST days)
    labels = [(start + timedelta(minutes=15 * k)).astimezone(model.tz).strftime("%H:%M")
              for k in range(n)]
    if m is None:
        return labels, [None] * n
    with engine.connect() as conn:
        rows = console.register_series(conn, m.gateway, m.source_id, m.import_quantity,
                                       start, end + timedelta(minutes=1), limit=2000)
    at: dict[datetime, Decimal] = {}
    for ts, v in rows:
        try:
            at[_utc(ts)] = Decimal(v)
        except InvalidOperation:
            continue
    out: list[Decimal | None] = []
    for k in range(n):
        a = at.get(start + timedelta(minutes=15 * k))
        b = at.get(start + timedelta(minutes=15 * (k + 1)))
        out.append(b - a if a is not None and b is not None and b >= a else None)
    return labels, out


def community(engine: Engine, model: SiteModel, first: date, end: date) -> dict | None:
    """The solar community's month (or any [first, end)): production (the PV meters' export
    registers), fed into the grid and drawn from it (the grid meter's export and import),
    self-consumption = production - fed in, autonomy = self-consumption / (self-consumption
    + drawn). None without a grid meter; a figure without readings on both sides is None."""
    site = model.site
    if not site.grid_meter:
        return None
    bounds = [first, end]
    drawn = energy(engine, model, site.grid_meter, bounds)[0]
    fed = energy(engine, model, site.grid_meter, bounds, export=True)[0]
    production: Decimal | None = Decimal(0) if site.pv_meters else None
    for pv in site.pv_meters:
        v = energy(engine, model, pv, bounds, export=True)[0]
        production = None if v is None or production is None else production + v
    used = production - fed if production is not None and fed is not None else None
    autonomy = None
    if used is not None and drawn is not None and used + drawn > 0:
        autonomy = (used / (used + drawn) * 100).quantize(Decimal("0.1"))
    return {"production": production, "fed_in": fed, "drawn": drawn,
            "self_consumption": used, "autonomy": autonomy}
