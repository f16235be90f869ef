"""Requests per poll cycle for each device profile: the block planner vs one request per value.

Counted on the wire: each profile is served by a pymodbus server and read once through our
client, with a packet trace counting the requests actually sent.

    .venv/bin/python bench/bench_modbus_requests.py
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from benchkit import free_port

from sitegate.drivers.base import LinkSettings, MeterRef
from sitegate.drivers.modbus.client import ModbusBusClient
from sitegate.drivers.modbus.profile import load_profile, profile_names
from sitegate.drivers.modbus.simulator import ModbusSimulator


async def main() -> None:
    names = profile_names()
    sim = ModbusSimulator([(i + 1, n) for i, n in enumerate(names)])
    port = free_port()
    await sim.start_tcp("127.0.0.1", port)
    client = ModbusBusClient(LinkSettings(host="127.0.0.1", port=port, timeout=2))
    sent = 0
    original = client._trace

    def count(sending: bool, data: bytes) -> bytes:
        nonlocal sent
        sent += sending
        return original(sending, data)

    client._client.ctx.trace_packet = count  # count every frame put on the wire
    print(f"{'profile':<24}{'quantities':>11}{'one per value':>15}{'ours':>6}{'saved':>8}")
    for i, name in enumerate(names):
        sent = 0
        res = await client.read(MeterRef(name, name, unit=i + 1), datetime.now(UTC))
        n = len(load_profile(name).registers)
        assert len(res.readings) == n
        print(f"{name:<24}{n:>11}{n:>15}{sent:>6}{1 - sent / n:>8.0%}")
    await client.close()
    await sim.stop()


if __name__ == "__main__":
    asyncio.run(main())
