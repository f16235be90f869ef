"""Polling against real pymodbus servers: aligned slots, a dead meter that does not stall
the others, backoff and recovery."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from typing import Any

from sitegate.drivers.base import LinkSettings, MeterRef
from sitegate.drivers.modbus.client import ModbusBusClient
from sitegate.drivers.modbus.simulator import ModbusSimulator
from sitegate.gateway.scheduler import BusWorker, next_slot
from sitegate.sync.protocol import Reading


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_next_slot_is_wall_clock_aligned() -> None:
    t = datetime(2026, 3, 1, 10, 7, 12, tzinfo=UTC).timestamp()
    assert datetime.fromtimestamp(next_slot(t, 900), UTC).strftime("%H:%M:%S") == "10:15:00"
    assert next_slot(next_slot(t, 900), 900) - next_slot(t, 900) == 900
    assert datetime.fromtimestamp(next_slot(t, 60), UTC).strftime("%H:%M:%S") == "10:08:00"


def test_dead_meter_does_not_stall_the_bus_and_recovers() -> None:
    cycles: list[tuple[list[Reading], list[dict[str, Any]]]] = []

    async def sink(readings: list[Reading], events: list[dict[str, Any]]) -> None:
        cycles.append((readings, events))

    async def go() -> BusWorker:
        port = _port()
        sim = ModbusSimulator([(1, "eastron_sdm630"), (2, "eastron_sdm630"),
                               (3, "eastron_sdm630")])
        sim.meters[2].silent = True
        await sim.start_tcp("127.0.0.1", port, "rtu-over-tcp")
        client = ModbusBusClient(LinkSettings(host="127.0.0.1", port=port,
                                              framing="rtu-over-tcp", timeout=0.3, retries=0))
        refs = [(MeterRef(f"m{u}", "eastron_sdm630", unit=u), 1) for u in (1, 2, 3)]
        worker = BusWorker("b", client, refs, sink, backoff_max=2)
        task = asyncio.create_task(worker.run())
        await asyncio.sleep(6.5)
        sim.meters[2].silent = False  # the meter comes back
        await asyncio.sleep(4.5)
        worker.stop()
        await task
        await sim.stop()
        return worker

    worker = asyncio.run(go())
    by_meter: dict[str, list[datetime]] = {}
    for readings, _ in cycles:
        for r in readings:
            if r.quantity == "1-0:1.8.0":
                by_meter.setdefault(r.meter_id, []).append(r.ts)
                assert r.ts.microsecond == 0  # the scheduled slot, not the read time
                assert r.read_at is not None and r.read_at >= r.ts
    for healthy in ("m1", "m3"):
        slots = by_meter[healthy]
        # a reading for every 1-s slot: the dead meter never made a healthy one miss a slot
        steps = {int((b - a).total_seconds()) for a, b in zip(slots, slots[1:], strict=False)}
        assert steps == {1}, (healthy, slots)
    dead = next(m for m in worker.meters if m.ref.meter_id == "m2")
    assert dead.errors["no_response"] >= 2
    # backoff: far fewer probes than slots while it was silent
    assert dead.reads < len(by_meter["m1"])
    assert "m2" in by_meter and dead.failures == 0  # probed again and recovered
    kinds = [e["kind"] for _, evs in cycles for e in evs]
    assert kinds.count("meter_fault") == 1 and kinds.count("meter_recovered") == 1
