"""Relays on a Modbus bus: I/O modules and relay meters, driven by their profile.

The device shares its bus with the meters, and RS485 is half duplex: every exchange runs
under the bus task's lock, between two meter reads, never interleaved with them.
``access()`` returns the bus's current client and lock (the bus task may be replaced by a
configuration change; the relay follows it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from sitegate.drivers.base import MeterRef
from sitegate.drivers.modbus.client import ModbusBusClient, read_profile
from sitegate.drivers.relays.base import RelayStatus
from sitegate.drivers.relays.profile import ENERGY, POWER, RelayProfile

BusAccess = Callable[[], tuple[ModbusBusClient, asyncio.Lock]]


class ModbusRelay:
    def __init__(self, device_id: str, access: BusAccess, unit: int,
                 profile: RelayProfile) -> None:
        self.device_id = device_id
        self.access = access
        self.unit = unit
        self.profile = profile
        self._meter = profile.meter_profile()

    def describe(self) -> str:
        return f"modbus unit {self.unit} ({self.profile.name})"

    async def set(self, channel: int, on: bool) -> None:
        ch = self.profile.channel(channel)
        client, lock = self.access()
        async with lock:
            await client.write_coil(self.unit, ch.coil, on)

    async def status(self, channel: int) -> RelayStatus:
        ch = self.profile.channel(channel)
        client, lock = self.access()
        async with lock:
            if ch.feedback is not None:
                on = (await client.read_bits(self.unit, "discrete", ch.feedback))[0]
            else:
                on = (await client.read_bits(self.unit, "coil", ch.coil))[0]
            if self._meter is None:
                return RelayStatus(on=on)
            ref = MeterRef(meter_id=self.device_id, profile=self.profile.name, unit=self.unit)
            result = await read_profile(client, ref, self._meter, datetime.now(UTC))
        values = {r.quantity: (r.value, r.unit) for r in result.readings}
        return RelayStatus(on=on, power_w=_in(values, POWER, "W"),
                           energy_wh=_in(values, (ENERGY,), "Wh"))

    async def close(self) -> None:
        pass  # the bus task owns the link


def _in(values: dict[str, tuple[Decimal, str]], quantities: tuple[str, ...],
        base: str) -> Decimal | None:
    """The first of ``quantities`` read, in W or Wh (kW/kWh registers scaled)."""
    for q in quantities:
        if q in values:
            value, unit = values[q]
            value = value * 1000 if unit == "k" + base else value
            return Decimal(f"{value:f}")  # 3000, not 3E+3, in session reports
    return None
