"""The fleet page: every gateway the person may see, refreshed in place (htmx polling)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from sitegate.cloud.web.app import page
from sitegate.cloud.web.fleet import fleet
from sitegate.cloud.web.guard import Login

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
