"""More hand-worked cases from the issue's list: laundry and eBike sessions (per session,
per started minute) with a site's own label and an advance paid; a quarter across the
change to summer time (a 23-hour day).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from sitegate.cloud.billing.compute import IMPORT, SessionIn, bill_site
from sitegate.cloud.billing.periods import grid_for, parse_period

ZH = ZoneInfo("Europe/Zurich")


def ts(*a: int) -> int:
    return int(datetime(*a, tzinfo=ZH).timestamp())


def test_laundry_and_ebike_sessions_label_and_advance(site) -> None:
    # Laundry 2.50 per session, 3 sessions: 7.50 ("Waschen" is the site's label).
    # eBike 0.01 per started minute: 96 min 10 s -> 97 minutes = 0.97.
    # net 8.47; VAT 8.1 %: 0.68607 -> 0.69; gross 9.16; advance paid 5 Jan: 5.00
    # due 4.16 -> 4.15 (rounding -0.01)
    sessions = [SessionIn(f"w{k}", "gw-1", "wash-1", 1, "laundry", "AA01", ts(2026, 1, d, 9),
                          ts(2026, 1, d, 10), D(0)) for k, d in enumerate((3, 10, 17))]
    sessions.append(SessionIn("e1", "gw-1", "bike-1", 1, "ebike", "AA01", ts(2026, 1, 20, 7),
                              ts(2026, 1, 20, 8, 36, 10), D(400)))
    accounts = [{"id": "owner", "name": "Owner", "kind": "owner"},
                {"id": "anna", "name": "Anna", "advances": [{"date": "2026-01-05",
                                                             "amount": "5.00"}]}]
    model = site(
        site_extra={"labels": {"laundry_per_session": "Waschen"}}, accounts=accounts,
        meter_assignments=[], badges=[{"tag": "AA01", "account": "anna"}],
        session_tariffs=[
            {"kind": "laundry", "valid_from": "2025-01-01", "label": "Waschmaschine",
             "per_session": "2.50"},
            {"kind": "ebike", "valid_from": "2025-01-01", "label": "E-Bike",
             "per_minute": "0.01"}])
    doc = bill_site(model, parse_period("2026-01"), {}, sessions).documents["anna"]
    assert [(ln["label"], ln["quantity"], ln["unit"], ln["amount"]) for ln in doc["lines"]] \
        == [("Waschen", "3", "session", "7.50"), ("E-Bike", "97", "min", "0.97")]
    assert doc["lines"][0]["sessions"] == ["w0", "w1", "w2"]
    assert (doc["net_total"], doc["vat_total"], doc["gross_total"], doc["advances"],
            doc["rounding"], doc["total_due"]) == \
        ("8.47", "0.69", "9.16", "5.00", "-0.01", "4.15")


def test_quarter_across_summer_time(site, register) -> None:
    # Q1 2026: January 31 x 96 = 2976, February 28 x 96 = 2688, March 31 x 96 - 4 = 2972
    # intervals (29 March has 23 hours) = 8636 x 0.25 kWh = 2159.000 kWh x 0.30 = 647.70
    # metering fee 6.20 for each whole month: 3 lines of 6.20 = 18.60
    # net 666.30; VAT 53.97003 -> 53.97; 720.27 -> 720.25 (rounding -0.02)
    q1 = parse_period("2026-Q1")
    assert grid_for(q1, ZH).n == 8636
    rows = register("2026-Q1", lambda i: D("0.25"), start=D("500"))
    model = site(tariffs=[{"id": "res", "versions": [{"valid_from": "2025-01-01",
                                                      "components": [
        {"key": "energy", "label": "Strom", "price": "0.30"}],
        "fees": [{"key": "meter", "label": "Messgebühr", "monthly": "6.20"}]}]}])
    doc = bill_site(model, q1, {"m1": {IMPORT: rows}}).documents["anna"]
    assert [(ln["key"], ln["from"], ln["quantity"], ln["amount"]) for ln in doc["lines"]] == [
        ("energy", "2026-01-01", "2159.000", "647.70"),
        ("meter", "2026-01-01", "31/31", "6.20"), ("meter", "2026-02-01", "28/28", "6.20"),
        ("meter", "2026-03-01", "31/31", "6.20")]
    assert (doc["net_total"], doc["vat_total"], doc["rounding"], doc["total_due"]) == \
        ("666.30", "53.97", "-0.02", "720.25")
