"""End to end: gateway buffer -> MQTT (a real Mosquitto) -> cloud ingest -> bill -> invoice
PDF with a Swiss QR-bill that an independent decoder (zxing-cpp) reads back.

Real parts only: the gateway's SQLite ``Buffer`` filled with a month of 15-min cumulative
readings (as the daemon appends them, one transaction per batch of poll cycles) and a
completed EV session record, the gateway's ``SyncClient``, the cloud's ``IngestService``
on a SQLite file, then the billing operations the CLI and the API use.

The building (February 2026, Zurich UTC+1 all month: 28 days x 96 = 2688 intervals):
  apt-1 (Anna) 0.2 kWh and apt-2 (Ben) 0.1 kWh every interval;
  the PV makes 0.5 kWh in each interval from 10:00 to 15:00 (20 a day, 560 in all):
  there the grid meter imports 0 and exports 0.2, else it imports 0.3.
Per sunny interval solar_used = 0.3 - 0 = 0.3 = all the consumption (autonomy 1), so
  Anna: solar 560 x 0.2 = 112.000, grid 2688 x 0.2 - 112 = 537.6 - 112 = 425.600 kWh
  Ben:  solar 560 x 0.1 =  56.000, grid 268.8 - 56 = 212.800 kWh
Tariff: solar 0.20, grid 0.30 per kWh, metering 5.00 a month; EV 0.40/kWh, 1.00/session,
0.60/h; VAT 8.1 %; totals to 0.05.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from qrpage import mod10_check_digit, qr_fields

from sitegate.cloud.billing import ops
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.gateway.buffer import Buffer, reading_row
from sitegate.sync.protocol import Reading, SessionRecord
from tests.helpers.uplink import sync_to_cloud

ZH = ZoneInfo("Europe/Zurich")
FEB1 = datetime(2026, 2, 1, tzinfo=ZH)
N = 28 * 96
IMPORT, EXPORT = "1-0:1.8.0", "1-0:2.8.0"


def sunny(i: int) -> bool:
    return 40 <= i % 96 < 60  # 10:00 .. 15:00 local


def registers() -> dict[tuple[str, str], tuple[D, object]]:
    """(meter, quantity) -> (value at 1 Feb 00:00, kWh added in interval i)."""
    return {
        ("apt-1", IMPORT): (D("1520.4"), lambda i: D("0.2")),
        ("apt-2", IMPORT): (D("880"), lambda i: D("0.1")),
        ("main", IMPORT): (D("20000"), lambda i: D(0) if sunny(i) else D("0.3")),
        ("main", EXPORT): (D("3000"), lambda i: D("0.2") if sunny(i) else D(0)),
        ("pv", EXPORT): (D("5000"), lambda i: D("0.5") if sunny(i) else D(0)),
    }


def fill(buffer: Buffer) -> int:
    """Every register at all 2689 boundaries of February, a day of poll cycles per append."""
    values = {k: start for k, (start, _) in registers().items()}
    cycles = []
    for i in range(N + 1):
        ts = (FEB1 + timedelta(minutes=15 * i)).astimezone(UTC)
        cycles.append([Reading(m, ts, q, v, "kWh") for (m, q), v in values.items()])
        for k, (_, inc) in registers().items():
            values[k] += inc(i)  # type: ignore[operator]
    for d in range(0, len(cycles), 96):
        buffer.write([reading_row(r) for c in cycles[d:d + 96] for r in c])
    return len(cycles) * len(values)


def ev_session() -> dict:
    # Anna's badge, 10 Feb 18:00 -> 20:30 (2.5 h), 10000 -> 21500 Wh (11.5 kWh)
    return SessionRecord(
        session_id="cp-1-17", charge_point="cp-1", connector=1, kind="ev", badge="04A1B2C3",
        start=datetime(2026, 2, 10, 18, tzinfo=ZH), stop=datetime(2026, 2, 10, 20, 30, tzinfo=ZH),
        meter_start_wh=D(10000), meter_stop_wh=D(21500), energy_wh=D(11500), duration_s=9000,
        status="completed").to_payload()


def site_model(gateway: str) -> dict:
    return {
        "site": {"id": "e2e", "name": "Rosenweg 3", "timezone": "Europe/Zurich",
                 "gateways": [gateway], "grid_meter": "main", "pv_meters": ["pv"],
                 "qr_reference_prefix": "77",
                 "creditor": {"name": "Verwaltung Rosen GmbH", "street": "Seestrasse",
                              "house_num": "8", "pcode": "8002", "city": "Zürich",
                              "iban": "CH44 3199 9123 0008 8901 2"}},
        "buildings": [{"id": "h", "name": "Haus"}],
        "meters": [{"id": m, "gateway": gateway} for m in ("apt-1", "apt-2", "main", "pv")],
        "billing_points": [{"id": b, "building": "h", "name": b, "tariff": "t", "owner": "own"}
                           for b in ("apt-1", "apt-2")],
        "meter_assignments": [{"billing_point": b, "meter": b, "from": "2025-01-01"}
                              for b in ("apt-1", "apt-2")],
        "accounts": [
            {"id": "own", "name": "Eigentümerin", "kind": "owner"},
            {"id": "anna", "name": "Anna Muster",
             "address": {"street": "Rosenweg", "house_num": "3", "pcode": "8002",
                         "city": "Zürich"}},
            {"id": "ben", "name": "Ben Beispiel"}],
        "occupancy": [{"billing_point": "apt-1", "account": "anna", "from": "2025-01-01"},
                      {"billing_point": "apt-2", "account": "ben", "from": "2025-01-01"}],
        "badges": [{"tag": "04A1B2C3", "account": "anna"}],
        "tariffs": [{"id": "t", "versions": [{"valid_from": "2025-01-01", "components": [
            {"key": "solar", "label": "Solarstrom", "applies": "solar", "price": "0.20"},
            {"key": "grid", "label": "Netzstrom", "applies": "grid", "price": "0.30"}],
            "fees": [{"key": "metering", "label": "Messung", "monthly": "5.00"}]}]}],
        "session_tariffs": [{"kind": "ev", "valid_from": "2025-01-01", "label": "Laden",
                             "per_kwh": "0.40", "per_session": "1.00", "per_hour": "0.60"}],
    }


def test_gateway_to_qr_bill(tmp_path, mosquitto) -> None:
    gateway = f"gw-e2e-{uuid.uuid4().hex[:8]}"
    db = str(tmp_path / "cloud.db")
    upgrade(db)

    # The gateway side: a real buffer file with February and one charging session.
    buffer = Buffer(tmp_path / "buffer.db")
    rows = fill(buffer)
    buffer.append("sessions", [ev_session()])
    assert (buffer.last_seq("readings"), rows) == (13445, 5 * 2689)

    # The cloud's ingest, then the gateway's uplink until everything is acknowledged
    # (an ack is sent only after the cloud committed the rows).
    sync_to_cloud(buffer, gateway, db, mosquitto.url, ["readings", "sessions"])

    # Billing, as the CLI / API / demo call it.
    engine = make_engine(db)
    try:
        ops.import_site(engine, site_model(gateway))
        r = ops.run_bill(engine, "e2e", "2026-02")
        e = r["summary"]["energy_kwh"]
        # 2688 x 0.3 = 806.4 consumed; 560 x 0.3 = 168 from the sun; 2128 x 0.3 = 638.4
        # imported; 560 x 0.2 = 112 exported; production 806.4 - 638.4 + 112 = 280 = PV
        assert (e["consumption"], e["solar"], e["grid"], e["grid_import"],
                e["grid_export"]) == ("806.400", "168.000", "638.400", "638.400", "112.000")
        assert e["production_derived"] == r["summary"]["production_metered_kwh"] == "280.000"
        assert r["summary"]["issues"] == []
        invs = {v["account"]: v for v in ops.invoices(engine, "e2e", "2026-02")}
        assert sorted(invs) == ["anna", "ben"]  # nothing vacant: the owner gets no invoice
        anna = ops.invoice(engine, "e2e", invs["anna"]["number"])["document"]
        ben = ops.invoice(engine, "e2e", invs["ben"]["number"])["document"]
        # Anna: solar 112.000 x 0.20 = 22.40; grid 425.600 x 0.30 = 127.68; fee 28/28 5.00;
        #   EV 11.5 kWh x 0.40 = 4.60, 1 session 1.00, 2.5 h x 0.60 = 1.50;
        #   net 162.18; VAT 13.13658 -> 13.14; 175.32 -> 175.30 (rounding -0.02)
        assert [(ln["key"], ln["quantity"], ln["amount"]) for ln in anna["lines"]] == [
            ("solar", "112.000", "22.40"), ("grid", "425.600", "127.68"),
            ("metering", "28/28", "5.00"), ("ev_per_kwh", "11.5", "4.60"),
            ("ev_per_session", "1", "1.00"), ("ev_per_hour", "2.5000", "1.50")]
        assert (anna["net_total"], anna["vat_total"], anna["rounding"], anna["total_due"]) == \
            ("162.18", "13.14", "-0.02", "175.30")
        # Ben: solar 56.000 x 0.20 = 11.20; grid 212.800 x 0.30 = 63.84; fee 5.00;
        #   net 80.04; VAT 6.48324 -> 6.48; 86.52 -> 86.50 (rounding -0.02)
        assert [(ln["key"], ln["quantity"], ln["amount"]) for ln in ben["lines"]] == [
            ("solar", "56.000", "11.20"), ("grid", "212.800", "63.84"),
            ("metering", "28/28", "5.00")]
        assert (ben["net_total"], ben["vat_total"], ben["total_due"]) == \
            ("80.04", "6.48", "86.50")

        n = invs["anna"]["number"]
        issued = ops.act(engine, "e2e", n, "issue", date(2026, 3, 2))
        assert (issued["state"], issued["balance"]) == ("issued", "175.30")
        pdf = ops.pdf(engine, "e2e", n)
    finally:
        engine.dispose()

    (fields,) = qr_fields(pdf)
    assert fields[0:3] == ["SPC", "0200", "1"]
    assert fields[3] == "CH4431999123000889012"  # the creditor's IBAN, compact
    assert (fields[18], fields[19]) == ("175.30", "CHF")
    assert fields[27] == "QRR"
    ref = fields[28]
    assert len(ref) == 27 and ref[:2] == "77" and int(ref[2:-1]) == n
    assert ref[-1] == mod10_check_digit(ref[:-1])
