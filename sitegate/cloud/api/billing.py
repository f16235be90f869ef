"""Billing over HTTP: the CLI's operations as JSON (site import, bill, invoices and their
lifecycle, explain, PDF, overview, late readings, export). Included by ``api.app``."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sitegate.cloud.api.calls import Rule, caller, listed
from sitegate.cloud.api.calls import engine as _engine
from sitegate.cloud.api.security import needs
from sitegate.cloud.billing import ocmf_ops, ops
from sitegate.cloud.billing.ledger import LifecycleError
from sitegate.cloud.billing.sitemodel import SiteModelError
from sitegate.cloud.billing.sites import NotFound

router = APIRouter(prefix="/billing", tags=["billing"])


# bad input is a 4xx with the reason, never a 500
_call = caller(Rule(NotFound, 404), Rule(SiteModelError, 422, listed()),
               Rule(LifecycleError, 409), Rule(ValueError, 400))


class CreditLine(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored
    line: int  # the invoice line's number
    quantity: str | None = None  # a part of its quantity (omit: all that is left of it)


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    day: date | None = Field(default=None, alias="date")  # business date (default today)
    amount: str | None = None  # pay: the payment; credit: a net amount instead of lines
    lines: list[CreditLine] | None = None  # credit: chosen lines (omit both: whole invoice)
    vat: str | None = None
    label: str | None = None
    note: str | None = None


@router.get("/sites", dependencies=needs("sites.list"))
def sites(request: Request) -> list[str]:
    return ops.sites(_engine(request))


@router.put("/sites", dependencies=needs("site.import"))
def import_site(request: Request, model: dict[str, Any]) -> dict[str, Any]:
    """The site model as JSON (the TOML file's structure); validated, errors name the key."""
    return _call(ops.import_site, _engine(request), model)


@router.get("/sites/{site}", dependencies=needs("site.show"))
def site(request: Request, site: str) -> dict[str, Any]:
    from sitegate.cloud.billing.sitemodel import site_to_json

    return site_to_json(_call(ops.site_model, _engine(request), site))


@router.post("/sites/{site}/bill/{period}", dependencies=needs("bill.run"))
def bill(request: Request, site: str, period: str) -> dict[str, Any]:
    return _call(ops.run_bill, _engine(request), site, period)


@router.get("/sites/{site}/invoices", dependencies=needs("invoices.list"))
def invoices(request: Request, site: str, period: str | None = None) -> list[dict[str, Any]]:
    return _call(ops.invoices, _engine(request), site, period)


@router.get("/sites/{site}/overview", dependencies=needs("invoices.overview"))
def overview(request: Request, site: str, period: str | None = None) -> dict[str, Any]:
    return _call(ops.overview, _engine(request), site, period)


@router.get("/sites/{site}/late", dependencies=needs("invoices.late"))
def late(request: Request, site: str, period: str | None = None) -> list[dict[str, Any]]:
    return _call(ops.late_report, _engine(request), site, period)


@router.get("/sites/{site}/export", dependencies=needs("invoices.export"))
def export(request: Request, site: str, period: str | None = None,
           what: Literal["invoices", "consumption"] = "invoices",
           format: Literal["csv", "json"] = "json") -> Response:
    text = _call(ops.export, _engine(request), site, period, what, format)
    return Response(text, media_type="text/csv" if format == "csv" else "application/json")


@router.get("/sites/{site}/invoices/{number}", dependencies=needs("invoice.show"))
def invoice(request: Request, site: str, number: int) -> dict[str, Any]:
    return _call(ops.invoice, _engine(request), site, number)


@router.get("/sites/{site}/invoices/{number}/explain", dependencies=needs("invoice.explain"))
def explain(request: Request, site: str, number: int) -> dict[str, Any]:
    return _call(ops.explain_invoice, _engine(request), site, number)


@router.get("/sites/{site}/invoices/{number}/pdf", response_class=Response,
            dependencies=needs("invoice.pdf"))
def pdf(request: Request, site: str, number: int) -> Response:
    return Response(_call(ops.pdf, _engine(request), site, number),
                    media_type="application/pdf")


@router.get("/sites/{site}/sessions/{gateway}/{session_id}/ocmf.xml", response_class=Response,
            dependencies=needs("session.ocmf"))
def ocmf_xml(request: Request, site: str, gateway: str, session_id: str) -> Response:
    """A charging session's signed meter values as the Transparenzsoftware's XML."""
    return Response(_call(ocmf_ops.export_xml, _engine(request), site, gateway, session_id),
                    media_type="application/xml")


@router.get("/sites/{site}/sessions/{gateway}/{session_id}/ocmf",
            dependencies=needs("session.ocmf"))
def ocmf_check(request: Request, site: str, gateway: str, session_id: str
               ) -> dict[str, Any]:
    """The cloud's check of a session's signed values."""
    return _call(ocmf_ops.check_session, _engine(request), site, gateway, session_id)


@router.post("/sites/{site}/invoices/{number}/{action}", dependencies=needs("invoice.act"))
def act(request: Request, site: str, number: int,
        action: Literal["issue", "pay", "cancel", "write-off", "remind", "credit"],
        body: Action | None = None) -> dict[str, Any]:
    b = body or Action()
    if action == "pay" and b.amount is None:
        # The request is incomplete (422), not a conflict with the invoice's state (409).
        raise RequestValidationError([{"type": "missing", "loc": ("body", "amount"),
                                       "msg": "pay needs an amount", "input": None}])
    lines = [(x.line, x.quantity) for x in b.lines] if b.lines else None
    return _call(ops.act, _engine(request), site, number, action, b.day, amount=b.amount,
                 vat=b.vat, label=b.label, note=b.note, lines=lines)
