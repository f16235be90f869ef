"""Defects found in review, each pinned by a hand-worked case."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from sqlalchemy import insert

from sitegate.cloud.billing.billing_run import bill
from sitegate.cloud.billing.sites import save_site
from sitegate.cloud.store.tables import readings as readings_table


def test_a_reading_beyond_the_int64_register_is_skipped_not_fatal(db, site, register,
                                                                  put_readings) -> None:
    # A float32 register decoded from garbage reads 3.4E+38 kWh: no int64 holds that in
    # micro-kWh. It is one bad reading, reported and skipped; the rest of the site bills.
    # January 2026, 0.25 kWh every 15 min, 2,976 intervals: 744 kWh; the boundary value at
    # 10 Jan 00:00 that the bad reading stood next to is interpolated from its neighbours
    # (the good reading at the same instant is still there). 744 x 0.30 = 223.20;
    # VAT 8.1 %: 18.0792 -> 18.08; gross 241.28 -> due 241.30.
    model = site()
    bad_ts = datetime(2026, 1, 10, 12, 7, tzinfo=UTC)
    with db.begin() as conn:
        save_site(conn, model)
        seq = put_readings(conn, "gw-1", "m1", register("2026-01", lambda i: D("0.25")))
        conn.execute(insert(readings_table).values(
            gateway_id="gw-1", seq=seq, meter_id="m1", ts=bad_ts, quantity="1-0:1.8.0",
            value="3.4E+38", unit="kWh", quality="good", flags="[]",
            received_at=datetime(2026, 2, 1, tzinfo=UTC)))
        r = bill(conn, model, "2026-01")
    assert r["created"] == [1]
    skipped = [i for i in r["summary"]["issues"] if i["kind"] == "skipped_reading"]
    assert [(i["meter"], i["at"]) for i in skipped] == [("m1", str(int(bad_ts.timestamp())))]
    with db.connect() as conn:
        from sitegate.cloud.billing import ledger
        doc = ledger.view(conn, ledger.get_row(conn, "lindenweg", 1))["document"]
    assert [(ln["quantity"], ln["amount"]) for ln in doc["lines"]] == [("744.000", "223.20")]
    assert doc["total_due"] == "241.30"
