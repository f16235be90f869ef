"""The invoice speaks the site's language: every fixed word from the message catalogue
(German or English), line labels as the site file words them; no mixing."""

from __future__ import annotations

from sitegate.cloud.billing import ledger
from sitegate.cloud.billing.pdf import invoice_pdf
from sitegate.cloud.billing.sitemodel import SiteModel
from tests.helpers.pdf import pdf_text


def _in(model: SiteModel, lang: str) -> SiteModel:
    return model.model_copy(update={"site": model.site.model_copy(update={"language": lang})})


def test_invoice_words_follow_the_site_language(billed) -> None:
    db, model, _ = billed  # Anna's January: 360 kWh "Strom", fee "Messgebühr" 15/31 month
    with db.connect() as conn:
        view = ledger.view(conn, ledger.get_row(conn, model.site.id, 1))
    german = pdf_text(invoice_pdf(view, _in(model, "de")))
    english = pdf_text(invoice_pdf(view, _in(model, "en")))
    for words in ("Rechnung 1 - Lindenweg 12", "Periode 2026-01-01 bis 2026-01-31",
                  "Datum (Entwurf)", "Position", "Menge", "Total netto", "MWST 8.1% auf",
                  "15/31 Monat", "Total CHF", "Ihr Stromverbrauch 2026-01"):
        assert words in german, words
    for words in ("Invoice 1 - Lindenweg 12", "Period 2026-01-01 to 2026-01-31",
                  "Date (draft)", "Item", "Quantity", "Net total", "VAT 8.1% on",
                  "15/31 month", "Total CHF", "Your electricity 2026-01",
                  "Used 360.0 kWh: solar power 0.0 kWh (0 %) and grid power 360.0 kWh"):
        assert words in english, words
    for german_word in ("Rechnung", "Periode", "MWST", "zahlbar", "Menge", "Monat",
                        "Verbrauch"):
        assert german_word not in english, german_word
    # the site file's own labels stay as written, in both
    assert "Strom (apt-1)" in english and "Messgeb" in english
    # the QR-bill's printed headings follow too (qrbill's own translations)
    assert "Receipt" in english and "Empfangsschein" in german


def test_credit_note_label_in_the_site_language(billed) -> None:
    from datetime import UTC, date, datetime

    db, model, _ = billed
    english = _in(model, "en")
    with db.begin() as conn:
        ledger.issue(conn, english, 1, date(2026, 2, 2), datetime(2026, 2, 2, tzinfo=UTC))
        note = ledger.credit(conn, english, 1, date(2026, 2, 10), net="10.00", vat="8.1")
    (line,) = note["credit_note"]["document"]["lines"]
    assert line["label"] == "Credit note for invoice 1"
