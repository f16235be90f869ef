"""The expense statement's PDF speaks the site's language: every fixed word from the
message catalogue (German or English), category labels as the period file words them,
no mixing; and it is printed on the invoice's letter (letterhead, address, totals)."""

from __future__ import annotations

from decimal import Decimal as D

import pypdfium2 as pdfium
from test_allocation_rules import HCA_UNITS, HEATING_30_70

from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.expense.ops import _public
from sitegate.cloud.expense.pdf import overall_pdf, statement_pdf
from sitegate.cloud.expense.statement import AdvancePaid, Cost, run
from tests.helpers.pdf import pdf_text

WATER = {"id": "wasser", "label": "Wasser", "kind": "water", "key": "persons"}


def _in(model: SiteModel, lang: str) -> SiteModel:
    return model.model_copy(update={"site": model.site.model_copy(update={"language": lang})})


def _statements(site, period):
    """test_allocation_rules' 30/70 heating (Anna 900.00 base + 2100.00 consumption, Ben
    1350.00 + 3500.01) plus water 600.00 by persons (2, 3, 1 of 6: Anna 200.00, Ben
    300.00): Anna 3200.00 - advances 3400.00 = a refund of 200.00, Ben 5150.01 - 4500.00
    = 650.01 due."""
    model = site()
    units = [dict(u, persons=n) for u, n in zip(HCA_UNITS, (2, 3, 1), strict=True)]
    spec = period(model, units=units, categories=[*HEATING_30_70, WATER])
    res = run(model, spec, [Cost("heizung", D("10000.01")), Cost("wasser", D("600.00"))],
              [AdvancePaid("anna", "A", D("3400.00")), AdvancePaid("ben", "B", D("4500.00"))],
              {})
    views = {}
    for acc, doc in res.documents.items():
        doc["categories"] = [_public(c) for c in res.site["categories"]]
        doc["notes"] = res.site["notes"]
        views[acc] = {"number": 7, "issue_date": None, "document": doc}
    return model, views, res.site


def test_statement_words_follow_the_site_language(site, period) -> None:
    model, views, _ = _statements(site, period)
    german = pdf_text(statement_pdf(views["anna"], _in(model, "de")))
    english = pdf_text(statement_pdf(views["anna"], _in(model, "en")))
    for words in ("Heiz- und Nebenkostenabrechnung 2025", "Abrechnungszeitraum 2025-01-01 bis",
                  "Datum (Entwurf)", "Kosten des Hauses und Verteilschl", "Ihr Anteil",
                  "Grundkosten: 3000.00 verteilt nach beheizte Fl", "Heizkostenverteiler",
                  "Position", "Anteil", "Vorauszahlungen", "Guthaben (wird ausbezahlt)",
                  "Heizung Verbrauchskosten", "Wasser"):
        assert words in german, words
    for words in ("Heating and service charges 2025", "Accounting period 2025-01-01 to",
                  "Date (draft)", "The house's costs and how they are shared", "Your share",
                  "Base costs: 3000.00 shared by heated area over", "heat cost allocators",
                  "Item", "Share", "Advance payments", "Credit (paid out to you)",
                  "2100.00", "900.00", "200.00", "3200.00",
                  # the period file's own labels stay as written, in both
                  "Heizung Consumption costs", "Wasser"):
        assert words in english, words
    for german_word in ("Abrechnung", "Grundkosten", "Verbrauchskosten", "verteilt", "Anteil",
                        "Vorauszahlungen", "Guthaben", "Summe", "Rundung", "Fläche",
                        "Heizkostenverteiler", "Personen", "Zeitraum", "Betrag"):
        assert german_word not in english, german_word
    ben = pdf_text(statement_pdf(views["ben"], _in(model, "en")))
    assert "Amount due" in ben and "650.01" in ben and "Nachzahlung" not in ben


def test_overall_statement_words_follow_the_site_language(site, period) -> None:
    model, _, overall = _statements(site, period)
    overall["categories"] = overall["categories"]
    german = pdf_text(overall_pdf(overall, _in(model, "de")))
    english = pdf_text(overall_pdf(overall, _in(model, "en")))
    assert "Gesamtabrechnung" in german and "Abrechnung je Konto" in german
    assert "(Heizung, Gruppe heating)" in german
    for words in ("Overall statement 2025", "Statement per account", "Account", "Costs",
                  "Balance", "(heating, group heating)", "shared by heat cost allocators"):
        assert words in english, words
    for german_word in ("Gesamtabrechnung", "Konto", "Saldo", "Gruppe", "exklusiv",
                        "verteilt", "Hinweis"):
        assert german_word not in english, german_word


def test_statement_and_invoice_share_the_letter(site, period) -> None:
    """The letterhead and the address block are the invoice's (pdf_letter): the same
    words at the same places on the page."""
    model, views, _ = _statements(site, period)
    doc = pdfium.PdfDocument(statement_pdf(views["anna"], model))
    try:
        page = doc[0].get_textpage()
        height = doc[0].get_height()
        # the recipient's block at x 120 mm, y 40 mm (the envelope's window)
        name = views["anna"]["document"]["account"]["name"]
        at = page.search(name).get_next()
        assert at is not None
        x, top = page.get_charbox(at[0])[0], height - page.get_charbox(at[0])[3]
        assert abs(x * 25.4 / 72 - 120) < 2 and abs(top * 25.4 / 72 - 40) < 3
    finally:
        doc.close()


def test_the_documents_words_follow_the_site_language_too(site, period) -> None:
    """What the CLI and the API show (a line's label, its basis) names parts and keys in
    the site's language: a German site as before, an English one in English."""
    model, _, _ = _statements(site, period)
    for lang, label, key in (("de", "Heizung Verbrauchskosten", "(Heizkostenverteiler)"),
                             ("en", "Heizung Consumption costs", "(heat cost allocators)")):
        spec = period(_in(model, lang), units=HCA_UNITS, categories=HEATING_30_70)
        res = run(_in(model, lang), spec, [Cost("heizung", D("10000.01"))], [], {})
        line = next(ln for ln in res.documents["anna"]["lines"]
                    if ln["key"] == "heizung.consumption")
        assert line["label"] == label and line["basis"].endswith(key), line
