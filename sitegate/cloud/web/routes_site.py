"""The site page: buildings and billing points with their occupants, meters with their
last values, and one meter's plots (a day's 15-minute profile, daily energy over a month,
a year by month)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from sitegate.cloud.billing.sitemodel import local_dt
from sitegate.cloud.store import console
from sitegate.cloud.web import consumption as cons
from sitegate.cloud.web.app import page
from sitegate.cloud.web.guard import Login, allow
from sitegate.cloud.web.routes_invoices import _model

router = APIRouter()


def _floats(values: list[Any]) -> list[float | None]:
    return [None if v is None else float(v) for v in values]


@router.get("/sites/{site}")
def site_page(request: Request, me: Login, site: str,
              meter: Annotated[str | None, Query(max_length=64)] = None,
              day: Annotated[date | None, Query()] = None) -> Response:
    allow(me, "site.equipment", site)
    model = _model(request, site)
    engine = request.app.state.engine
    day = day or datetime.now(model.tz).date()
    if meter is not None and meter not in {m.id for m in model.meters}:
        raise HTTPException(404, "not_found")
    meter = meter or (model.meters[0].id if model.meters else None)
    today = local_dt(datetime.now(UTC), model.tz).date()
    names = {a.id: a.name for a in model.accounts}
    points = []
    for b in model.buildings:
        for p in (p for p in model.billing_points if p.building == b.id):
            occ = [o for o in model.occupancy if o.billing_point == p.id
                   and local_dt(o.start, model.tz).date() <= today
                   and (o.end is None or today < local_dt(o.end, model.tz).date())]
            points.append({"building": b.name, "id": p.id, "name": p.name, "kind": p.kind,
                           "occupant": names.get(occ[0].account) if occ else None,
                           "meters": cons.meters_of(model, p.id, today, today.replace(
                               year=today.year + 1))})
    meters = []
    with engine.connect() as conn:
        for m in model.meters:
            last = console.last_value(conn, m.gateway, m.source_id, m.import_quantity)
            if last is not None:  # stored in UTC: shown in the site's time
                ts = last["ts"] if last["ts"].tzinfo else last["ts"].replace(tzinfo=UTC)
                last["ts"] = ts.astimezone(model.tz).strftime("%Y-%m-%d %H:%M")
            meters.append({"id": m.id, "gateway": m.gateway, "medium": m.medium,
                           "unit": m.unit, "last": last})
    month = day.replace(day=1)
    solar = cons.community(engine, model, month, cons.add_months(month, 1))
    with engine.connect() as conn:
        sessions = console.sessions_of_gateways(conn, list(model.site.gateways))
    holders = {b.tag: names.get(b.account, b.account) for b in model.badges}
    for x in sessions:
        x["holder"] = holders.get(x["badge"] or "", "–")
    charts = []
    if meter is not None:
        labels, quarters = cons.day_profile(engine, model, meter, day)
        charts.append({"title": "chart_day", "x": labels, "series": [_floats(quarters)],
                       "kind": "line"})
        first = day.replace(day=1)
        nxt = cons.add_months(first, 1)
        bounds = cons.day_bounds(nxt - timedelta(days=1), (nxt - first).days)
        charts.append({"title": "chart_month", "x": [d.strftime("%d") for d in bounds[:-1]],
                       "series": [_floats(cons.energy(engine, model, meter, bounds))],
                       "kind": "bars"})
        months = cons.month_bounds(day, 12)
        charts.append({"title": "chart_year", "x": [d.strftime("%Y-%m") for d in months[:-1]],
                       "series": [_floats(cons.energy(engine, model, meter, months))],
                       "kind": "bars"})
    return page(request, "site.html", {
        "site": site, "model": model, "points": points, "meters": meters, "meter": meter,
        "day": day, "charts": charts, "sessions": sessions, "solar": solar,
        "month": month.strftime("%Y-%m"),
        "money": me.may("invoices.overview", site)})
