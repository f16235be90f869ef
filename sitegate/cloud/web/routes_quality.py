"""A billing run's data quality, before anything is issued: for each invoice of a period,
the intervals its lines rest on, how many were estimated or missing, the readings per meter;
and the readings that arrived after an invoice of the period was issued (late)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from sitegate.cloud.billing import ledger, ops
from sitegate.cloud.web.app import page
from sitegate.cloud.web.guard import Login, allow
from sitegate.cloud.web.routes_invoices import _model, _period

router = APIRouter()


def quality_rows(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per invoice line's source (billing point): intervals, estimated, missing."""
    out = []
    for v in views:
        if v["kind"] != "invoice":
            continue
        for s in v["document"].get("sources", []):
            out.append({"number": v["number"], "account": v["account_name"],
                        "state": v["state"], "billing_point": s["billing_point"],
                        "intervals": s["interval_count"], "estimated": s["estimated"],
                        "missing": s["missing"],
                        "meters": [(m["meter"], m["readings"]) for m in s["meters"]],
                        "manual": sum(len(m.get("manual", ())) for m in s["meters"])})
    return out


@router.get("/sites/{site}/quality")
def quality(request: Request, me: Login, site: str,
            period: Annotated[str | None, Query(max_length=40)] = None) -> Response:
    allow(me, "invoices.late", site)
    model = _model(request, site)
    label = _period(period)
    engine = request.app.state.engine
    with engine.connect() as conn:
        periods = sorted({v["period"] for v in ledger.list_invoices(conn, site)},
                         reverse=True)
        label = label or (periods[0] if periods else None)
        views = ledger.list_invoices(conn, site, label, documents=True) if label else []
    rows = quality_rows(views)
    return page(request, "quality.html", {
        "site": site, "model": model, "period": label, "periods": periods, "rows": rows,
        "problems": sum(1 for r in rows if r["estimated"] or r["missing"]),
        "late": ops.late_report(engine, site, label) if label else []})
