"""Invoice lines as typed values: plain decimals when stored, a prorated fee's share of a
month an exact Fraction when read back (issue 14)."""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

from sitegate.cloud.billing.compute import SessionIn, bill_site
from sitegate.cloud.billing.lines import Days, Line, plain
from sitegate.cloud.billing.periods import parse_period


def test_plain_decimals() -> None:
    assert [plain(D(x)) for x in ("4.5E+3", "0.250", "-12", "1E-3")] == \
        ["4500", "0.250", "-12", "0.001"]


def test_prorated_fee_is_a_fraction_when_read_back() -> None:
    stored = {"billing_point": "apt-1", "key": "meter", "label": "Messgebühr",
              "from": "2026-01-01", "to": "2026-01-16", "quantity": "15/31", "unit": "month",
              "unit_price": "6.20", "amount": "3.00", "vat_rate": "8.1", "source": None,
              "n": 2}
    ln = Line.of(stored)
    assert ln.quantity == Days(15, 31) and ln.prorated
    assert ln.exact_quantity == Fraction(15, 31)
    assert (ln.unit_price, ln.amount, ln.vat_rate) == (D("6.20"), D("3.00"), D("8.1"))
    assert ln.to_json() == stored  # the same text back: documents stay byte for byte


def test_session_energy_with_an_exponent_is_shown_plain(site) -> None:
    # An OCPP 2.0.1 value with a unit multiplier arrives as 4.5E+3 Wh = 4.5 kWh;
    # 4.5 x 0.45 = 2.025 -> 2.03 (half up); 1 session x 1.00; net 3.03,
    # VAT 8.1 %: 0.24543 -> 0.25; gross 3.28 -> due 3.30 (0.05 cash rounding)
    model = site(meter_assignments=[], badges=[{"tag": "04A1B2", "account": "anna"}],
                 session_tariffs=[{"kind": "ev", "valid_from": "2025-01-01", "label": "Laden",
                                   "per_kwh": "0.45", "per_session": "1.00"}])
    s = SessionIn("s1", "gw-1", "cp-1", 1, "ev", "04A1B2", 1768039200, 1768046400,
                  D("4.5E+3"))
    doc = bill_site(model, parse_period("2026-01"), {}, [s]).documents["anna"]
    assert [(ln["quantity"], ln["amount"]) for ln in doc["lines"]] == \
        [("4.5", "2.03"), ("1", "1.00")]
    assert doc["total_due"] == "3.30"


def test_an_invoice_is_typed_and_json_only_when_stored(site) -> None:
    # The same session as above: the run hands back a typed Invoice (Decimal totals, typed
    # lines), its JSON is what is stored, and the stored JSON reads back as the same value.
    from sitegate.cloud.billing.document import Invoice

    model = site(meter_assignments=[], badges=[{"tag": "04A1B2", "account": "anna"}],
                 session_tariffs=[{"kind": "ev", "valid_from": "2025-01-01", "label": "Laden",
                                   "per_kwh": "0.45", "per_session": "1.00"}])
    s = SessionIn("s1", "gw-1", "cp-1", 1, "ev", "04A1B2", 1768039200, 1768046400,
                  D("4.5E+3"))
    run = bill_site(model, parse_period("2026-01"), {}, [s])
    inv = run.invoices["anna"]
    assert (inv.totals.net_total, inv.totals.vat_total, inv.totals.rounding, inv.total_due) \
        == (D("3.03"), D("0.25"), D("0.02"), D("3.30"))
    assert [(ln.n, ln.quantity, ln.amount) for ln in inv.lines] == \
        [(1, D("4.5"), D("2.03")), (2, D("1"), D("1.00"))]
    stored = inv.to_json()
    assert stored == run.documents["anna"] and stored["total_due"] == "3.30"
    assert Invoice.of(stored) == inv
    assert Invoice.of(stored).to_json() == stored
    # a prorated fee stays an exact share of the month through the round trip
    fee = Line.of({"billing_point": "apt-1", "key": "meter", "label": "Messgebühr",
                   "from": "2026-01-01", "to": "2026-01-16", "quantity": "15/31",
                   "unit": "month", "unit_price": "6.20", "amount": "3.00", "vat_rate": "8.1",
                   "source": None, "n": 3})
    again = Invoice.of({**stored, "lines": [*stored["lines"], fee.to_json()]})
    assert again.lines[-1].exact_quantity == Fraction(15, 31)
