"""From charger to invoice: simulated chargers (1.6 in both placements, 2.0.1) send
OCMF records signed in the test over real WebSockets; the gateway keeps them, the sync
client sends them through a real Mosquitto, the cloud stores them byte-exact, checks them
again and bills: verified sessions from their signed readings, the others held back or
billed with a note as the site says; the Transparenzsoftware's XML reads back."""

from __future__ import annotations

import asyncio
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import zxingcpp
from ocpp_helpers import central, make_cfg, sessions
from pyocmf import OCMF, OcmfContainer

from sitegate.cloud.billing import ocmf_ops, ops
from sitegate.cloud.billing.explain import explain_text
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.common.ocmf_sign import SigningMeter
from sitegate.gateway.buffer import Buffer
from sitegate.ocpp_server.simulator import close, connect
from tests.helpers.uplink import sync_to_cloud

BADGE = "04A23BC1"
OCT = datetime(2026, 10, 5, 8, tzinfo=UTC)  # a finished month


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def _cp1(url: str, meter: SigningMeter, day: int, wh: tuple[int, int],
               kwh: tuple[str, str], placement: str, *, tamper: bool = False,
               drop_end: bool = False) -> list[str]:
    """One 1.6 session of CP1 on October ``day``: unsigned meterStart/Stop ``wh``, signed
    begin/end ``kwh``; returns the records as sent."""
    t0 = OCT + timedelta(days=day)
    t1 = t0 + timedelta(hours=2)
    begin = meter.record([(t0, "B", Decimal(kwh[0]))], badge=BADGE)
    end = meter.record([(t1, "E", Decimal(kwh[1]))], badge=BADGE)
    if tamper:
        end = end.replace(f'"RV":{kwh[1]}', '"RV":99.000')
    signed = [("Transaction.Begin", begin)] + ([] if drop_end else [("Transaction.End", end)])
    sim, task = await connect(url, "CP1", version="1.6")
    await sim.boot()
    tx, _ = await sim.start_tx(1, BADGE, wh[0], timestamp=_iso(t0))
    if placement == "metervalues":
        for ctx, rec in signed:
            await sim.signed_meter(1, tx, ctx, rec, timestamp=_iso(t0 if "Begin" in ctx else t1))
        await sim.stop_tx(tx, wh[1], timestamp=_iso(t1))
    else:
        await sim.stop_tx(tx, wh[1], timestamp=_iso(t1), signed=signed)
    await close(sim, task)
    return [rec for _c, rec in signed]


async def _cp3(url: str, meter: SigningMeter) -> list[str]:
    """A 2.0.1 session: 10.000 -> 12.500 kWh signed, 10000 -> 12500 Wh unsigned; the
    charger sends its key with every signed value (none configured: pinned)."""
    t0 = OCT + timedelta(days=10)
    t1 = t0 + timedelta(hours=1)
    begin = meter.record([(t0, "B", Decimal("10.000"))], badge=BADGE)
    end = meter.record([(t1, "E", Decimal("12.500"))], badge=BADGE)
    sim, task = await connect(url, "CP3", version="2.0.1")
    await sim.boot()
    await sim.event("Started", "tx-9", 1, wh=10000, badge=BADGE, signed=begin,
                    public_key=meter.public_key_hex, timestamp=_iso(t0))
    await sim.event("Ended", "tx-9", 1, wh=12500, reason="EVDisconnected", signed=end,
                    public_key=meter.public_key_hex, timestamp=_iso(t1))
    await close(sim, task)
    return [begin, end]


def _site(gateway: str, cp1_key: str, policy: str) -> dict[str, Any]:
    return {
        "site": {"id": "garage", "name": "Tiefgarage", "timezone": "Europe/Berlin",
                 "currency": "EUR", "gateways": [gateway], "unsigned_sessions": policy,
                 "creditor": {"name": "Verwaltung", "street": "Seestrasse", "house_num": "8",
                              "pcode": "8002", "city": "Zürich",
                              "iban": "CH44 3199 9123 0008 8901 2"}},
        "buildings": [{"id": "h", "name": "Haus"}],
        "billing_points": [], "tariffs": [],
        "accounts": [{"id": "own", "name": "Eigentümerin", "kind": "owner"},
                     {"id": "eva", "name": "Eva Beispiel"}],
        "badges": [{"tag": BADGE, "account": "eva"}],
        "session_tariffs": [{"kind": "ev", "valid_from": "2026-01-01", "label": "Laden",
                             "per_kwh": "0.40", "vat": "0"}],
        "chargers": [{"id": "CP1", "public_key": cp1_key, "meter_serial": "CP1-METER"},
                     {"id": "CP3"}],
    }


def test_signed_sessions_from_charger_to_invoice(tmp_path: Path, mosquitto: Any) -> None:
    gateway = f"gw-ocmf-{uuid.uuid4().hex[:8]}"
    m1, m3 = SigningMeter(serial="CP1-METER"), SigningMeter(curve="secp192r1", serial="CP3-M")
    cfg = make_cfg(charge_points=[
        {"id": "CP1", "calibrated": True, "public_key": m1.public_key_hex},
        {"id": "CP3", "calibrated": True}])
    sent: dict[str, list[str]] = {}

    async def chargers() -> None:
        async with central(tmp_path, cfg) as (_cs, _buf, url):
            sent["A"] = await _cp1(url, m1, 0, (1250, 8750), ("1.250", "8.750"), "metervalues")
            sent["B"] = await _cp1(url, m1, 1, (40000, 47500), ("40.000", "47.500"), "stop",
                                   tamper=True)
            sent["C"] = await _cp3(url, m3)
            sent["D"] = await _cp1(url, m1, 2, (20000, 28500), ("20.000", "27.500"), "stop")
            sent["E"] = await _cp1(url, m1, 3, (30000, 37500), ("30.000", "37.500"),
                                   "metervalues", drop_end=True)
    asyncio.run(chargers())
    buffer = Buffer(tmp_path / "buffer.db")
    ids = {s["session_id"]: s for s in sessions(buffer)}
    assert sorted(ids) == ["CP1-1", "CP1-2", "CP1-4", "CP1-5", "CP3-tx-9"]
    by = {"A": "CP1-1", "B": "CP1-2", "C": "CP3-tx-9", "D": "CP1-4", "E": "CP1-5"}
    assert {k: ids[v]["ocmf"]["status"] for k, v in by.items()} == {
        "A": "verified", "B": "failed", "C": "verified", "D": "failed", "E": "failed"}
    db = str(tmp_path / "cloud.db")
    upgrade(db)
    sync_to_cloud(buffer, gateway, db, mosquitto.url, ["sessions"])

    engine = make_engine(db)
    try:
        # kept byte-exact through buffer, MQTT and the store
        ops.import_site(engine, _site(gateway, m1.public_key_hex, "hold"))
        rec, _key, check = ocmf_ops._session(engine, "garage", gateway, "CP1-1")
        assert [s.data.encode() for s in rec.signed_values] == [r.encode() for r in sent["A"]]
        assert check is not None and check["status"] == "verified"

        r = ops.run_bill(engine, "garage", "2026-10")
        held = sorted(i["detail"].split(":")[0] for i in r["summary"]["issues"]
                      if i["kind"] == "held_session")
        assert held == ["CP1-2", "CP1-4", "CP1-5"]
        (inv,) = ops.invoices(engine, "garage", "2026-10")
        doc = ops.invoice(engine, "garage", inv["number"])["document"]
        (line,) = doc["lines"]
        # verified only, from their signed readings: (8.750 - 1.250) + (12.500 - 10.000)
        # = 7.5 + 2.5 = 10 kWh x 0.40 = 4.00 (VAT 0)
        assert (line["key"], Decimal(line["quantity"]), line["amount"]) == (
            "ev_per_kwh", Decimal(10), "4.00")
        assert doc["total_due"] == "4.00"
        cal = {c["session"]: c for c in line["calibrated"]}
        assert sorted(cal) == ["CP1-1", "CP3-tx-9"]
        assert (cal["CP1-1"]["start"]["value"], cal["CP1-1"]["stop"]["value"],
                cal["CP1-1"]["meter"]) == ("1.250", "8.750", "CP1-METER")
        text = explain_text(ops.explain_invoice(engine, "garage", inv["number"]))
        assert "calibrated session CP1-1 meter CP1-METER: start 1.250 kWh" in text
        assert "signatures verified" in text
        # CP3's key was pinned at its first signed session
        assert [(k["charge_point"], k["public_key"]) for k in ocmf_ops.keys(engine)] == [
            ("CP3", m3.public_key_hex)]

        # the file for the Transparenzsoftware, read back by pyocmf's reader of that format
        xml = tmp_path / "cp3.xml"
        xml.write_text(ocmf_ops.export_xml(engine, "garage", gateway, "CP3-tx-9"))
        container = OcmfContainer.from_xml(xml)
        assert len(container) == 2 and all(e.verify_signature() for e in container)
        assert all(res.is_compliant for res in container.check_eichrecht())

        # the site bills them from unsigned values instead, with a note on each
        ops.import_site(engine, _site(gateway, m1.public_key_hex, "bill_with_note"))
        r = ops.run_bill(engine, "garage", "2026-10")
        doc = ops.invoice(engine, "garage", inv["number"])["document"]
        (line,) = doc["lines"]
        # 10 kWh verified + unsigned 7.5 (B) + 8.5 (D) + 7.5 (E) = 33.5 kWh x 0.40 = 13.40
        assert (Decimal(line["quantity"]), line["amount"]) == (Decimal("33.5"), "13.40")
        notes = {c["session"]: c.get("note", "") for c in line["calibrated"]}
        assert "signature does not verify" in notes["CP1-2"]
        assert "signed energy 7500.000 Wh differs from the unsigned 8500 Wh" in notes["CP1-4"]
        assert "no signed end reading" in notes["CP1-5"]
        assert notes["CP1-1"] == "" and notes["CP3-tx-9"] == ""
        assert len([i for i in r["summary"]["issues"]
                    if i["kind"] == "unsigned_session_billed"]) == 3

        # the PDF lists each calibrated session with its signed readings on an appendix,
        # and a QR code per signed record that the Transparenzsoftware reads (record and
        # key): decoded from the rendered page, they verify with pyocmf
        pdf = pdfium.PdfDocument(ops.pdf(engine, "garage", inv["number"]))
        assert len(pdf) == 2
        page = pdf[1]
        appendix = page.get_textpage().get_text_range()
        assert "Ladevorgang CP1-1" in appendix and "1.250 kWh" in appendix
        assert appendix.count("Signatur gültig") == 2
        assert appendix.count("NICHT geprüft") == 3
        codes = [b.text for b in zxingcpp.read_barcodes(page.render(scale=4).to_pil())]
        # A: 2, B: 2 (tampered end), C: 2, D: 2, E: 1 (no end record)
        assert len(codes) == 9
        valid = {}
        for text in codes:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the appended key is a spec deviation
                rec = OCMF.from_string(text)
                valid[text.rsplit("|", 1)[0]] = rec.verify_signature()
        assert [valid[r] for r in sent["A"] + sent["C"]] == [True] * 4
        assert valid[sent["B"][1]] is False  # the tampered end record stays tampered
    finally:
        engine.dispose()
