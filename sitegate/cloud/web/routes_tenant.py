"""The tenant portal: my invoices (and their PDFs), my consumption against the same months
last year, my charging and laundry sessions (the running one refreshed live), my badges.

Everything is filtered by the billing accounts on the person's tenant roles; an invoice of
another account answers 404, as one that does not exist (nothing to learn by probing).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from sitegate.cloud.auth.users import Principal
from sitegate.cloud.billing.ledger import balance
from sitegate.cloud.store import console
from sitegate.cloud.web import consumption as cons
from sitegate.cloud.web.app import page
from sitegate.cloud.web.guard import Login
from sitegate.cloud.web.models import site_model
from sitegate.cloud.web.routes_invoices import pdf_response

router = APIRouter()
MONTHS = 12


def _sites(request: Request, me: Principal) -> list[tuple[str, Any]]:
    models = [(site, site_model(request.app.state.engine, site))
              for site in me.tenant_sites()]
    return [(site, m) for site, m in models if m is not None]


def _invoices(request: Request, site: str, accounts: frozenset[str]) -> list[dict[str, Any]]:
    engine = request.app.state.engine
    with engine.connect() as conn:
        rows = [r for r in console.invoice_summaries(conn, site)
                if r["account_id"] in accounts and r["state"] != "draft"]
        evs = console.event_amounts(conn, site)
    return [{**r, "balance": balance(r, evs.get(r["id"], []))} for r in reversed(rows)]


def _sessions(request: Request, model: Any, accounts: frozenset[str]) -> list[dict]:
    tags = [b.tag for b in model.badges if b.account in accounts]
    with request.app.state.engine.connect() as conn:
        return console.sessions_for_badges(conn, tags)


def _floats(values: list[Any]) -> list[float | None]:
    """For the chart only (the table beside it shows the exact figures)."""
    return [None if v is None else float(v) for v in values]


@router.get("/me")
def me_page(request: Request, me: Login,
            to: Annotated[str | None, Query(max_length=7, pattern=r"^\d{4}-\d{2}$")] = None
            ) -> Response:
    """``to``: the last month of the consumption chart (YYYY-MM, default this month)."""
    try:
        last = date.fromisoformat(f"{to}-01") if to else date.today()
    except ValueError:
        raise HTTPException(400, "bad_period") from None
    bounds = cons.month_bounds(last, MONTHS)
    before = [cons.add_months(d, -12) for d in bounds]
    blocks = []
    for site, model in _sites(request, me):
        accounts = me.accounts(site)
        names = {a.id: a.name for a in model.accounts}
        series = []
        for account in sorted(accounts):
            now = cons.tenant_series(request.app.state.engine, model, account, bounds)
            then = cons.tenant_series(request.app.state.engine, model, account, before)
            for bp in now:
                series.append({"point": bp, "now": now[bp], "then": then[bp],
                               "now_f": _floats(now[bp]), "then_f": _floats(then[bp])})
        blocks.append({
            "site": site, "site_name": model.site.name, "currency": model.site.currency,
            "accounts": [names.get(a, a) for a in sorted(accounts)],
            "invoices": _invoices(request, site, accounts),
            "months": [d.strftime("%Y-%m") for d in bounds[:-1]], "series": series,
            "sessions": _sessions(request, model, accounts),
            "badges": [b.tag for b in model.badges if b.account in accounts]})
    return page(request, "me.html", {"blocks": blocks})


@router.get("/me/sessions/{site}")
def my_sessions(request: Request, me: Login, site: str) -> Response:
    """The sessions table alone (polled while one is running)."""
    model = dict(_sites(request, me)).get(site)
    if model is None:
        raise HTTPException(404, "not_found")
    return page(request, "me_sessions.html",
                {"site": site, "sessions": _sessions(request, model, me.accounts(site))})


@router.get("/me/{site}/invoices/{number}/pdf")
def my_pdf(request: Request, me: Login, site: str, number: int) -> Response:
    accounts = me.accounts(site)
    with request.app.state.engine.connect() as conn:
        mine = any(r["number"] == number and r["account_id"] in accounts
                   and r["state"] != "draft" for r in console.invoice_summaries(conn, site))
    if not mine:
        raise HTTPException(404, "not_found")
    return pdf_response(request, site, number)
