"""A statement as a PDF a tenant can read: the house's costs per category with their
keys, then the tenant's share line by line with its calculation, advances and the
balance (an amount due, or a refund the operator pays out). The numbers are the
document's own strings, so the PDF says exactly what the JSON says."""

from __future__ import annotations

from typing import Any

from fpdf import FPDF

from sitegate.cloud.billing.pdf import _FIXED, _t
from sitegate.cloud.billing.sitemodel import SiteModel

PARTS = {"base": "Grundkosten", "consumption": "Verbrauchskosten", "correction": "Korrektur",
         "all": "", "fixed": "Pauschale"}


def statement_pdf(view: dict[str, Any], model: SiteModel) -> bytes:
    doc = view["document"]
    pdf = FPDF(format="A4")
    pdf.set_creation_date(_FIXED)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    c = model.site.creditor
    pdf.set_font("helvetica", size=9)
    pdf.set_xy(15, 12)
    pdf.multi_cell(90, 4.5, _t(f"{c.name}\n{c.street} {c.house_num}\n{c.pcode} {c.city}"))
    acc = doc["account"]
    addr = acc.get("address") or {}
    pdf.set_xy(120, 35)
    pdf.set_font("helvetica", size=10)
    pdf.multi_cell(80, 5, _t(f"{acc['name']}\n{addr.get('street', '')} "
                             f"{addr.get('house_num', '')}\n{addr.get('pcode', '')} "
                             f"{addr.get('city', '')}"))
    pdf.set_xy(15, 60)
    pdf.set_font("helvetica", "B", 13)
    pdf.cell(0, 7, _t(f"Heiz- und Nebenkostenabrechnung {doc['period_id']} - "
                      f"{doc['site_name']}"))
    pdf.set_font("helvetica", size=8.5)
    pdf.set_xy(15, 68)
    pdf.cell(0, 5, _t(f"Nr. {view['number']}   Abrechnungszeitraum {doc['period_first']} bis "
                      f"{doc['period_last']}   Datum {view['issue_date'] or '(Entwurf)'}   "
                      f"Währung {doc['currency']}"))
    pdf.set_xy(15, 76)
    pdf.set_font("helvetica", "B", 10)
    pdf.cell(0, 6, _t("Kosten des Hauses und Verteilschlüssel"))
    pdf.ln(6)
    for cat in doc.get("categories", []):
        pdf.set_font("helvetica", "B", 8.5)
        pdf.set_x(15)
        pdf.cell(120, 4.6, _t(cat["label"]))
        pdf.cell(60, 4.6, _t(cat["total"]), align="R")
        pdf.ln(4.6)
        pdf.set_font("helvetica", size=8)
        for p in cat["parts"]:
            pdf.set_x(20)
            name = PARTS.get(p["part"], p["part"])
            pdf.cell(115, 4.2, _t(f"{name + ': ' if name else ''}{p['total']} verteilt nach "
                                  f"{p['key']} über {p['key_total']} {p['unit']}"
                                  + (" (Fläche statt Verbrauch)"
                                     if p.get("by_area_instead_of") else "")))
            pdf.ln(4.2)
        if cat.get("combined"):
            cb = cat["combined"]
            pdf.set_x(20)
            pdf.cell(0, 4.2, _t(f"Warmwasseranteil {cb['share']} %: {cb['q_kwh']} von "
                                f"{cb['fuel_kwh']} kWh = {cb['amount']}"))
            pdf.ln(4.2)
    pdf.ln(3)
    pdf.set_font("helvetica", "B", 10)
    pdf.set_x(15)
    pdf.cell(0, 6, _t("Ihr Anteil"))
    pdf.ln(6)
    cols = [(15, 70, "Position", "L"), (85, 40, "Zeitraum", "L"), (125, 35, "Anteil", "R"),
            (160, 35, "Betrag", "R")]
    pdf.set_font("helvetica", "B", 8.5)
    for x, w, h, align in cols:
        pdf.set_x(x)
        pdf.cell(w, 5, h, align=align)
    pdf.ln(5)
    for ln in doc["lines"]:
        pdf.set_font("helvetica", size=8)
        flags = (" geschätzt" if ln.get("estimated") else "") + \
            (" Leerstand" if ln.get("vacant") else "")
        vals = [f"{ln['n']}. {ln['label']} ({ln['billing_point']}){flags}",
                f"{ln['from']}..{ln['to']}", f"{ln['quantity']} {ln['unit']}", ln["amount"]]
        for (x, w, _h, align), v in zip(cols, vals, strict=True):
            pdf.set_x(x)
            pdf.cell(w, 4.4, _t(v)[:60], align=align)
        pdf.ln(4.4)
        pdf.set_font("helvetica", size=6.5)
        pdf.set_x(20)
        pdf.multi_cell(175, 3.2, _t(ln["basis"]))
    pdf.ln(3)
    rows = [("Summe netto", doc["net_total"])]
    rows += [(f"MWST {v['rate']}% auf {v['net']}", v["vat"]) for v in doc["vat"]
             if v["vat"] != "0.00"]
    rows += [("Summe", doc["gross_total"]), ("Vorauszahlungen", f"-{doc['advances']}"),
             ("Rundung", doc["rounding"])]
    due = doc["total_due"]
    rows.append(("Guthaben (wird ausbezahlt)", due.lstrip("-")) if doc["refund"]
                else ("Nachzahlung", due))
    for label, amount in rows:
        pdf.set_x(110)
        pdf.set_font("helvetica", "B" if label in ("Nachzahlung", "Guthaben (wird ausbezahlt)")
                     else "", 9)
        pdf.cell(65, 5, _t(label))
        pdf.cell(20, 5, _t(amount), align="R")
        pdf.ln(5)
    for note in doc.get("notes", []):
        pdf.set_font("helvetica", size=7.5)
        pdf.set_x(15)
        pdf.multi_cell(180, 3.6, _t(f"Hinweis: {note}"))
    return bytes(pdf.output())


def overall_pdf(doc: dict[str, Any], model: SiteModel) -> bytes:
    """The owner's overall statement: each category's costs, key and split, every unit's
    share, what each account owes or gets back (vacancy is the owner's own line)."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(_FIXED)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    c = model.site.creditor
    pdf.set_font("helvetica", size=9)
    pdf.set_xy(15, 12)
    pdf.multi_cell(90, 4.5, _t(f"{c.name}\n{c.street} {c.house_num}\n{c.pcode} {c.city}"))
    pdf.set_xy(15, 35)
    pdf.set_font("helvetica", "B", 13)
    pdf.cell(0, 7, _t(f"Gesamtabrechnung {doc['period']} - {doc['site_name']}"))
    pdf.ln(7)
    pdf.set_font("helvetica", size=8.5)
    pdf.set_x(15)
    pdf.cell(0, 5, _t(f"Abrechnungszeitraum {doc['from']} bis {doc['to']} (exklusiv), "
                      f"{doc['profile_title']}, Gesamtkosten {doc['total_costs']} "
                      f"{doc['currency']}"))
    pdf.ln(8)
    for cat in doc["categories"]:
        pdf.set_font("helvetica", "B", 9)
        pdf.set_x(15)
        pdf.cell(140, 5, _t(f"{cat['label']} ({cat['kind']}, Gruppe {cat['group']})"))
        pdf.cell(40, 5, _t(cat["total"]), align="R")
        pdf.ln(5)
        if cat.get("combined"):
            cb = cat["combined"]
            pdf.set_font("helvetica", size=7.5)
            pdf.set_x(20)
            pdf.cell(0, 4, _t(f"Warmwasseranteil {cb['share']} %: {cb['q_kwh']} von "
                              f"{cb['fuel_kwh']} kWh = {cb['amount']}"))
            pdf.ln(4)
        for p in cat["parts"]:
            pdf.set_font("helvetica", size=8)
            pdf.set_x(20)
            name = PARTS.get(p["part"], p["part"])
            pdf.cell(0, 4.4, _t(f"{name + ': ' if name else ''}{p['total']} nach {p['key']} "
                                f"über {p['key_total']} {p['unit']}"))
            pdf.ln(4.4)
            for unit, amount in p["units"].items():
                pdf.set_x(28)
                pdf.cell(100, 4, _t(unit))
                pdf.cell(52, 4, _t(amount), align="R")
                pdf.ln(4)
    pdf.ln(3)
    pdf.set_font("helvetica", "B", 10)
    pdf.set_x(15)
    pdf.cell(0, 6, _t("Abrechnung je Konto"))
    pdf.ln(6)
    cols = [(15, 75, "Konto", "L"), (90, 35, "Kosten", "R"), (125, 35, "Vorauszahlungen", "R"),
            (160, 35, "Saldo", "R")]
    pdf.set_font("helvetica", "B", 8.5)
    for x, w, h, align in cols:
        pdf.set_x(x)
        pdf.cell(w, 5, h, align=align)
    pdf.ln(5)
    pdf.set_font("helvetica", size=8.5)
    for acc, v in doc["accounts"].items():
        for (x, w, _h, align), val in zip(cols, [f"{v['name']} ({acc})", v["total"],
                                                 v["advances"], v["balance"]], strict=True):
            pdf.set_x(x)
            pdf.cell(w, 4.6, _t(val)[:48], align=align)
        pdf.ln(4.6)
    for note in doc.get("notes", []):
        pdf.set_font("helvetica", size=7.5)
        pdf.set_x(15)
        pdf.multi_cell(180, 3.6, _t(f"Hinweis: {note}"))
    return bytes(pdf.output())
