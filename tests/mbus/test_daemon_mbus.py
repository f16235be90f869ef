"""M-Bus meters in the real daemon: site file -> bus task -> buffer, beside the emulator.

Primary and secondary addressing, a meter that never answers (backed off, reported), and a
telegram the decoder cannot read (kept raw in the events stream; the other meters' data
is not lost)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from sitegate.common.sitefile import parse_config
from sitegate.drivers.mbus.decode import decode_telegram
from sitegate.drivers.mbus.emulator import EmulatedMeter, Emulator, recording
from sitegate.drivers.mbus.frames import long_frame
from sitegate.drivers.mbus.profile import load_profile
from sitegate.drivers.mbus.readings import to_result
from sitegate.gateway.buffer import Buffer
from sitegate.gateway.daemon import Daemon

KAMSTRUP_SECONDARY = "06855817"
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # the id in the recorded Multical 601 telegram


def site(tmp: Path, port: int) -> str:
    return f"""
gateway_id = "gw-mbus"
[storage]
path = "{tmp}/buffer.db"
[health]
socket = "{tmp}/sitegate.sock"
[[buses]]
name = "mbus-lan"
protocol = "mbus"
timeout = 0.3
retries = 0
backoff_max = 2
tcp = {{ host = "127.0.0.1", port = {port} }}
[[meters]]
id = "heat-1"
bus = "mbus-lan"
secondary = "{KAMSTRUP_SECONDARY}"
profile = "kamstrup_multical_601"
interval = 1
[[meters]]
id = "water-3"
bus = "mbus-lan"
address = 3
profile = "itron_cyble_water"
interval = 1
[[meters]]
id = "gone-9"
bus = "mbus-lan"
address = 9
profile = "mbus_generic"
interval = 1
[[meters]]
id = "odd-7"
bus = "mbus-lan"
address = 7
profile = "mbus_generic"
interval = 1
"""


def test_daemon_reads_mbus_meters_into_the_buffer(tmp_path: Path) -> None:
    # CI 0x72 announces a 12-byte header; 2 bytes follow: a frame the link accepts (sound
    # checksum) and the decoder cannot read.
    garbled = long_frame(0x08, 7, 0x72, b"\x01\x02")
    meters = [
        EmulatedMeter.from_recording(1, "kamstrup_multical_601"),
        EmulatedMeter.from_recording(3, "itron_cyble_m-bus_v1.4_water"),
        EmulatedMeter([garbled], 7, secondary="11111111FFFFFFFF"),
    ]
    assert meters[0].secondary.startswith(KAMSTRUP_SECONDARY)

    async def go() -> None:
        emu = Emulator(meters, baud=None)
        port = await emu.start_tcp("127.0.0.1", 0)
        daemon = Daemon(parse_config(site(tmp_path, port), "site.toml"))
        run = asyncio.create_task(daemon.run())
        await asyncio.sleep(5.5)
        daemon.request_stop()
        assert await run == 0
        await emu.stop()

    asyncio.run(go())
    buf = Buffer(str(tmp_path / "buffer.db"))
    readings = [e.data() for e in buf.pending("readings", limit=100_000)]
    events = [e.data() for e in buf.pending("events", limit=100_000)]
    buf.close()
    by_meter: dict[str, dict[str, str]] = {}
    for r in readings:
        by_meter.setdefault(r["meter_id"], {})[r["quantity"]] = r["value"]
    # what came over the wire and through the daemon equals the recording decoded offline
    for meter_id, rec, profile in (("heat-1", "kamstrup_multical_601", "kamstrup_multical_601"),
                                   ("water-3", "itron_cyble_m-bus_v1.4_water",
                                    "itron_cyble_water")):
        offline = to_result(meter_id, [decode_telegram(recording(rec))], load_profile(profile),
                            NOW, NOW)
        expected = {r.quantity: str(r.value) for r in offline.readings}
        assert expected and by_meter[meter_id] == expected, (meter_id, by_meter.get(meter_id))
    assert "heat_energy" in by_meter["heat-1"] and "volume" in by_meter["water-3"]
    assert "gone-9" not in by_meter
    kinds = [(e["kind"], e.get("meter_id")) for e in events]
    assert ("meter_fault", "gone-9") in kinds
    undecodable = [e for e in events if e["kind"] == "mbus_undecodable_frame"]
    assert undecodable and undecodable[0]["meter_id"] == "odd-7"
    assert json.dumps(undecodable[0]).find(garbled.hex().upper()) >= 0  # kept raw
    # every meter that answered was read in several cycles: the dead one never stalled them
    heat_slots = {r["ts"] for r in readings if r["meter_id"] == "heat-1"}
    assert len(heat_slots) >= 3
