"""A laundry session of a local RFID point travels like an OCPP relay box's: the point
(Shelly simulator, real state file) writes it into the gateway's buffer, the sync client
sends it through a real Mosquitto, the cloud's ingest stores it, and billing puts it on
the tenant's invoice on the same lines as an OCPP laundry session."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from relay_helpers import ANNA, Clock, badge_list, point

from sitegate.cloud.billing import ops
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.drivers.relays.shelly import ShellyClient
from sitegate.drivers.relays.shelly_sim import ShellySimulator
from sitegate.gateway.buffer import Buffer
from sitegate.gateway.points import Point
from sitegate.ocpp_server.state import StateStore
from sitegate.sync.protocol import SessionRecord
from tests.helpers.uplink import sync_to_cloud

ZH = ZoneInfo("Europe/Zurich")


async def local_session(tmp: Path, buffer: Buffer) -> None:
    """Anna washes: 2000 W for 45 min on the Shelly (authentication on) = 1500 Wh."""
    sim = ShellySimulator(password="pw")
    port = await sim.start()
    dev = ShellyClient("127.0.0.1", port, password="pw", transport="ws", timeout=1)
    store = StateStore(str(tmp / "points.db"))
    clock = Clock()
    now = [datetime(2026, 2, 10, 8, tzinfo=UTC)]  # a finished month, to bill it in full
    p = Point(point(stop_below_w=10, stop_after=60), dev, badge_list(), store, buffer,
              clock=clock, wall=lambda: now[0])
    try:
        assert (await p.present(ANNA))["result"] == "started"
        sim.switches[0].load_w = Decimal(2000)
        await p.poll()
        sim.advance(2700)
        now[0] += timedelta(seconds=2700)
        sim.switches[0].load_w = Decimal(0)
        await p.poll()
        clock.t += 60
        now[0] += timedelta(seconds=60)
        await p.poll()
        assert p.tx is None and not sim.switches[0].on
    finally:
        await dev.close()
        store.close()
        await sim.stop()


def ocpp_session(start: datetime) -> dict:
    """The same machine type behind an OCPP relay box: 800 Wh, Anna's badge."""
    return SessionRecord(
        session_id="LAUNDRY1-7", charge_point="LAUNDRY1", connector=1, kind="laundry",
        badge=ANNA, account="anna", start=start, stop=start + timedelta(hours=1),
        meter_start_wh=Decimal(100), meter_stop_wh=Decimal(900), energy_wh=Decimal(800),
        duration_s=3600, status="completed").to_payload()


def site_model(gateway: str) -> dict:
    return {
        "site": {"id": "wash", "name": "Waschküche", "timezone": "Europe/Zurich",
                 "gateways": [gateway], "qr_reference_prefix": "55",
                 "creditor": {"name": "Verwaltung", "street": "Seestrasse", "house_num": "8",
                              "pcode": "8002", "city": "Zürich",
                              "iban": "CH44 3199 9123 0008 8901 2"}},
        "buildings": [{"id": "h", "name": "Haus"}],
        "meters": [], "billing_points": [], "meter_assignments": [],
        "accounts": [{"id": "own", "name": "Eigentümerin", "kind": "owner"},
                     {"id": "anna", "name": "Anna Muster"}],
        "occupancy": [],
        "badges": [{"tag": ANNA, "account": "anna"}],
        "tariffs": [],
        "session_tariffs": [{"kind": "laundry", "valid_from": "2025-01-01",
                             "label": "Waschen", "per_session": "2.50",
                             "per_kwh": "0.40"}],
    }


def test_point_session_billed_like_an_ocpp_relay_session(tmp_path: Path, mosquitto) -> None:
    gateway = f"gw-pt-{uuid.uuid4().hex[:8]}"
    db = str(tmp_path / "cloud.db")
    upgrade(db)
    buffer = Buffer(tmp_path / "buffer.db")
    asyncio.run(local_session(tmp_path, buffer))
    running, local = [e.data() for e in buffer.pending("sessions")]
    assert (running["status"], local["status"]) == ("running", "completed")  # one session,
    assert running["session_id"] == local["session_id"]  # two reports: billed once
    start = datetime.fromisoformat(local["start"])
    assert (local["start"], local["duration_s"]) == ("2026-02-10T08:00:00Z", 2760)
    buffer.append("sessions", [ocpp_session(start)])

    sync_to_cloud(buffer, gateway, db, mosquitto.url, ["sessions"])

    engine = make_engine(db)
    try:
        ops.import_site(engine, site_model(gateway))
        period = start.astimezone(ZH).strftime("%Y-%m")
        ops.run_bill(engine, "wash", period)
        (inv,) = ops.invoices(engine, "wash", period)
        doc = ops.invoice(engine, "wash", inv["number"])["document"]
        # 2 sessions x 2.50 = 5.00; (1500 + 800) Wh = 2.3 kWh x 0.40 = 0.92; both sessions,
        # the local point's and the OCPP box's, on the same lines.
        both = sorted([local["session_id"], "LAUNDRY1-7"])
        assert sorted((ln["key"], ln["quantity"], ln["amount"], sorted(ln["sessions"]))
                      for ln in doc["lines"]) == [
            ("laundry_per_kwh", "2.3", "0.92", both),
            ("laundry_per_session", "2", "5.00", both)]
        # net 5.92; VAT 8.1 %: 0.47952 -> 0.48; 6.40 due (already on 0.05)
        assert (doc["net_total"], doc["vat_total"], doc["total_due"]) == \
            ("5.92", "0.48", "6.40")
    finally:
        engine.dispose()
