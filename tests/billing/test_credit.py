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

import pypdfium2
import pytest
from qrpage import qr_fields
from sqlalchemy import select

from sitegate.cloud.billing import ledger, ops
from sitegate.cloud.billing.explain import explain
from sitegate.cloud.billing.ledger import LifecycleError
from sitegate.cloud.cli import main
from sitegate.cloud.store.tables import billing_invoices


@pytest.fixture
def issued(billed):
    db, model, result = billed
    assert result["created"] == [1, 2]
    with db.begin() as conn:
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


def totals_of(view: dict) -> tuple[str, str, str, str, str]:
    d = view["document"]
    return d["net_total"], d["vat_total"], d["gross_total"], d["rounding"], d["total_due"]


def test_credit_in_parts_adds_up_to_the_invoice_exactly(issued) -> None:
    # Each credit note rounds its VAT and its total on its own; the note that credits the
    # rest of the invoice takes the rest of them, so the notes add up to what was billed:
    # VAT 8.99 and the invoice's gross 119.99 -> 120.00, no 0.05 left open.
    db, model = issued
    with db.begin() as conn:
        # Credit note 3: 1 kWh of line 1: 0.30; VAT 0.0243 -> 0.02; -0.32 -> -0.30
        c = ledger.credit(conn, model, 1, date(2026, 2, 10), lines=[(1, "1")])
        assert totals_of(c["credit_note"]) == ("-0.30", "-0.02", "-0.32", "0.02", "-0.30")
        # Credit note 4: the rest: 107.70 + 3.00 = 110.70 net; VAT 8.99 - 0.02 = 8.97;
        # gross -119.67; total 120.00 - 0.30 = 119.70 (rounding -0.03). Alone it would
        # have been -119.65, leaving 0.05 open on an invoice credited in full.
        c = ledger.credit(conn, model, 1, date(2026, 2, 12))
        assert totals_of(c["credit_note"]) == ("-110.70", "-8.97", "-119.67", "-0.03",
                                               "-119.70")
        assert (c["invoice"]["state"], c["invoice"]["balance"]) == ("settled", "0.00")


def test_credit_in_parts_never_credits_more_vat_than_was_billed(issued) -> None:
    db, model = issued
    with db.begin() as conn:
        # Credit note 3: 6 kWh: 1.80; VAT 0.1458 -> 0.15; -1.95
        c = ledger.credit(conn, model, 1, date(2026, 2, 10), lines=[(1, "6")])
        assert totals_of(c["credit_note"]) == ("-1.80", "-0.15", "-1.95", "0.00", "-1.95")
        # Credit note 4: the rest: 106.20 + 3.00 = 109.20 net; VAT 8.99 - 0.15 = 8.84 (alone:
        # 8.8452 -> 8.85, 9.00 credited against 8.99 billed); gross -118.04; total
        # 120.00 - 1.95 = 118.05 (rounding -0.01)
        c = ledger.credit(conn, model, 1, date(2026, 2, 12))
        assert totals_of(c["credit_note"]) == ("-109.20", "-8.84", "-118.04", "-0.01",
                                               "-118.05")
        assert (c["invoice"]["state"], c["invoice"]["balance"]) == ("settled", "0.00")


def test_net_credits_and_line_credits_together_never_exceed_what_was_billed(issued) -> None:
    # The invoice bills 111.00 net at 8.1 %.
    db, model = issued
    with db.begin() as conn:
        with pytest.raises(LifecycleError, match=r"111.00 billed at 8.1 % VAT"):
            ledger.credit(conn, model, 1, date(2026, 2, 10), net="111.05")
        with pytest.raises(LifecycleError, match=r"0.00 billed at 7.7 % VAT"):
            ledger.credit(conn, model, 1, date(2026, 2, 10), net="1.00", vat="7.7")
        # 100.00 net: -100.00; VAT -8.10; -108.10 (11.00 net left to credit)
        c = ledger.credit(conn, model, 1, date(2026, 2, 10), net="100.00")
        assert c["credit_note"]["total_due"] == "-108.10"
        # All lines (111.00) on top of it would credit 211.00: refused, nothing written.
        with pytest.raises(LifecycleError, match=r"11.00 left to credit at 8.1 % VAT"):
            ledger.credit(conn, model, 1, date(2026, 2, 11))
        assert sorted(documents(conn)) == [1, 2, 3]
        # Line 2 (3.00) fits: -3.00; VAT -0.243 -> -0.24; -3.24 -> -3.25
        c = ledger.credit(conn, model, 1, date(2026, 2, 11), lines=[(2, None)])
        assert c["credit_note"]["total_due"] == "-3.25"
        # The last 8.00 net: VAT 8.99 - 8.10 - 0.24 = 0.65; gross -8.65; the invoice's
        # 120.00 - 108.10 - 3.25 = 8.65 (rounding 0.00); settled.
        c = ledger.credit(conn, model, 1, date(2026, 2, 12), net="8.00")
        assert totals_of(c["credit_note"]) == ("-8.00", "-0.65", "-8.65", "0.00", "-8.65")
        assert (c["invoice"]["state"], c["invoice"]["balance"]) == ("settled", "0.00")
        with pytest.raises(LifecycleError, match=r"0.00 left to credit at 8.1 % VAT"):
            ledger.credit(conn, model, 1, date(2026, 2, 13), net="0.05")


@pytest.mark.parametrize("vat", ["abc", "NaN", "-8.1"])
def test_a_bad_vat_rate_is_a_clear_error(issued, capsys, vat) -> None:
    db, _ = issued
    code = main(["invoice", "credit", "1", "--db", str(db.url), "--net", "1.00", "--vat", vat])
    assert code == 2
    assert f"not a VAT rate: {vat!r}" in capsys.readouterr().err
    with db.connect() as conn:
        assert sorted(documents(conn)) == [1, 2]


@pytest.mark.parametrize("amount", ["Infinity", "NaN", "1e999999999"])
def test_an_amount_that_is_not_finite_is_a_clear_error(issued, capsys, amount) -> None:
    db, _ = issued
    for args in (["pay", "1", amount], ["credit", "1", "--net", amount]):
        code = main(["invoice", *args, "--db", str(db.url)])
        assert code == 2
        assert f"not an amount: {amount!r}" in capsys.readouterr().err
    with db.connect() as conn:
        assert sorted(documents(conn)) == [1, 2]
        assert ledger.view(conn, ledger.get_row(conn, "lindenweg", 1))["balance"] == "120.00"
