"""Partial credit notes: chosen lines of an issued invoice, or a part of a line's quantity,
through the ledger, the CLI and the HTTP API. Issued invoices are never edited.

The invoice: Anna, January 2026, meter m1 at 0.25 kWh every 15 min, moving out on 16 Jan
(the move case of test_acceptance):
  line 1  Strom        360.000 kWh x 0.30 = 108.00   8.1 %
  line 2  Messgebühr   15/31 month x 6.20 =   3.00   8.1 %
  net 111.00, VAT 8.991 -> 8.99, 119.99 -> due 120.00 (number 1; Ben's is number 2).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pypdfium2
import pytest
from qrpage import qr_fields
from sqlalchemy import select

from sitegate.cloud.billing import ledger, ops
from sitegate.cloud.billing.billing_run import bill
from sitegate.cloud.billing.explain import explain
from sitegate.cloud.billing.ledger import LifecycleError
from sitegate.cloud.billing.sites import save_site
from sitegate.cloud.billing.tables import billing_invoices
from sitegate.cloud.cli import main

MOVE = [{"billing_point": "apt-1", "account": "anna", "from": "2024-06-01", "to": "2026-01-16"},
        {"billing_point": "apt-1", "account": "ben", "from": "2026-01-16"}]
TARIFF = [{"id": "res", "versions": [{"valid_from": "2025-01-01", "components": [
    {"key": "energy", "label": "Strom", "price": "0.30"}],
    "fees": [{"key": "meter", "label": "Messgebühr", "monthly": "6.20"}]}]}]


@pytest.fixture
def issued(db, site, register, put_readings):
    model = site(occupancy=MOVE, tariffs=TARIFF)
    with db.begin() as conn:
        save_site(conn, model)
        put_readings(conn, "gw-1", "m1", register("2026-01", lambda i: D("0.25")))
        assert bill(conn, model, "2026-01")["created"] == [1, 2]
        v = ledger.issue(conn, model, 1, date(2026, 2, 2), datetime(2026, 2, 2, tzinfo=UTC))
    assert [(ln["n"], ln["quantity"], ln["amount"]) for ln in v["document"]["lines"]] == \
        [(1, "360.000", "108.00"), (2, "15/31", "3.00")]
    assert v["total_due"] == "120.00"
    return db, model


def documents(conn) -> dict[int, str]:
    q = select(billing_invoices.c.number, billing_invoices.c.document)
    return dict(conn.execute(q).all())


def clines(view: dict) -> list[tuple[int, int, str, str, str]]:
    return [(ln["n"], ln["credits_line"], ln["key"], ln["quantity"], ln["amount"])
            for ln in view["document"]["lines"]]


def test_credit_part_of_a_line_and_a_whole_line_then_the_rest(issued) -> None:
    db, model = issued
    with db.begin() as conn:
        before = documents(conn)[1]
        # Credit note 3: 45.6 kWh of line 1 and all of line 2.
        #   45.6 x 0.30 = 13.68 -> -13.68;  fee -3.00;  net -16.68
        #   VAT 8.1 %: -1.35108 -> -1.35;  gross -18.03 -> -18.05 (rounding -0.02)
        #   invoice balance 120.00 - 18.05 = 101.95
        c = ledger.credit(conn, model, 1, date(2026, 2, 10), lines=[(1, "45.6"), (2, None)])
        cn = c["credit_note"]
        assert (cn["number"], cn["kind"], cn["state"]) == (3, "credit_note", "issued")
        assert clines(cn) == [(1, 1, "energy", "-45.6", "-13.68"),
                              (2, 2, "meter", "-15/31", "-3.00")]
        d = cn["document"]
        assert (d["net_total"], d["vat_total"], d["gross_total"], d["rounding"],
                d["total_due"]) == ("-16.68", "-1.35", "-18.03", "-0.02", "-18.05")
        assert d["credits_invoice"] == 1
        assert (c["invoice"]["state"], c["invoice"]["balance"]) == ("issued", "101.95")

        # Neither line 2 again, nor more than the 314.4 kWh left of line 1, nor a part of a
        # prorated fee, nor a line the invoice does not have; nothing is written.
        with pytest.raises(LifecycleError, match="line 2 of invoice 1 is already credited"):
            ledger.credit(conn, model, 1, date(2026, 2, 11), lines=[(2, None)])
        with pytest.raises(LifecycleError, match=r"line 1: 314.5 kWh is more than the "
                                                 r"314.400 kWh left to credit"):
            ledger.credit(conn, model, 1, date(2026, 2, 11), lines=[(1, "314.5")])
        with pytest.raises(LifecycleError, match="no line 3"):
            ledger.credit(conn, model, 1, date(2026, 2, 11), lines=[(3, None)])
        with pytest.raises(LifecycleError, match="not both"):
            ledger.credit(conn, model, 1, date(2026, 2, 11), net="1.00", lines=[(1, None)])
        assert sorted(documents(conn)) == [1, 2, 3]

        # Credit note 4: the rest of line 1: 360.000 - 45.6 = 314.400 kWh; its amount is
        # what is left of 108.00 to the cent: 108.00 - 13.68 = 94.32 (not 314.4 x 0.30
        # rounded anew). VAT -7.63992 -> -7.64; gross -101.96 -> -101.95 (rounding +0.01)
        # balance 101.95 - 101.95 = 0.00: settled.
        c = ledger.credit(conn, model, 1, date(2026, 2, 12), lines=[(1, None)])
        assert clines(c["credit_note"]) == [(1, 1, "energy", "-314.400", "-94.32")]
        d = c["credit_note"]["document"]
        assert (d["vat_total"], d["rounding"], d["total_due"]) == ("-7.64", "0.01", "-101.95")
        assert (c["invoice"]["state"], c["invoice"]["balance"]) == ("settled", "0.00")
        with pytest.raises(LifecycleError, match="invoice 1 is already credited in full"):
            ledger.credit(conn, model, 1, date(2026, 2, 13))
        assert documents(conn)[1] == before  # the issued invoice itself never changes
        # The credit note keeps the trace of the lines it credits.
        e = explain(ledger.view(conn, ledger.get_row(conn, "lindenweg", 4)))
        assert e["lines"][0]["source"]["billing_point"] == "apt-1"
        ov = ledger.overview(conn, "lindenweg", "2026-01")
    # amount billed: 120.00 - 18.05 - 101.95 = 0.00; Ben's 128.00 is still a draft
    assert (ov["amount"], ov["balance"], ov["settled"], ov["draft"]) == ("0.00", "0.00", 1, 1)


def test_credit_of_a_paid_invoice_leaves_a_credit_balance_and_no_qr_part(issued) -> None:
    db, model = issued
    with db.begin() as conn:
        ledger.pay(conn, model, 1, "120.00", date(2026, 2, 20))
        # 10 kWh x 0.30 = 3.00; VAT 0.243 -> 0.24; -3.24 -> -3.25 (rounding -0.01)
        c = ledger.credit(conn, model, 1, date(2026, 2, 25), lines=[(1, "10")])
    assert c["credit_note"]["total_due"] == "-3.25"
    assert (c["invoice"]["state"], c["invoice"]["balance"]) == ("settled", "-3.25")
    # The invoice's PDF now asks for nothing: no payment part, the credit is stated.
    pdf = ops.pdf(db, None, 1)
    assert qr_fields(pdf, dpi=200) == []
    page = pypdfium2.PdfDocument(pdf)[0]
    assert "Guthaben CHF 3.25" in page.get_textpage().get_text_range()


def test_credit_lines_from_the_cli_and_the_api_path(issued, tmp_path, capsys) -> None:
    db, _ = issued
    url = str(db.url)
    # CLI: 45.6 kWh of line 1 and line 2, as in the first test: -18.05
    code = main(["invoice", "credit", "1", "--db", url, "--line", "1:45.6", "--line", "2",
                 "--date", "2026-02-10", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    r = json.loads(out.out)
    assert (r["credit_note"]["total_due"], r["invoice"]["balance"]) == ("-18.05", "101.95")
    code = main(["invoice", "credit", "1", "--db", url, "--line", "2"])
    assert code == 2 and "line 2 of invoice 1 is already credited in full" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["invoice", "credit", "1", "--db", url, "--line", "x:1"])
    assert "not a line: 'x:1'" in capsys.readouterr().err
    # ops.act (what the API calls): the rest of line 1 -> -101.95, settled
    r = ops.act(db, None, 1, "credit", date(2026, 2, 12), lines=[(1, None)])
    assert (r["credit_note"]["number"], r["credit_note"]["total_due"]) == (4, "-101.95")
    assert r["invoice"]["state"] == "settled"
