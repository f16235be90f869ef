"""Signed meter values from simulated chargers over real WebSockets into the gateway's
buffer: both OCPP versions, both 1.6 placements, kept byte-exact and checked at the gateway
with real ECDSA signatures made in the test."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ocpp_helpers import central, events, make_cfg, run, sessions

from sitegate.common.ocmf_sign import SigningMeter
from sitegate.ocpp_server.simulator import close, connect

BADGE = "04A23BC1"


def _cfg(**cp: Any) -> Any:
    return make_cfg(charge_points=[{"id": "CP1", **cp}, {"id": "CP2"}])


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _times() -> tuple[datetime, datetime]:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return t0, t0 + timedelta(minutes=50)


async def _session16(url: str, meter: SigningMeter, *, placement: str, start_wh: int = 1250,
                     stop_wh: int = 8750, signed_stop_kwh: str = "8.750",
                     tamper: bool = False, drop_end: bool = False,
                     wrap_key: str | None = None) -> tuple[str, str]:
    """One 1.6 session with signed begin and end records; returns the two records."""
    t0, t1 = _times()
    begin = meter.record([(t0, "B", Decimal(start_wh).scaleb(-3))], badge=BADGE)
    end = meter.record([(t1, "E", Decimal(signed_stop_kwh))], badge=BADGE)
    sent_end = end.replace('"RV":8.750', '"RV":9.750') if tamper else end

    def value(rec: str) -> str:
        if wrap_key is None:
            return rec
        # the OCA whitepaper's form: the 2.0.1 structure as JSON text in ``value``
        return json.dumps({"signedMeterData": base64.b64encode(rec.encode()).decode(),
                           "signingMethod": "", "encodingMethod": "OCMF",
                           "publicKey": base64.b64encode(bytes.fromhex(wrap_key)).decode()})

    sim, task = await connect(url, "CP1", version="1.6")
    await sim.boot()
    tx, _ = await sim.start_tx(1, BADGE, start_wh, timestamp=_iso(t0))
    signed = [("Transaction.Begin", value(begin))]
    if not drop_end:
        signed.append(("Transaction.End", value(sent_end)))
    if placement == "metervalues":
        for ctx, v in signed:
            await sim.signed_meter(1, tx, ctx, v, timestamp=_iso(t0 if "Begin" in ctx else t1))
        await sim.stop_tx(tx, stop_wh, timestamp=_iso(t1))
    else:
        await sim.stop_tx(tx, stop_wh, timestamp=_iso(t1), signed=signed)
    await close(sim, task)
    return begin, sent_end


def test_16_metervalues_placement_verified_and_byte_exact(tmp: Path) -> None:
    meter = SigningMeter()
    cfg = _cfg(calibrated=True, public_key=meter.public_key_hex, meter_serial=meter.serial)

    async def scenario() -> tuple[str, str]:
        async with central(tmp, cfg) as (_cs, _buf, url):
            return await _session16(url, meter, placement="metervalues")
    begin, end = run(scenario())
    from sitegate.gateway.buffer import Buffer
    [s] = sessions(Buffer(tmp / "buffer.db"))
    assert [(v["context"], v["source"]) for v in s["signed_values"]] == [
        ("Transaction.Begin", "MeterValues"), ("Transaction.End", "MeterValues")]
    assert [v["data"].encode() for v in s["signed_values"]] == [begin.encode(), end.encode()]
    assert s["calibrated"] is True
    assert s["ocmf"]["status"] == "verified", s["ocmf"]
    # 8.750 kWh - 1.250 kWh, as signed, equals meterStop - meterStart = 8750 - 1250 Wh
    assert s["ocmf"]["energy_wh"] == "7500.000"
    assert (s["ocmf"]["start"]["value"], s["ocmf"]["stop"]["value"]) == ("1.250", "8.750")
    assert not [f for f in s["flags"] if f.startswith("ocmf_")]


def test_16_stop_placement_wrapped_key_pinned_at_first_use(tmp: Path) -> None:
    meter = SigningMeter(curve="secp192r1")
    cfg = _cfg(calibrated=True)  # no key configured: the first one sent is pinned

    async def scenario() -> Any:
        async with central(tmp, cfg) as (cs, buf, url):
            await _session16(url, meter, placement="stop", wrap_key=meter.public_key_hex)
            return cs.core.public_key("CP1"), sessions(buf), events(buf)
    pinned, [s], evs = run(scenario())
    assert pinned == meter.public_key_hex
    assert [v["source"] for v in s["signed_values"]] == ["StopTransaction"] * 2
    assert s["ocmf"]["status"] == "verified", s["ocmf"]
    assert [e["kind"] for e in evs if e["kind"].startswith("ocmf")] == ["ocmf_key_pinned"]


def test_tampered_record_fails(tmp: Path) -> None:
    meter = SigningMeter()
    cfg = _cfg(calibrated=True, public_key=meter.public_key_hex)

    async def scenario() -> Any:
        async with central(tmp, cfg) as (_cs, buf, url):
            await _session16(url, meter, placement="stop", tamper=True)
            return sessions(buf)
    [s] = run(scenario())
    assert s["ocmf"]["status"] == "failed"
    assert any("Transaction.End: signature does not verify" in p for p in s["ocmf"]["problems"])
    assert "ocmf_failed" in s["flags"]


def test_wrong_key_missing_end_and_energy_mismatch(tmp: Path) -> None:
    meter, other = SigningMeter(), SigningMeter()

    async def scenario(cfg: Any, sub: str, **kw: Any) -> Any:
        (tmp / sub).mkdir()
        async with central(tmp / sub, cfg) as (_cs, buf, url):
            await _session16(url, meter, placement="metervalues", **kw)
            return sessions(buf)
    [wrong] = run(scenario(_cfg(calibrated=True, public_key=other.public_key_hex), "a"))
    assert wrong["ocmf"]["status"] == "failed"
    assert sum("signature does not verify" in p for p in wrong["ocmf"]["problems"]) == 2
    [no_end] = run(scenario(_cfg(calibrated=True, public_key=meter.public_key_hex), "b",
                            drop_end=True))
    assert no_end["ocmf"]["status"] == "failed"
    assert "no signed end reading (TX=E/L/R/A/P)" in no_end["ocmf"]["problems"]
    # signed 8.750 - 1.250 = 7.5 kWh, unsigned meterStop 9750 - 1250 = 8500 Wh
    [differs] = run(scenario(_cfg(calibrated=True, public_key=meter.public_key_hex), "c",
                             stop_wh=9750))
    assert differs["ocmf"]["status"] == "failed"
    assert differs["ocmf"]["problems"] == [
        "signed energy 7500.000 Wh differs from the unsigned 8500 Wh"]


def test_calibrated_charger_without_signed_values_is_missing(tmp: Path) -> None:
    async def scenario() -> Any:
        async with central(tmp, _cfg(calibrated=True)) as (_cs, buf, url):
            sim, task = await connect(url, "CP1", version="1.6")
            await sim.boot()
            tx, _ = await sim.start_tx(1, BADGE, 100)
            await sim.stop_tx(tx, 600)
            await close(sim, task)
            sim, task = await connect(url, "CP2", version="1.6")  # not calibrated
            await sim.boot()
            tx, _ = await sim.start_tx(1, BADGE, 100)
            await sim.stop_tx(tx, 600)
            await close(sim, task)
            return sessions(buf)
    cal, plain = run(scenario())
    assert cal["ocmf"]["status"] == "missing" and "ocmf_missing" in cal["flags"]
    assert plain["ocmf"] is None and plain["signed_values"] == [] and not plain["calibrated"]


def test_201_signed_values_and_key_change_alarm(tmp: Path) -> None:
    meter = SigningMeter()
    cfg = _cfg(calibrated=True)

    async def one(url: str, m: SigningMeter, tx_id: str) -> None:
        t0, t1 = datetime.now(UTC), datetime.now(UTC)
        begin = m.record([(t0, "B", Decimal("10.000"))], badge=BADGE)
        end = m.record([(t1, "E", Decimal("12.500"))], badge=BADGE)
        sim, task = await connect(url, "CP1", version="2.0.1")
        await sim.boot()
        await sim.event("Started", tx_id, 1, wh=10000, badge=BADGE, signed=begin,
                        public_key=m.public_key_hex)
        await sim.event("Ended", tx_id, 1, wh=12500, reason="EVDisconnected", signed=end,
                        public_key=m.public_key_hex)
        await close(sim, task)

    async def scenario() -> Any:
        async with central(tmp, cfg) as (_cs, buf, url):
            await one(url, meter, "tx-1")
            await one(url, SigningMeter(), "tx-2")  # the meter's key changed
            return sessions(buf), events(buf)
    (first, second), evs = run(scenario())
    assert first["ocmf"]["status"] == "verified", first["ocmf"]
    assert first["ocmf"]["energy_wh"] == "2500.000"
    # the data is the base64 signedMeterData exactly as sent
    assert base64.b64decode(first["signed_values"][0]["data"]).startswith(b"OCMF|")
    assert second["ocmf"]["status"] == "failed"
    assert "ocmf_key_changed" in second["flags"]
    [alarm] = [e for e in evs if e["kind"] == "ocmf_key_changed"]
    assert alarm["severity"] == "alarm"
