"""End to end: simulated M-Bus heat and water meters -> the gateway's M-Bus client over
TCP (link, frames, decode, profiles) -> its SQLite buffer -> its MQTT sync client -> a real
Mosquitto -> the cloud's ingest -> the expense statement. The readings the statement uses
are the ones the meters sent.

The meters answer with real recorded telegrams (Kamstrup MULTICAL 601 for heat, Itron
Cyble for hot water) whose register values are set for 1 January 2025 and 1 January 2026
(local midnight, Berlin): the combined-boiler case of test_allocation_rules, so the same
amounts: Anna 1750.78, Ben 2749.22."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal as D

from houses import BERLIN, COMBINED_PERIOD, SITE, heat_meters, merged

from sitegate.cloud.billing import ops as billing_ops
from sitegate.cloud.billing.sitemodel import parse_site
from sitegate.cloud.expense import ops
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.drivers.base import LinkSettings, MeterRef
from sitegate.drivers.mbus.client import MbusBusClient
from sitegate.drivers.mbus.emulator import EmulatedMeter, Emulator, recording, with_address
from sitegate.gateway.buffer import Buffer, reading_row
from tests.helpers.uplink import sync_to_cloud

KAMSTRUP_ENERGY = "0406e7910000"  # DIF 04 VIF 06: energy, kWh, 32-bit (37351 kWh)
ITRON_VOLUME = "04143d300000"  # DIF 04 VIF 14: volume, 0.01 m³, 32-bit (123.49 m³)
# meter -> (recording, its record, primary address, ident, value at Y0, at Y1 in the
# record's unit: kWh, or 0.01 m³)
METERS = {
    "heat-A": ("kamstrup_multical_601", KAMSTRUP_ENERGY, 1, "10000001", 1000, 4000),
    "heat-B": ("kamstrup_multical_601", KAMSTRUP_ENERGY, 2, "10000002", 0, 5000),
    "ww-A": ("itron_cyble_m-bus_v1.4_water", ITRON_VOLUME, 3, "10000003", 10000, 12000),
    "ww-B": ("itron_cyble_m-bus_v1.4_water", ITRON_VOLUME, 4, "10000004", 700, 3700),
}
PROFILES = {"kamstrup_multical_601": "kamstrup_multical_601",
            "itron_cyble_m-bus_v1.4_water": "itron_cyble_water"}


def telegram(name: str, record: str, value: int, primary: int, ident: str) -> bytes:
    """The recorded telegram with the record's value replaced (checksum made again)."""
    frame = EmulatedMeter.from_recording(primary, name, ident=ident).telegrams[0]
    at = frame.hex().index(record) // 2 + 2  # after DIF and VIF
    patched = frame[:at] + value.to_bytes(4, "little") + frame[at + 4:]
    return with_address(patched, primary)


async def read_all(emu_port: int, meters: dict[str, EmulatedMeter], when: datetime,
                   value_index: int, buffer: Buffer) -> None:
    """Set every meter's register for ``when``, then read each as the gateway does."""
    for mid, (name, record, primary, ident, *values) in METERS.items():
        meters[mid].telegrams = [telegram(name, record, values[value_index], primary, ident)]
        meters[mid].reset()
    client = MbusBusClient(LinkSettings(host="127.0.0.1", port=emu_port, timeout=1.0,
                                        retries=1))
    await client.connect()
    try:
        rows = []
        for mid, (name, _r, primary, *_rest) in METERS.items():
            result = await client.read(MeterRef(mid, PROFILES[name], address=primary), when)
            rows += [reading_row(r) for r in result.readings]
        buffer.write(rows)
    finally:
        await client.close()


async def gateway_side(buffer: Buffer) -> None:
    meters = {mid: EmulatedMeter.from_recording(p, name, ident=ident)
              for mid, (name, _r, p, ident, *_v) in METERS.items()}
    assert recording("kamstrup_multical_601").hex().count(KAMSTRUP_ENERGY) == 1
    emu = Emulator(list(meters.values()), baud=None)
    port = await emu.start_tcp("127.0.0.1", 0)
    try:
        for k, day in enumerate((date(2025, 1, 1), date(2026, 1, 1))):
            when = datetime(day.year, day.month, day.day, tzinfo=BERLIN).astimezone(UTC)
            await read_all(port, meters, when, k, buffer)
    finally:
        await emu.stop()


def test_mbus_meters_to_statement(tmp_path, mosquitto) -> None:
    gateway = f"gw-exp-{uuid.uuid4().hex[:8]}"
    buffer = Buffer(tmp_path / "buffer.db")
    asyncio.run(gateway_side(buffer))
    db = str(tmp_path / "cloud.db")
    upgrade(db)
    sync_to_cloud(buffer, gateway, db, mosquitto.url, ["readings"])

    site = merged(heat_meters("A", "B"), heat_meters("A", "B", medium="water", prefix="ww"))
    for m in site["meters"]:
        m["gateway"] = gateway
    data = dict(SITE, occupancy=SITE["occupancy"][:2], **site)
    data["site"] = dict(SITE["site"], gateways=[gateway])
    engine = make_engine(db)
    try:
        billing_ops.import_site(engine, parse_site(data))
        ops.create_period(engine, None, "period.toml", COMBINED_PERIOD)
        ops.add_cost(engine, None, "2025", "heizung", "4500.00", "test", "5000", "l")
        r = ops.run_statements(engine, None, "2025", today=date(2026, 2, 1))
        overall = ops.site_statement(engine, None, "2025")
        units = {u["billing_point"]: u["consumption"] for u in overall["units"]}
        # heat-A 1000 -> 4000 kWh, ww-B 7.00 -> 37.00 m³, as the meters sent them
        assert [(m["start"], m["end"]) for m in units["A"]["heat"]["meters"]] == \
            [("1000.000", "4000.000")]
        assert [(m["start"], m["end"]) for m in units["B"]["hot_water"]["meters"]] == \
            [("7.000", "37.000")]
        due = {a: ops.statement(engine, None, "2025", a)["total_due"]
               for a in r["statements"]}
        assert due == {"anna": "1750.78", "ben": "2749.22"}
        assert D(due["anna"]) + D(due["ben"]) == D("4500.00")
    finally:
        engine.dispose()

