"""Quote-to-invoice jobs over HTTP: the operator's routes (API token with a scope) and the
customer's acceptance page, whose credential is the one-time token of the link in the
quote's e-mail (``?t=``; declared as its own security scheme, so the API's check that
every route is guarded holds). The page shows the quote; accepting posts JSON (a browser
form cannot: state changes take JSON only) and records who, when and from where."""

from __future__ import annotations

import html
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request, Security
from fastapi.responses import HTMLResponse, Response
from fastapi.security import APIKeyQuery
from pydantic import BaseModel, ConfigDict, Field

from sitegate.cloud.api.calls import Rule, caller, listed
from sitegate.cloud.api.calls import engine as _engine
from sitegate.cloud.api.security import needs
from sitegate.cloud.billing.sitemodel import SiteModelError
from sitegate.cloud.billing.sites import NotFound
from sitegate.cloud.jobs import ops
from sitegate.cloud.jobs.lookup import LookupError_
from sitegate.cloud.jobs.mail import MailError

router = APIRouter(prefix="/jobs", tags=["jobs"])
link_token = APIKeyQuery(name="t", auto_error=False, scheme_name="QuoteLink",
                         description="the one-time token of the quote's acceptance link")


_call = caller(Rule(NotFound, 404), Rule(SiteModelError, 422, listed()),
               Rule(ops.LinkRefused, 403), Rule(ops.JobError, 409),
               Rule((MailError, LookupError_), 502))


class _B(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Quote(_B):
    day: date = Field(alias="date")
    send: bool = True


class Invoice(_B):
    stage: Literal["change", "final"]
    day: date = Field(alias="date")
    send: bool = True


class Accept(_B):
    name: str = Field(min_length=1, max_length=128)


@router.put("/{site}/settings", dependencies=needs("jobs.settings"))
def settings(request: Request, site: str, body: dict[str, Any]) -> dict[str, Any]:
    return _call(ops.import_settings, _engine(request), site, body)


@router.put("/{site}/jobs", dependencies=needs("jobs.import"))
def import_job(request: Request, site: str, body: dict[str, Any]) -> dict[str, Any]:
    return _call(ops.import_job, _engine(request), site, body)


@router.get("/{site}/jobs", dependencies=needs("jobs.list"))
def jobs(request: Request, site: str) -> list[dict[str, Any]]:
    return _call(ops.jobs_list, _engine(request), site)


@router.get("/{site}/jobs/{job_id}", dependencies=needs("jobs.show"))
def show(request: Request, site: str, job_id: str) -> dict[str, Any]:
    return _call(ops.show, _engine(request), site, job_id)


@router.get("/{site}/jobs/{job_id}/quote.pdf", response_class=Response,
            dependencies=needs("jobs.show"))
def quote_pdf(request: Request, site: str, job_id: str) -> Response:
    return Response(_call(ops.quote_pdf, _engine(request), site, job_id),
                    media_type="application/pdf")


@router.post("/{site}/jobs/{job_id}/quote", dependencies=needs("jobs.act"))
def quote(request: Request, site: str, job_id: str, body: Quote) -> dict[str, Any]:
    return _call(ops.quote, _engine(request), site, job_id, body.day, body.send)


@router.post("/{site}/jobs/{job_id}/invoice", dependencies=needs("jobs.act"))
def invoice(request: Request, site: str, job_id: str, body: Invoice) -> dict[str, Any]:
    return _call(ops.invoice, _engine(request), site, job_id, body.stage, body.day,
                 body.send)


@router.post("/{site}/jobs/{job_id}/cancel", dependencies=needs("jobs.act"))
def cancel(request: Request, site: str, job_id: str) -> dict[str, Any]:
    return _call(ops.cancel, _engine(request), site, job_id)


@router.get("/{site}/export", dependencies=needs("jobs.export"))
def export(request: Request, site: str, format: Literal["csv", "json"] = "json",
           job: str | None = None) -> Response:
    text = _call(ops.export, _engine(request), site, format, job)
    return Response(text, media_type="text/csv" if format == "csv" else "application/json")


def _token(t: str | None) -> str:
    if not t:
        raise HTTPException(403, "this link is not valid")
    return t


PAGE = """<!doctype html><html lang="de"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Offerte {job}</title><style>body{{font-family:sans-serif;max-width:46em;margin:2em auto}}
td,th{{padding:.2em .6em;text-align:left}} td.n{{text-align:right}}</style></head><body>
<h1>Offerte {job}: {title}</h1><p>{site} an {name}, gültig bis {valid}</p>
<table><tr><th>Position</th><th>Auftrag</th><th>Menge</th><th>Preis</th><th>MWST</th>
<th>Betrag</th></tr>{rows}</table>
<p>Total netto {net}, MWST {vat}, <b>Total {ccy} {total}</b></p>
<form id="f"><label>Ihr Name <input id="n" required maxlength="128"></label>
<button>Offerte annehmen</button></form><p id="r"></p>
<script>document.getElementById("f").onsubmit=async e=>{{e.preventDefault();
const r=await fetch(location.href,{{method:"POST",headers:{{"content-type":"application/json"}},
body:JSON.stringify({{name:document.getElementById("n").value}})}});
document.getElementById("r").textContent=r.ok?"Vielen Dank: angenommen.":
"Nicht angenommen ("+r.status+")";}}</script></body></html>"""


@router.get("/accept", response_class=HTMLResponse)
def accept_page(request: Request,
                t: Annotated[str | None, Security(link_token)] = None) -> HTMLResponse:
    q = _call(ops.quote_for_link, _engine(request), _token(t))
    e = html.escape
    rows = "".join(f"<tr><td>{e(ln['label'])}</td><td>{e(ln['billing_point'] or '')}</td>"
                   f"<td class=n>{e(ln['quantity'])} {e(ln['unit'])}</td>"
                   f"<td class=n>{e(ln['unit_price'])}</td><td class=n>{e(ln['vat_rate'])}%"
                   f"</td><td class=n>{e(ln['amount'])}</td></tr>" for ln in q["lines"])
    return HTMLResponse(PAGE.format(
        job=e(q["job"]), title=e(q["title"]),
        site=e(q["site_name"]), name=e(q["account"]["name"]), valid=e(q["valid_until"]),
        rows=rows, net=e(q["net_total"]), vat=e(q["vat_total"]), ccy=e(q["currency"]),
        total=e(q["total_due"])), headers={"cache-control": "no-store",
                                            "referrer-policy": "no-referrer"})


@router.post("/accept")
def accept(request: Request, body: Accept,
           t: Annotated[str | None, Security(link_token)] = None) -> dict[str, Any]:
    client = request.client.host if request.client else "?"
    r = _call(ops.accept, _engine(request), _token(t), body.name, client,
              request.headers.get("user-agent", ""))
    return {"job": r["job"], "state": r["state"], "accepted": r["accepted"]}
