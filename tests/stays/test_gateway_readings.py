"""A pitch whose meter the gateway reads: the stay's start and end values are the
gateway's register at the start of the arrival day and at the end of the departure day."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sitegate.cloud.billing import ops as billing_ops
from sitegate.cloud.stays import ops
from sitegate.cloud.store.tables import readings


def test_settlement_from_gateway_readings(camp) -> None:
    setup = ops.setup(camp, None)
    setup["units"].append({"id": "P9", "type": "pitch", "name": "Stellplatz 9", "meters": [
        {"id": "power", "utility": "electricity", "gateway": "gw-camp", "meter_id": "sp9"}]})
    ops.import_units(camp, None, setup)
    ops.import_reservations(camp, None, [
        {"id": "Y-P9", "unit": "P9", "status": "checked_in", "category": "guest",
         "from": "2026-01-01", "to": "2026-12-31", "guest": {"name": "Nina Wyss"}},
        {"id": "S9", "parent": "Y-P9", "status": "checked_in", "from": "2026-07-01",
         "to": "2026-07-05"}])
    # register values (Wh, as the meter reports) around arrival 1 July and departure
    # 5 July, local midnights 30 June 22:00 UTC and 5 July 22:00 UTC
    rows = [(datetime(2026, 6, 30, 21, 45, tzinfo=UTC), "1000000"),  # last before arrival
            (datetime(2026, 6, 30, 22, 15, tzinfo=UTC), "1000100"),
            (datetime(2026, 7, 5, 21, 45, tzinfo=UTC), "1042500"),  # last before the end
            (datetime(2026, 7, 5, 22, 15, tzinfo=UTC), "1042600")]
    with camp.begin() as conn:
        conn.execute(readings.insert(), [
            {"gateway_id": "gw-camp", "seq": k, "meter_id": "sp9", "ts": ts,
             "quantity": "1-0:1.8.0", "value": v, "unit": "Wh", "quality": "good",
             "flags": "[]", "received_at": ts} for k, (ts, v) in enumerate(rows, 1)])
    r = ops.checkout(camp, None, "S9", date(2026, 7, 5))
    # 1042.5 - 1000.0 = 42.5 kWh x 0.30 (the pitch's rate, no admin fee) = 12.75 at 8.1 %:
    # VAT 1.03275 -> 1.03; gross 13.78 -> cash 13.80
    assert (r["gross_total"], r["total_due"]) == ("13.78", "13.80")
    line = billing_ops.invoice(camp, None, r["invoice"])["document"]["lines"][0]
    assert (line["quantity"], line["readings"]["start"]["source"]) == ("42.5", "gateway")
