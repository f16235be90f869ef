"""The owner's annual statement of a site, as a page and as a PDF."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fpdf import FPDF

from sitegate.cloud.billing import ledger
from sitegate.cloud.i18n import text
from sitegate.cloud.web.app import lang_of, page
from sitegate.cloud.web.guard import Login, allow
from sitegate.cloud.web.routes_invoices import _model
from sitegate.cloud.web.statement import COLUMNS, statement, year_of

router = APIRouter()
Year = Annotated[int | None, Query(ge=2000, le=2100)]


def _year_views(request: Request, site: str, year: int) -> list[dict[str, Any]]:
    with request.app.state.engine.connect() as conn:
        views = ledger.list_invoices(conn, site, None, documents=True)
    return [v for v in views if year_of(v) == year]


def _figures(request: Request, me: Any, site: str, year: int | None) -> dict[str, Any]:
    allow(me, "invoices.list", site)
    model = _model(request, site)
    year = year or date.today().year
    return {"site": site, "model": model, "year": year, "columns": COLUMNS,
            "currency": model.site.currency,
            **statement(_year_views(request, site, year))}


@router.get("/sites/{site}/statement")
def statement_page(request: Request, me: Login, site: str, year: Year = None) -> Response:
    return page(request, "statement.html", _figures(request, me, site, year))


@router.get("/sites/{site}/statement.pdf")
def statement_pdf(request: Request, me: Login, site: str, year: Year = None) -> Response:
    f = _figures(request, me, site, year)
    lang = lang_of(request)

    def t(key: str, **kw: Any) -> str:  # core PDF fonts are Latin-1
        return text(lang, key, **kw).encode("latin-1", "replace").decode("latin-1")

    pdf = FPDF(format="A4", orientation="L")
    pdf.add_page()
    pdf.set_font("helvetica", "B", 14)
    pdf.cell(0, 9, t("statement_title") + f" {f['year']} - " +
             f["model"].site.name.encode("latin-1", "replace").decode("latin-1"),
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=9)
    pdf.cell(0, 6, t("statement_note"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    widths = [55] + [40] * len(COLUMNS)
    pdf.set_font("helvetica", "B", 9)
    heads = [t("solution")] + [t(f"st_{c}") for c in COLUMNS]
    for w, h in zip(widths, heads, strict=True):
        pdf.cell(w, 7, h, border="B", align="L" if w == 55 else "R")
    pdf.ln()
    pdf.set_font("helvetica", size=9)
    for r in [*f["rows"], {"solution": "total", **f["total"]}]:
        if r["solution"] == "total":
            pdf.set_font("helvetica", "B", 9)
        pdf.cell(widths[0], 7, t(f"solution_{r['solution']}"))
        for w, c in zip(widths[1:], COLUMNS, strict=True):
            pdf.cell(w, 7, f"{f['currency']} {r[c]}", align="R")
        pdf.ln()
    pdf.ln(2)
    pdf.set_font("helvetica", size=9)
    pdf.cell(0, 6, t("reminder_fees") + f": {f['currency']} {f['reminder_fees']}")
    return Response(bytes(pdf.output()), media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="statement-{site}-{f["year"]}.pdf"'})
