"""Expense statements and received invoices over HTTP: the CLI's operations as JSON.
Included by ``api.app``; every route names its operation (``auth.scopes``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sitegate.cloud.api.calls import Rule, caller, engine, listed
from sitegate.cloud.api.security import needs
from sitegate.cloud.billing.sitemodel import SiteModelError
from sitegate.cloud.billing.sites import NotFound
from sitegate.cloud.expense import ops
from sitegate.cloud.expense.spec import SpecError

router = APIRouter(prefix="/expense", tags=["expense"])


_errors = caller(Rule(NotFound, 404), Rule((SpecError, SiteModelError), 422, listed()),
                 Rule(ValueError, 409))


def _call(fn: Callable[..., Any], request: Request, *args: Any, **kw: Any) -> Any:
    """``fn`` on the app's engine; bad input is a 4xx with the reason, never a 500."""
    return _errors(fn, engine(request), *args, **kw)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Invoice(_Body):
    category: str = Field(min_length=1, max_length=40)
    amount: Decimal
    quantity: Decimal | None = None
    unit: str | None = Field(default=None, max_length=16)
    day: date | None = Field(default=None, alias="date")
    supplier: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=200)
    entered_by: str = Field(min_length=1, max_length=128)


class AdvanceBody(_Body):
    account: str = Field(min_length=1, max_length=64)
    billing_point: str = Field(min_length=1, max_length=64)
    amount: Decimal


class RunBody(_Body):
    day: date | None = Field(default=None, alias="date")  # today, for the 'ended' check


class Received(_Body):
    first: date = Field(alias="from")
    end: date = Field(alias="to")  # exclusive
    amount: Decimal
    consumption: Decimal
    note: str | None = Field(default=None, max_length=200)
    entered_by: str = Field(min_length=1, max_length=128)


def _s(d: Decimal | None) -> str | None:
    return None if d is None else format(d, "f")


@router.get("/sites/{site}/periods", dependencies=needs("expense.periods.list"))
def periods(request: Request, site: str) -> list[dict[str, Any]]:
    return _call(ops.list_periods, request, site)


@router.put("/sites/{site}/periods", dependencies=needs("expense.period.create"))
def create_period(request: Request, site: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The period definition as JSON (the TOML file's structure); errors name the key."""
    return _call(ops.create_period, request, site, "period.json", json.dumps(spec))


@router.get("/sites/{site}/periods/{period}", dependencies=needs("expense.period.show"))
def period(request: Request, site: str, period: str) -> dict[str, Any]:
    return _call(ops.show_period, request, site, period)


@router.post("/sites/{site}/periods/{period}/invoices",
             dependencies=needs("expense.invoice.add"))
def add_invoice(request: Request, site: str, period: str, body: Invoice) -> dict[str, Any]:
    return _call(ops.add_cost, request, site, period, body.category, _s(body.amount),
                 body.entered_by, _s(body.quantity), body.unit, body.day, body.supplier,
                 body.note)


@router.put("/sites/{site}/periods/{period}/advances",
            dependencies=needs("expense.advances.set"))
def set_advance(request: Request, site: str, period: str,
                body: AdvanceBody) -> dict[str, Any]:
    return _call(ops.set_advance, request, site, period, body.account, body.billing_point,
                 _s(body.amount))


@router.post("/sites/{site}/periods/{period}/run", dependencies=needs("expense.run"))
def run(request: Request, site: str, period: str,
        body: RunBody | None = None) -> dict[str, Any]:
    return _call(ops.run_statements, request, site, period, (body or RunBody()).day)


@router.get("/sites/{site}/periods/{period}/statements",
            dependencies=needs("expense.statements.list"))
def statements(request: Request, site: str, period: str) -> list[dict[str, Any]]:
    return _call(ops.statements, request, site, period)


@router.get("/sites/{site}/periods/{period}/overall",
            dependencies=needs("expense.statement.overall"))
def overall(request: Request, site: str, period: str) -> dict[str, Any]:
    return _call(ops.site_statement, request, site, period)


@router.get("/sites/{site}/periods/{period}/overall/pdf", response_class=Response,
            dependencies=needs("expense.statement.pdf"))
def overall_pdf(request: Request, site: str, period: str) -> Response:
    return Response(_call(ops.site_pdf, request, site, period), media_type="application/pdf")


@router.get("/sites/{site}/periods/{period}/statements/{account}",
            dependencies=needs("expense.statement.show"))
def statement(request: Request, site: str, period: str, account: str) -> dict[str, Any]:
    return _call(ops.statement, request, site, period, account)


@router.get("/sites/{site}/periods/{period}/statements/{account}/explain",
            dependencies=needs("expense.statement.explain"))
def explain(request: Request, site: str, period: str, account: str) -> dict[str, Any]:
    return _call(ops.explain_statement, request, site, period, account)


@router.get("/sites/{site}/periods/{period}/statements/{account}/pdf",
            response_class=Response, dependencies=needs("expense.statement.pdf"))
def pdf(request: Request, site: str, period: str, account: str) -> Response:
    return Response(_call(ops.pdf, request, site, period, account),
                    media_type="application/pdf")


@router.get("/sites/{site}/periods/{period}/export", dependencies=needs("expense.export"))
def export(request: Request, site: str, period: str,
           format: Literal["csv", "json"] = "json") -> Response:
    text = _call(ops.export, request, site, period, format)
    return Response(text, media_type="text/csv" if format == "csv" else "application/json")


@router.put("/sites/{site}/hierarchy", dependencies=needs("expense.hierarchy.set"))
def hierarchy(request: Request, site: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _call(ops.set_hierarchy, request, site, "hierarchy.json", json.dumps(spec))


@router.post("/sites/{site}/meters/{meter_id}/invoices/received",
             dependencies=needs("expense.received.add"))
def add_received(request: Request, site: str, meter_id: str,
                 body: Received) -> dict[str, Any]:
    return _call(ops.add_received, request, site, meter_id, body.first, body.end,
                 _s(body.amount), _s(body.consumption), body.entered_by, body.note)


@router.get("/sites/{site}/meters/{meter_id}/invoices/received",
            dependencies=needs("expense.received.list"))
def list_received(request: Request, site: str, meter_id: str) -> dict[str, Any]:
    return _call(ops.list_received, request, site, meter_id)


@router.get("/sites/{site}/received/alerts", dependencies=needs("expense.received.list"))
def received_alerts(request: Request, site: str) -> list[dict[str, Any]]:
    return _call(ops.list_received, request, site)["alerts"]


@router.get("/sites/{site}/received/{rid}/distribution",
            dependencies=needs("expense.received.distribute"))
def distribution(request: Request, site: str, rid: int) -> dict[str, Any]:
    return _call(ops.distribution, request, site, rid)
