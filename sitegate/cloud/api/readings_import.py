"""Readings from outside the gateway over HTTP: the same import as
``sitegate-cloud readings import`` (checked, all or nothing), as JSON. Included by
``api.app`` beside the billing routes."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Security
from pydantic import BaseModel, ConfigDict, Field

from sitegate.cloud.api.security import authorize, needs
from sitegate.cloud.auth.scopes import needed
from sitegate.cloud.auth.tokens import Token
from sitegate.cloud.billing import manual, ops
from sitegate.cloud.billing.sites import NotFound

router = APIRouter(prefix="/billing", tags=["billing"])
CALLER = Security(authorize, scopes=[needed("readings.import").value])  # whose token


class ReadingsImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entered_by: str = Field(min_length=1, max_length=128)  # who entered them
    source: str = Field("manual", min_length=1, max_length=32)  # where rows without one came from
    # meter, quantity, timestamp, value, unit, source, note: as in the CSV / JSON file
    readings: list[dict[str, Any]] = Field(max_length=manual.MAX_ROWS)


@router.post("/sites/{site}/readings", dependencies=needs("readings.import"))
def import_readings(request: Request, site: str, body: ReadingsImport,
                    token: Annotated[Token, CALLER]) -> dict[str, Any]:
    """Who entered them is the person named and the API token that sent them."""
    data = json.dumps(body.readings).encode()
    try:
        return ops.import_readings(request.app.state.engine, site, "readings.json", data,
                                   f"{body.entered_by} (API token {token.name})", body.source)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except manual.ImportError_ as exc:
        raise HTTPException(422, {"errors": exc.problems}) from None
