"""The fleet page: every gateway the person may see, refreshed in place (htmx polling), and
the commissioning reports its rows link to."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from sitegate.cloud.auth.users import ALL_SITES
from sitegate.cloud.store import commissioning
from sitegate.cloud.web.app import page
from sitegate.cloud.web.fleet import fleet, site_of_gateways
from sitegate.cloud.web.guard import Login, allow

router = APIRouter()
POLL_SECONDS = 10


@router.get("/fleet")
def fleet_page(request: Request, me: Login) -> Response:
    return page(request, "fleet.html", {"rows": fleet(request.app.state.engine, me),
                                        "poll": POLL_SECONDS})


@router.get("/fleet/rows")
def fleet_rows(request: Request, me: Login) -> Response:
    """The table's body alone: what the page fetches every POLL_SECONDS."""
    return page(request, "fleet_rows.html", {"rows": fleet(request.app.state.engine, me),
                                             "poll": POLL_SECONDS})


@router.get("/commissioning/{report_id}")
def commissioning_page(request: Request, me: Login, report_id: int) -> Response:
    """A gateway's commissioning report, for whoever may see the gateway's site (a gateway
    of no known site: an operator of every site)."""
    engine = request.app.state.engine
    with engine.connect() as conn:
        report = commissioning.report(conn, report_id)
    if report is None:
        raise HTTPException(404, "not_found")
    site = site_of_gateways(engine).get(report["gateway_id"])
    allow(me, "commissioning.show", site or ALL_SITES)
    return page(request, "commissioning.html", {"r": report, "site": site})
