"""Stay settlements over HTTP: the ``sitegate-cloud stays`` commands as JSON (units import,
reservations, readings bulk entry, check-out, the run, the guest's document)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Security
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sitegate.cloud.api.calls import Rule, caller, listed
from sitegate.cloud.api.calls import engine as _engine
from sitegate.cloud.api.security import authorize, needs
from sitegate.cloud.auth.scopes import needed
from sitegate.cloud.auth.tokens import Token
from sitegate.cloud.billing.sitemodel import SiteModelError
from sitegate.cloud.billing.sites import NotFound
from sitegate.cloud.stays import ops
from sitegate.cloud.stays.readings import MAX_ROWS, BulkError
from sitegate.cloud.stays.reservations import MAX_RESERVATIONS

router = APIRouter(prefix="/stays", tags=["stays"])
BULK_CALLER = Security(authorize, scopes=[needed("stays.readings-bulk").value])


# bad input is a 4xx with every reason, never a 500
_call = caller(Rule(NotFound, 404), Rule(SiteModelError, 422, listed()),
               Rule(BulkError, 422, listed("problems")), Rule(ops.StayError, 409),
               Rule(ValueError, 400))


class _B(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reservations(_B):
    reservations: list[dict[str, Any]] = Field(max_length=MAX_RESERVATIONS)


class Status(_B):
    status: str = Field(max_length=16)


class Bulk(_B):
    entered_by: str = Field(min_length=1, max_length=128)
    unit_type: str | None = Field(default=None, max_length=64)
    day: date | None = Field(default=None, alias="date")
    at: datetime | None = None
    readings: list[dict[str, Any]] = Field(max_length=MAX_ROWS)  # unit, meter, value, start


class Checkout(_B):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    day: date = Field(alias="date")
    issue: bool = False


class Run(Checkout):
    unit_type: str | None = Field(default=None, max_length=64)
    dry_run: bool = False


@router.get("/{site}/units", dependencies=needs("stays.units-show"))
def units(request: Request, site: str) -> dict[str, Any]:
    return _call(ops.setup, _engine(request), site)


@router.put("/{site}/units", dependencies=needs("stays.units-import"))
def import_units(request: Request, site: str, setup: dict[str, Any]) -> dict[str, Any]:
    """The units file's structure as JSON; validated whole, errors name the key."""
    return _call(ops.import_units, _engine(request), site, setup)


@router.get("/{site}/reservations", dependencies=needs("stays.reservations-list"))
def reservations(request: Request, site: str) -> list[dict[str, Any]]:
    return _call(ops.reservations, _engine(request), site)


@router.post("/{site}/reservations", dependencies=needs("stays.reservations-import"))
def import_reservations(request: Request, site: str, body: Reservations) -> dict[str, Any]:
    return _call(ops.import_reservations, _engine(request), site, body.reservations)


@router.post("/{site}/reservations/{rid}/status", dependencies=needs("stays.status"))
def status(request: Request, site: str, rid: str, body: Status) -> dict[str, Any]:
    return _call(ops.set_status, _engine(request), site, rid, body.status)


@router.get("/{site}/readings", dependencies=needs("stays.readings-list"))
def readings(request: Request, site: str, unit: str | None = None) -> list[dict[str, Any]]:
    return _call(ops.unit_readings, _engine(request), site, unit)


@router.post("/{site}/readings", dependencies=needs("stays.readings-bulk"))
def bulk(request: Request, site: str, body: Bulk,
         token: Annotated[Token, BULK_CALLER]) -> dict[str, Any]:
    """Who entered them is the person named and the API token that sent them."""
    data = json.dumps(body.readings).encode()
    return _call(ops.enter_readings, _engine(request), site, "readings.json", data,
                 f"{body.entered_by} (API token {token.name})", body.unit_type, body.day,
                 body.at)


@router.post("/{site}/reservations/{rid}/checkout", dependencies=needs("stays.checkout"))
def checkout(request: Request, site: str, rid: str, body: Checkout) -> dict[str, Any]:
    return _call(ops.checkout, _engine(request), site, rid, body.day, body.issue)


@router.post("/{site}/settle", dependencies=needs("stays.settle"))
def settle(request: Request, site: str, body: Run) -> dict[str, Any]:
    return _call(ops.run, _engine(request), site, body.day, body.unit_type, body.issue,
                 body.dry_run)


@router.get("/{site}/reservations/{rid}/document", response_class=Response,
            dependencies=needs("stays.document"))
def document(request: Request, site: str, rid: str) -> Response:
    _num, data = _call(ops.document_pdf, _engine(request), site, rid)
    return Response(data, media_type="application/pdf")


@router.get("/{site}/reservations/{rid}/explain", dependencies=needs("stays.explain"))
def explain(request: Request, site: str, rid: str) -> dict[str, Any]:
    return _call(ops.explain, _engine(request), site, rid)
