"""The operator's invoices: the sites, the overview with its filters and drill-down, one
invoice with its explanation, its PDF, and its lifecycle actions behind a confirmation.

The actions call ``billing.ops.act``, the operation the JSON API's
``POST /billing/sites/{site}/invoices/{number}/{action}`` calls, under the same scope.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from sitegate.cloud.billing import ops
from sitegate.cloud.billing.explain import explain, explain_text
from sitegate.cloud.billing.ledger import LifecycleError
from sitegate.cloud.billing.periods import PeriodError, parse_period
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.billing.sites import NotFound
from sitegate.cloud.store import console
from sitegate.cloud.web import overview as ov
from sitegate.cloud.web.app import page
from sitegate.cloud.web.guard import Form, Login, allow
from sitegate.cloud.web.models import site_model

router = APIRouter()
DRILL_ROWS = 200  # a drill-down lists at most this many (narrow it by period or state)
ACTIONS = ("issue", "pay", "remind", "cancel", "write-off", "credit")
# which actions fit which state (the ledger checks again; this only hides useless buttons)
FITS = {"draft": ("issue", "cancel"),
        "issued": ("pay", "remind", "cancel", "write-off", "credit"),
        "settled": ("pay", "credit"), "cancelled": (), "written_off": ()}


def _model(request: Request, site: str) -> SiteModel:
    model = site_model(request.app.state.engine, site)
    if model is None:
        raise HTTPException(404, "not_found")
    return model


def _period(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return parse_period(value).label
    except PeriodError:
        raise HTTPException(400, "bad_period") from None


@router.get("/sites")
def sites(request: Request, me: Login) -> Response:
    engine = request.app.state.engine
    known = ops.sites(engine)
    rows = []
    for site in me.sites("sites.list", known):
        item: dict[str, Any] = {"site": site, "money": me.may("invoices.overview", site)}
        if item["money"]:
            with engine.connect() as conn:
                summaries = console.invoice_summaries(conn, site)
                evs = console.event_amounts(conn, site)
            _, item["total"] = ov.summarize(summaries, evs, ov.PointIndex(_model(request, site)))
        rows.append(item)
    return page(request, "sites.html", {"rows": rows})


@router.get("/sites/{site}/invoices")
def overview(request: Request, me: Login, site: str,
             point: Annotated[list[str] | None, Query(max_length=500)] = None,
             period: Annotated[str | None, Query(max_length=40)] = None,
             state: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    allow(me, "invoices.overview", site)
    model = _model(request, site)
    label = _period(period)
    if state and state not in ov.STATES:
        raise HTTPException(400, "bad_state")
    known = {p.id for p in model.billing_points}
    chosen = frozenset(p for p in point or () if p in known) or None
    engine = request.app.state.engine
    with engine.connect() as conn:
        rows = console.invoice_summaries(conn, site, label)
        evs = console.event_amounts(conn, site, label)
    index = ov.PointIndex(model)
    periods, total = ov.summarize(rows, evs, index, chosen)
    if label or chosen:
        with engine.connect() as conn:
            all_periods = console.invoice_periods(conn, site)
    else:
        all_periods = [p["period"] for p in periods]
    drill = None
    if label or state:  # a period or a figure was chosen: the invoices behind it
        names = {a.id: a.name for a in model.accounts}
        drill = ov.drill_down(rows, evs, index, names, chosen, state or None)
    shown = drill[:DRILL_ROWS] if drill is not None else None
    return page(request, "overview.html", {
        "site": site, "model": model, "buildings": ov.buildings(model),
        "chosen": chosen or frozenset(), "period": label, "state": state,
        # the filter's part of every drill-down link, made once (a building may be 50 points)
        "point_qs": "".join(f"&point={quote(p)}" for p in sorted(chosen or ())),
        "periods": periods, "total": total, "all_periods": all_periods, "drill": shown,
        "drill_count": len(drill) if drill is not None else 0,
        "currency": model.site.currency, "counts": ov.COUNTS,
        "can_act": me.may("invoice.act", site)})


@router.get("/sites/{site}/invoices/{number}")
def invoice(request: Request, me: Login, site: str, number: int) -> Response:
    allow(me, "invoice.show", site)
    view = _view(request, site, number)
    return page(request, "invoice.html", {
        "site": site, "v": view, "doc": view["document"],
        "trace": explain_text(explain(view)),
        "actions": [a for a in FITS.get(view["state"], ()) if view["kind"] == "invoice"]
        if me.may("invoice.act", site) else [],
        "done": request.query_params.get("done")})


def _view(request: Request, site: str, number: int) -> dict[str, Any]:
    try:
        return ops.invoice(request.app.state.engine, site, number)
    except NotFound:
        raise HTTPException(404, "not_found") from None


@router.get("/sites/{site}/invoices/{number}/pdf")
def invoice_pdf(request: Request, me: Login, site: str, number: int) -> Response:
    allow(me, "invoice.pdf", site)
    return pdf_response(request, site, number)


def pdf_response(request: Request, site: str, number: int) -> Response:
    try:
        data = ops.pdf(request.app.state.engine, site, number)
    except NotFound:
        raise HTTPException(404, "not_found") from None
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="invoice-{site}-{number}.pdf"'})


@router.get("/sites/{site}/invoices/{number}/act/{action}")
def confirm(request: Request, me: Login, site: str, number: int, action: str) -> Response:
    allow(me, "invoice.act", site)
    if action not in ACTIONS:
        raise HTTPException(404, "not_found")
    view = _view(request, site, number)
    return page(request, "confirm.html", {"site": site, "v": view, "action": action,
                                          "today": date.today().isoformat()})


@router.post("/sites/{site}/invoices/{number}/act/{action}")
def act(request: Request, me: Login, f: Form, site: str, number: int,
        action: str) -> Response:
    allow(me, "invoice.act", site)
    if action not in ACTIONS:
        raise HTTPException(404, "not_found")
    try:
        day = date.fromisoformat(f["date"]) if f.get("date") else None
    except ValueError:
        raise HTTPException(400, "bad_date") from None
    amount = (f.get("amount") or "").strip()[:32] or None
    try:
        ops.act(request.app.state.engine, site, number, action, day,
                amount=amount, note=(f.get("note") or "").strip()[:500] or None)
    except NotFound:
        raise HTTPException(404, "not_found") from None
    except (LifecycleError, ValueError) as exc:
        view = _view(request, site, number)
        return page(request, "confirm.html", {"site": site, "v": view, "action": action,
                                              "today": date.today().isoformat(),
                                              "error": str(exc)}, status=409)
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/sites/{site}/invoices/{number}?done={action}", 303)
