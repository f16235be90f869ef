"""Every profile, served by a pymodbus server, decodes to exactly the values served:
Modbus TCP, RTU over TCP, and RTU over a serial line (socat pseudo-terminals)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from sitegate.drivers.base import LinkSettings, MeterRef
from sitegate.drivers.modbus.client import ModbusBusClient
from sitegate.drivers.modbus.planner import plan
from sitegate.drivers.modbus.profile import load_profile, profile_names
from sitegate.drivers.modbus.simulator import ModbusSimulator

PROFILES = profile_names()


async def _read_all(sim: ModbusSimulator, link: LinkSettings) -> None:
    client = ModbusBusClient(link)
    try:
        for unit, meter in sim.meters.items():
            meter.step(13.0)  # values move between reads: nothing stale may pass
            res = await client.read(MeterRef(f"m{unit}", meter.profile.name, unit=unit),
                                    datetime.now(UTC))
            got = {r.quantity: r.value for r in res.readings}
            assert got == meter.values, meter.profile.name
            assert res.requests == len(plan(meter.profile))
            assert {r.unit for r in res.readings} <= {reg.unit for reg in meter.profile.registers}
    finally:
        await client.close()


@pytest.mark.parametrize("framing", ["tcp", "rtu-over-tcp"])
def test_every_profile_over_tcp(framing: str, free_port: int) -> None:
    async def go() -> None:
        sim = ModbusSimulator([(i + 1, name) for i, name in enumerate(PROFILES)], seed=3)
        port = free_port
        await sim.start_tcp("127.0.0.1", port, framing)
        try:
            await _read_all(sim, LinkSettings(host="127.0.0.1", port=port, framing=framing,
                                              timeout=2.0))
        finally:
            await sim.stop()

    asyncio.run(go())


def test_every_profile_over_serial_rtu(pty_pair: tuple[str, str]) -> None:
    server_end, client_end = pty_pair

    async def go() -> None:
        sim = ModbusSimulator([(i + 1, name) for i, name in enumerate(PROFILES)], seed=5)
        await sim.start_serial(server_end, baudrate=19200)
        try:
            await _read_all(sim, LinkSettings(serial_port=client_end, baudrate=19200,
                                              timeout=2.0))
        finally:
            await sim.stop()

    asyncio.run(go())


def test_values_change_and_energy_advances() -> None:
    """The simulator is not frozen: a decoder that returned stale values would be caught."""
    sim = ModbusSimulator([(1, "eastron_sdm630")])
    meter = sim.meters[1]
    before = dict(meter.values)
    meter.step(3600)
    assert meter.values["1-0:1.8.0"] > before["1-0:1.8.0"]
    assert load_profile("eastron_sdm630").registers
