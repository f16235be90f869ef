"""Payments coming in over HTTP: a bank statement (camt.054 / camt.053) as JSON-wrapped
text (state changes take JSON only), the credits and their matches, manual assignment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from sitegate.cloud.api.calls import Rule, caller
from sitegate.cloud.api.security import needs
from sitegate.cloud.billing.ledger import LifecycleError
from sitegate.cloud.billing.sites import NotFound
from sitegate.cloud.payments import ops
from sitegate.cloud.payments.camt import CamtError

router = APIRouter(prefix="/payments", tags=["payments"])


class Statement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="statement.xml", min_length=1, max_length=255)
    xml: str = Field(min_length=1)  # the file's text (the API's body limit bounds it)


class Assign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice: int = Field(ge=1)


_call = caller(Rule(NotFound, 404),
               Rule(CamtError, 422, lambda exc: f"nothing imported: {exc}"),
               Rule((ops.PaymentError, LifecycleError), 409))


@router.post("/{site}/statements", dependencies=needs("payments.import"))
def import_statement(request: Request, site: str, body: Statement) -> dict[str, Any]:
    return _call(ops.import_statement, request.app.state.engine, site, body.name,
                 body.xml.encode("utf-8"))


@router.get("/{site}/credits", dependencies=needs("payments.list"))
def credits(request: Request, site: str, unmatched: bool = False) -> list[dict[str, Any]]:
    return _call(ops.credits, request.app.state.engine, site,
                 "unmatched" if unmatched else None)


@router.post("/{site}/credits/{credit_id}/assign", dependencies=needs("payments.assign"))
def assign(request: Request, site: str, credit_id: int, body: Assign) -> dict[str, Any]:
    return _call(ops.assign, request.app.state.engine, site, credit_id, body.invoice)
