"""A statement as a PDF a tenant can read: the house's costs per category with their
keys, then the tenant's share line by line with its calculation, advances and the
balance (an amount due, or a refund the operator pays out). The numbers are the
document's own strings, so the PDF says exactly what the JSON says; every word is the
i18n catalogue's (``expense_*``) in the site's language, category labels are the period
file's own. Printed on the invoice's letter (``pdf_letter``): letterhead, address, title
and totals look the same."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from fpdf import FPDF

from sitegate.cloud import pdf_letter
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.i18n import text

_t = pdf_letter.latin1
Say = Callable[..., str]


def _say(model: SiteModel) -> Say:
    lang = model.site.language

    def say(name: str, /, **fields: object) -> str:
        return _t(text(lang, name, **fields))

    return say


def _part(say: Say, part: str) -> str:
    """A part's name ("all": the category's costs as one, no name)."""
    return "" if part == "all" else say(f"expense_part_{part}")


def _spread(say: Say, p: dict[str, Any]) -> str:
    line = say("expense_spread", total=p["total"], key_name=say(f"expense_key_{p['key']}"),
               key_total=p["key_total"], unit=p["unit"])
    name = _part(say, p["part"])
    extra = f" {say('expense_by_area')}" if p.get("by_area_instead_of") else ""
    return f"{name + ': ' if name else ''}{line}{extra}"


def _hot_water(say: Say, cb: dict[str, Any]) -> str:
    return say("expense_hot_water_share", share=cb["share"], q=cb["q_kwh"],
               fuel=cb["fuel_kwh"], amount=cb["amount"])


def _basis(say: Say, ln: dict[str, Any]) -> str:
    """How a line's amount came about, from its ``spread`` (the document's ``basis`` text
    where an older document has none)."""
    sp = ln.get("spread")
    if not sp:
        return _t(ln["basis"])
    if "rule" in sp:
        return say("expense_basis_rule", rule=sp["rule"])
    out = say("expense_basis", total=sp["total"], units=sp["units"], sum=sp["sum"],
              unit=sp["unit"], key_name=say(f"expense_key_{sp['key']}"))
    if "days" in sp:
        out += "; " + say("expense_basis_days", days=sp["days"], of_days=sp["of_days"],
                          share=sp["share"], by=say(f"expense_by_{sp['by']}"))
    return out


def _label(say: Say, ln: dict[str, Any], labels: dict[str, str]) -> str:
    """The category's label (the period file's words) and the part in the site's."""
    if ln.get("category") not in labels:
        return _t(ln["label"])
    part = _part(say, ln.get("part", "all"))
    return _t(labels[ln["category"]]) + (f" {part}" if part else "")


def _heading(pdf: FPDF, words: str, y: float | None = None) -> None:
    if y is not None:
        pdf.set_xy(15, y)
    pdf.set_font("helvetica", "B", 10)
    pdf.set_x(15)
    pdf.cell(0, 6, words)
    pdf.ln(6)


def _row(pdf: FPDF, cols: list[tuple[float, float, str]], values: list[str], h: float,
         cut: int = 60) -> None:
    for (x, w, align), v in zip(cols, values, strict=True):
        pdf.set_x(x)
        pdf.cell(w, h, v[:cut], align=align)
    pdf.ln(h)


def _notes(pdf: FPDF, say: Say, notes: list[str]) -> None:
    for note in notes:
        pdf.set_font("helvetica", size=7.5)
        pdf.set_x(15)
        pdf.multi_cell(180, 3.6, say("expense_note", note=note))


def statement_pdf(view: dict[str, Any], model: SiteModel) -> bytes:
    doc = view["document"]
    say = _say(model)
    pdf = pdf_letter.page(auto_break=True)
    pdf_letter.letterhead(pdf, model.site.creditor)
    pdf_letter.address(pdf, doc["account"])
    pdf_letter.title(pdf, say("expense_title", period=doc["period_id"],
                              site=doc["site_name"]), 64)
    pdf.set_font("helvetica", size=8.5)
    pdf.set_xy(15, 72)
    pdf.cell(0, 5, say("expense_head", number=view["number"], first=doc["period_first"],
                       last=doc["period_last"],
                       date=view["issue_date"] or text(model.site.language, "invoice_draft"),
                       currency=doc["currency"]))
    _heading(pdf, say("expense_costs"), 80)
    labels = {}
    for cat in doc.get("categories", []):
        labels[cat["id"]] = cat["label"]
        pdf.set_font("helvetica", "B", 8.5)
        pdf.set_x(15)
        pdf.cell(120, 4.6, _t(cat["label"]))
        pdf.cell(60, 4.6, _t(cat["total"]), align="R")
        pdf.ln(4.6)
        pdf.set_font("helvetica", size=8)
        for p in cat["parts"]:
            pdf.set_x(20)
            pdf.cell(115, 4.2, _spread(say, p))
            pdf.ln(4.2)
        if cat.get("combined"):
            pdf.set_x(20)
            pdf.cell(0, 4.2, _hot_water(say, cat["combined"]))
            pdf.ln(4.2)
    pdf.ln(3)
    _heading(pdf, say("expense_your_share"))
    cols = [(15, 70, "L"), (85, 40, "L"), (125, 35, "R"), (160, 35, "R")]
    pdf.set_font("helvetica", "B", 8.5)
    _row(pdf, cols, [say("expense_col_item"), say("invoice_col_span"),
                     say("expense_col_share"), say("invoice_col_amount")], 5)
    for ln in doc["lines"]:
        pdf.set_font("helvetica", size=8)
        flags = (f" {say('invoice_estimated')}" if ln.get("estimated") else "") + \
            (f" {say('expense_vacant')}" if ln.get("vacant") else "")
        _row(pdf, cols, [f"{ln['n']}. {_label(say, ln, labels)} ({_t(ln['billing_point'])})"
                         f"{flags}", pdf_letter.span(ln["from"], ln["to"]),
                         _t(f"{ln['quantity']} {ln['unit']}"), ln["amount"]], 4.4)
        pdf.set_font("helvetica", size=6.5)
        pdf.set_x(20)
        pdf.multi_cell(175, 3.2, _basis(say, ln))
    rows = [(say("invoice_net_total"), doc["net_total"])]
    rows += [(say("invoice_vat_on", rate=v["rate"], net=v["net"]), v["vat"])
             for v in doc["vat"] if v["vat"] != "0.00"]
    rows += [(say("expense_gross_total"), doc["gross_total"]),
             (say("expense_advances"), f"-{doc['advances']}")]
    if Decimal(doc["rounding"]) != 0:  # as on the invoice: no "0.00" rounding row
        rows.append((say("invoice_rounding"), doc["rounding"]))
    due = doc["total_due"]
    last = (say("expense_refund"), due.lstrip("-")) if doc["refund"] else \
        (say("expense_due"), due)
    y = pdf_letter.totals(pdf, [*rows, last], pdf.get_y() + 3, bold=last[0])
    pdf.set_y(y + 2)
    _notes(pdf, say, doc.get("notes", []))
    return bytes(pdf.output())


def overall_pdf(doc: dict[str, Any], model: SiteModel) -> bytes:
    """The owner's overall statement: each category's costs, key and split, every unit's
    share, what each account owes or gets back (vacancy is the owner's own line)."""
    say = _say(model)
    pdf = pdf_letter.page(auto_break=True)
    pdf_letter.letterhead(pdf, model.site.creditor)
    pdf_letter.title(pdf, say("expense_overall_title", period=doc["period"],
                              site=doc["site_name"]), 35)
    pdf.ln(7)
    pdf.set_font("helvetica", size=8.5)
    pdf.set_x(15)
    pdf.cell(0, 5, say("expense_overall_head", first=doc["from"], to=doc["to"],
                       profile=doc["profile_title"], total=doc["total_costs"],
                       currency=doc["currency"]))
    pdf.ln(8)
    for cat in doc["categories"]:
        pdf.set_font("helvetica", "B", 9)
        pdf.set_x(15)
        pdf.cell(140, 5, say("expense_overall_category", label=cat["label"],
                             kind=say(f"expense_kind_{cat['kind']}"), group=cat["group"]))
        pdf.cell(40, 5, _t(cat["total"]), align="R")
        pdf.ln(5)
        if cat.get("combined"):
            pdf.set_font("helvetica", size=7.5)
            pdf.set_x(20)
            pdf.cell(0, 4, _hot_water(say, cat["combined"]))
            pdf.ln(4)
        for p in cat["parts"]:
            pdf.set_font("helvetica", size=8)
            pdf.set_x(20)
            pdf.cell(0, 4.4, _spread(say, p))
            pdf.ln(4.4)
            for unit, amount in p["units"].items():
                pdf.set_x(28)
                pdf.cell(100, 4, _t(unit))
                pdf.cell(52, 4, _t(amount), align="R")
                pdf.ln(4)
    pdf.ln(3)
    _heading(pdf, say("expense_overall_accounts"))
    cols = [(15, 75, "L"), (90, 35, "R"), (125, 35, "R"), (160, 35, "R")]
    pdf.set_font("helvetica", "B", 8.5)
    _row(pdf, cols, [say("expense_col_account"), say("expense_col_costs"),
                     say("expense_advances"), say("expense_col_balance")], 5)
    pdf.set_font("helvetica", size=8.5)
    for acc, v in doc["accounts"].items():
        _row(pdf, cols, [_t(f"{v['name']} ({acc})"), _t(v["total"]), _t(v["advances"]),
                         _t(v["balance"])], 4.6, cut=48)
    _notes(pdf, say, doc.get("notes", []))
    return bytes(pdf.output())
