"""Invoice PDF: the invoice page with a Swiss QR-bill payment part at its foot.

``qrbill`` draws the payment part as SVG; fpdf2 (pure Python, from PyPI alone) places
that SVG as vectors, so no Cairo or other system library is needed.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import qrcode
from fpdf import FPDF
from qrbill import QRBill
from stdnum import iban as iban_mod

from sitegate.cloud import pdf_letter
from sitegate.cloud.billing import pdf_chart
from sitegate.cloud.billing.qrref import qr_reference
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.i18n import text

_FIXED = pdf_letter.FIXED  # same data -> same PDF bytes
_t = pdf_letter.latin1


_span = pdf_letter.span


def payable(view: dict[str, Any]) -> str:
    """What the payment part asks for: a draft's total (a preview), else the balance
    (after payments, reminder fees and credit notes; nothing once cancelled)."""
    return view["total_due"] if view["state"] == "draft" else view["balance"]


def is_qr_iban(iban: str) -> bool:
    compact = iban_mod.compact(iban)
    return 30000 <= int(compact[4:9]) <= 31999


def qr_bill(view: dict[str, Any], model: SiteModel) -> QRBill:
    c = model.site.creditor
    doc = view["document"]
    addr = doc["account"].get("address") or {}
    debtor = None
    if addr:
        debtor = {"name": doc["account"]["name"], "street": addr.get("street", ""),
                  "house_num": addr.get("house_num", ""), "pcode": addr["pcode"],
                  "city": addr["city"], "country": addr.get("country", "CH")}
    qr_iban = is_qr_iban(c.iban)
    return QRBill(
        account=c.iban,
        creditor={"name": c.name, "street": c.street, "house_num": c.house_num,
                  "pcode": c.pcode, "city": c.city, "country": c.country},
        amount=payable(view),
        currency=doc["currency"],
        debtor=debtor,
        reference_number=qr_reference(model.site.qr_reference_prefix, view["number"])
        if qr_iban else None,
        additional_information=f"{text(model.site.language, 'invoice')} {view['number']} "
                               f"{doc.get('period_text', doc['period'])}",
        language=model.site.language,
    )


def invoice_pdf(view: dict[str, Any], model: SiteModel) -> bytes:
    """The invoice in the site's language (the catalogue's ``invoice_*`` words); line
    labels are the site file's own words."""
    doc = view["document"]
    lang = model.site.language

    def say(key: str, **fields: object) -> str:
        return _t(text(lang, "invoice_" + key if key else "invoice", **fields))

    pdf = pdf_letter.page(auto_break=False)  # one page: the QR-bill sits at its foot
    pdf_letter.letterhead(pdf, model.site.creditor)
    pdf_letter.address(pdf, doc["account"])
    # another kind of document on the same core (a stay's settlement, a job's quote or
    # invoice) names itself
    kind = say("credit_note") if view["kind"] == "credit_note" else \
        say("interim") if doc.get("interim") else doc.get("title") or say("")
    pdf_letter.title(pdf, f"{kind} {view['number']} - {doc['site_name']}, "
                          f"{doc.get('period_text', doc['period'])}", 68)
    pdf.set_font("helvetica", size=8.5)
    pdf.set_xy(15, 76)
    pdf.cell(0, 5, "   ".join((say("period", first=doc["period_first"], last=doc["period_last"]),
                               say("date", date=view["issue_date"] or say("draft")),
                               say("due", date=view["due_date"] or "-"))))
    y = 84.0
    pdf.set_font("helvetica", "B", 8.5)
    cols = [(15, 74, say("col_item"), "L"), (89, 34, say("col_span"), "L"),
            (123, 24, say("col_quantity"), "R"), (147, 18, say("col_price"), "R"),
            (165, 12, say("col_vat"), "R"), (177, 20, say("col_amount"), "R")]
    units = {"month": say("unit_month"), "session": say("unit_session")}
    for x, w, h, align in cols:
        pdf.set_xy(x, y)
        pdf.cell(w, 5, h, align=align)
    pdf.set_font("helvetica", size=8)
    for ln in doc["lines"]:
        y += 4.6
        if y > 170:  # the rest stays in the export / explain; the page keeps its QR part
            pdf.set_xy(15, y)
            pdf.cell(0, 4, say("more_lines", count=len(doc["lines"])))
            break
        qty = ln["quantity"]
        if ln["unit"] == "kWh":  # the document keeps the exact value; print Wh
            qty = str(Decimal(qty).quantize(Decimal("0.001")))
        vals = [f"{ln['label']}" + (f" ({ln['billing_point']})" if ln["billing_point"] else "")
                + (f" {say('estimated')}" if ln.get("estimated") else ""),
                _span(ln["from"], ln["to"]), f"{qty} {units.get(ln['unit'], ln['unit'])}",
                ln["unit_price"], f"{ln['vat_rate']}%", ln["amount"]]
        for (x, w, _h, align), v in zip(cols, vals, strict=True):
            pdf.set_xy(x, y)
            pdf.cell(w, 4.6, _t(v)[:48], align=align)
    y += 8
    rows = [(say("net_total"), doc["net_total"])]
    rows += [(say("vat_on", rate=v["rate"], net=v["net"]), v["vat"]) for v in doc["vat"]]
    # advances and rounding only where there are any (no "-0.00" on a tenant's bill)
    rows += [(label, v) for label, v, raw in (
        (doc.get("advances_label") or say("advances"), f"-{doc['advances']}",
         doc["advances"]),
        (say("rounding"), doc["rounding"], doc["rounding"])) if Decimal(raw) != 0]
    total = say("total", currency=doc["currency"])
    rows += [(total, doc["total_due"])]
    y = pdf_letter.totals(pdf, rows, y, bold=total)
    if view["kind"] == "invoice" and Decimal(payable(view)) <= 0:
        # advances or credits cover it: no payment part (a QR-bill cannot ask for <= 0)
        pdf.set_xy(15, y + 6)
        pdf.set_font("helvetica", size=9)
        if Decimal(doc.get("refund") or 0) > 0:  # a stay's deposit larger than its cost
            pdf.cell(0, 5, _t(f"{doc.get('refund_label', 'Rückerstattung')} "
                              f"{doc['currency']} {doc['refund']}"))
        else:
            pdf.cell(0, 5, say("nothing_to_pay", currency=doc["currency"],
                               amount=f"{-Decimal(payable(view)):.2f}"))
    elif view["kind"] == "invoice":
        svg = io.StringIO()
        qr_bill(view, model).as_svg(svg, full_page=False)
        pdf.image(io.BytesIO(svg.getvalue().encode()), x=0, y=297 - 105, w=210)
    _usage_page(pdf, doc, say)
    calibrated = [c for ln in doc["lines"] for c in ln.get("calibrated", ())]
    if calibrated:
        _calibrated_pages(pdf, view, calibrated, say)
    return bytes(pdf.output())


def _usage_page(pdf: FPDF, doc: dict[str, Any], say: Callable[..., str]) -> None:
    """A second page for electricity: the period by day, solar and grid, and the sums."""
    daily = doc.get("daily") or []
    solar = sum((Decimal(d["solar_kwh"]) for d in daily), Decimal(0))
    grid = sum((Decimal(d["grid_kwh"]) for d in daily), Decimal(0))
    if solar + grid <= 0:
        return
    pdf.add_page()
    pdf.set_xy(15, 15)
    pdf.set_font("helvetica", "B", 13)
    pdf.cell(0, 7, say("usage_title", period=doc["period"]))
    pdf.set_xy(15, 24)
    pdf.set_font("helvetica", size=9)
    share = (solar * 100 / (solar + grid)).quantize(Decimal(1))
    pdf.cell(0, 5, say("usage_sums", total=f"{solar + grid:.1f}", solar=f"{solar:.1f}",
                     share=share, grid=f"{grid:.1f}"))
    pdf_chart.draw(pdf, daily, 15, 42, 180, 80, say)


def _kwh(r: dict[str, Any] | None) -> str:
    if not r:
        return "-"
    return r["value"] + (" kWh" if r["unit"] == "kWh" else f" {r['unit']}")


def _tm(r: dict[str, Any] | None) -> str:
    return r["tm"].replace(",000", "").replace("T", " ")[:26] if r else "-"


def _qr(pdf: FPDF, text: str, x: float, y: float, size: float) -> None:
    img = qrcode.make(text, error_correction=qrcode.constants.ERROR_CORRECT_L, border=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    pdf.image(buf, x=x, y=y, w=size, h=size)


QR_MM = 38  # an OCMF record with its key (~800 characters) stays readable when printed


def _calibrated_pages(pdf: FPDF, view: dict[str, Any], sessions: list[dict[str, Any]],
                      say: Callable[..., str]) -> None:
    """An appendix: each session of a calibrated charger with its signed start and stop
    readings and, per signed record, a QR code the Transparenzsoftware reads (the OCMF
    record with the meter's public key appended: ``OCMF|payload|signature|key``)."""
    y = 300.0
    for c in sessions:
        height = QR_MM + 6 if c.get("records") else 16
        if y + height > 285:
            pdf.add_page()
            pdf.set_xy(15, 15)
            pdf.set_font("helvetica", "B", 11)
            pdf.cell(0, 6, say("calibrated_title", number=view["number"]))
            pdf.set_font("helvetica", size=8)
            pdf.set_xy(15, 22)
            pdf.multi_cell(180, 4, say("calibrated_intro"))
            y = 36.0
        ok = c["status"] == "verified"
        lines = [f"{say('calibrated_session')} {c['session']}  "
                 f"{say('calibrated_meter')} {_t(c.get('meter') or '-')}",
                 f"{say('calibrated_start')} {_tm(c.get('start'))}  {_kwh(c.get('start'))}",
                 f"{say('calibrated_stop')} {_tm(c.get('stop'))}  {_kwh(c.get('stop'))}",
                 say("calibrated_billed", kwh=f"{Decimal(c['billed_wh']) / 1000:.3f}") + ", "
                 + (say("calibrated_valid") if ok else say("calibrated_not_checked"))]
        if not ok:  # the reason, wrapped beside the QR codes
            lines += textwrap.wrap(say("calibrated_unsigned", note=c.get("note", c["status"])),
                                   62)[:4]
        pdf.set_font("helvetica", size=7.5)
        for i, line in enumerate(lines):
            pdf.set_xy(15, y + i * 4.2)
            pdf.cell(95, 4.2, line[:95])
        key = c.get("public_key")
        for i, rec in enumerate(c.get("records", [])[:2]):
            _qr(pdf, f"{rec}|{key}" if key else rec, 112 + i * (QR_MM + 4), y, QR_MM)
        y += height
