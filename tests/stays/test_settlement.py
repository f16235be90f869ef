"""Acceptance (issue 16, part 1): a campsite with three stays on year-round parent
reservations, readings entered in bulk for the chalets, the check-out run: exact amounts
worked by hand, the deposit larger than the cost refunded, every skipped unit and why."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from sitegate.cloud.billing import ops as billing_ops
from sitegate.cloud.stays import ops

DAY = date(2026, 7, 14)


def test_run_settles_two_stays_exactly_and_lists_every_skip(read_camp) -> None:
    r = ops.run(read_camp, None, DAY)
    by = {s["reservation"]: s for s in r["settled"]}
    assert sorted(by) == ["S1", "S2"]
    # S1, chalet C1, deposit 50.00:
    #   Strom 1123.4 - 1000.0 = 123.4 kWh x 0.35 = 43.19  (8.1 %)
    #   Wasser 53.125 - 50.000 = 3.125 m³ x 4.20 = 13.125 -> 13.13  (2.6 %)
    #   admin Strom 5.00 (8.1 %), admin Wasser 2.50 (2.6 %)
    #   8.1 %: net 43.19 + 5.00 = 48.19, VAT 3.90339 -> 3.90
    #   2.6 %: net 13.13 + 2.50 = 15.63, VAT 0.40638 -> 0.41
    #   gross 63.82 + 4.31 = 68.13; - deposit 50.00 = 18.13 -> cash 0.05: 18.15
    assert (by["S1"]["gross_total"], by["S1"]["deposit"], by["S1"]["total_due"],
            by["S1"]["refund"]) == ("68.13", "50.00", "18.15", "0.00")
    # S2, chalet C2, deposit 200.00 (larger than the cost):
    #   Strom 2040.5 - 2000.5 = 40.0 kWh x 0.35 = 14.00; Wasser 0.750 m³ x 4.20 = 3.15
    #   8.1 %: net 14.00 + 5.00 = 19.00, VAT 1.539 -> 1.54
    #   2.6 %: net 3.15 + 2.50 = 5.65, VAT 0.1469 -> 0.15
    #   gross 24.65 + 1.69 = 26.34; - 200.00 = -173.66 -> cash 0.05: -173.65, refund 173.65
    assert (by["S2"]["gross_total"], by["S2"]["total_due"], by["S2"]["refund"]) == (
        "26.34", "-173.65", "173.65")
    assert by["S2"]["guest"] == "Eva Roth"  # the stay's own guest, not the parent's
    assert [(s["unit"], s["reason"]) for s in r["skipped"]] == [
        ("C3", "missing_end_reading"),  # not on the list of 14 July
        ("P1", "no_parent_reservation"),
        ("P2", "wrong_status"),  # its parent reservation is cancelled
        ("P3", "ineligible_category"),  # staff: not billed for energy
    ]
    assert "meter power" in r["skipped"][0]["detail"]

    inv = billing_ops.invoice(read_camp, None, by["S1"]["invoice"])
    lines = [(ln["label"], ln["quantity"], ln["unit_price"], ln["amount"], ln["vat_rate"])
             for ln in inv["document"]["lines"]]
    assert lines == [("Strom", "123.4", "0.35", "43.19", "8.1"),
                     ("Wasser", "3.125", "4.20", "13.13", "2.6"),
                     ("Verwaltungskosten Strom", "1", "5.00", "5.00", "8.1"),
                     ("Verwaltungskosten Wasser", "1", "2.50", "2.50", "2.6")]
    assert inv["document"]["vat"] == [{"rate": "2.6", "net": "15.63", "vat": "0.41"},
                                      {"rate": "8.1", "net": "48.19", "vat": "3.90"}]
    assert (inv["state"], inv["document"]["rounding"]) == ("draft", "0.02")
    # the start and end dates filled in from the readings
    res = {x["id"]: x for x in ops.reservations(read_camp, None)}
    assert (res["S2"]["status"], res["S2"]["first_day"], res["S2"]["last_day"]) == (
        "checked_out", "2026-07-01", "2026-07-14")
    assert res["S3"]["status"] == "checked_in"


def test_second_run_settles_nothing_twice(read_camp) -> None:
    ops.run(read_camp, None, DAY)
    again = ops.run(read_camp, None, DAY)
    assert again["settled"] == []
    assert [s["reason"] for s in again["skipped"][:2]] == ["wrong_status", "wrong_status"]
    assert len(billing_ops.invoices(read_camp, None)) == 2


def test_dry_run_stores_nothing(read_camp) -> None:
    r = ops.run(read_camp, None, DAY, dry_run=True)
    assert [s["total_due"] for s in r["settled"]] == ["18.15", "-173.65"]
    assert billing_ops.invoices(read_camp, None) == []


def test_issued_refund_is_settled_and_explained(read_camp) -> None:
    r = ops.checkout(read_camp, None, "S2", DAY, issue=True)
    assert (r["state"], r["total_due"]) == ("settled", "-173.65")
    e = ops.explain(read_camp, None, "S2")
    assert e["lines"][0]["readings"]["start"]["value"] == "2000.5"
    assert e["lines"][0]["readings"]["end"]["entered_by"] == "Hauswart"
    assert e["totals"]["refund"] == "173.65"


def test_late_end_reading_then_checkout(read_camp) -> None:
    with pytest.raises(ops.StayError, match="no end reading of meter power"):
        ops.checkout(read_camp, None, "S3", DAY)
    ops.enter_readings(read_camp, None, "r.json", json.dumps(
        [{"unit": "C3", "meter": "power", "value": "512.25"},
         {"unit": "C3", "meter": "water", "value": "10.4"}]).encode(), "Hauswart", None, DAY)
    r = ops.checkout(read_camp, None, "S3", DAY)
    # Strom 512.25 - 500 = 12.25 kWh x 0.35 = 4.2875 -> 4.29; Wasser 0.4 m³ x 4.20 = 1.68
    # 8.1 %: 4.29 + 5.00 = 9.29, VAT 0.75249 -> 0.75; 2.6 %: 1.68 + 2.50 = 4.18, VAT
    # 0.10868 -> 0.11; gross 13.47 + 0.86 = 14.33 -> cash 14.35 (no deposit)
    assert (r["gross_total"], r["total_due"]) == ("14.33", "14.35")


def test_start_marked_value_restarts_the_count(camp, enter) -> None:
    """A new meter mid-season: its first value is marked as start, no 'backwards' error,
    and the stay's usage counts from it."""
    enter(camp, "readings-2026-07-01.csv", date(2026, 7, 1))
    rows = [{"unit": "C1", "meter": "power", "value": "3.0", "start": True}]
    ops.enter_readings(camp, None, "r.json", json.dumps(rows).encode(), "Elektriker", None,
                       date(2026, 7, 2))
    rows = [{"unit": "C1", "meter": "power", "value": "13.5"},
            {"unit": "C1", "meter": "water", "value": "51"}]
    ops.enter_readings(camp, None, "r.json", json.dumps(rows).encode(), "Hauswart", None, DAY)
    r = ops.checkout(camp, None, "S1", DAY)
    inv = billing_ops.invoice(camp, None, r["invoice"])
    # 13.5 - 3.0 = 10.5 kWh x 0.35 = 3.675 -> 3.68
    assert inv["document"]["lines"][0]["quantity"] == "10.5"
    assert inv["document"]["lines"][0]["amount"] == "3.68"
    assert Decimal(inv["document"]["lines"][1]["quantity"]) == Decimal("1.000")
