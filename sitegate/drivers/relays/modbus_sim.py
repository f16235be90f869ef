"""Simulated Modbus relay devices (pymodbus server): coils that switch, discrete inputs that
follow them (the contactor's auxiliary contact), and for relay meters the power and energy
registers of the profile's metering part. For the tests and the demo.

    python -m sitegate.drivers.relays.modbus_sim --tcp 5021 --device 1:io_4relay_4di \
        --meter 2:eastron_sdm630
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from sitegate.drivers.modbus.codec import encode
from sitegate.drivers.modbus.profile import load_profile
from sitegate.drivers.modbus.simulator import SimulatedMeter, SimulatorServer, unit_profiles
from sitegate.drivers.relays.profile import ENERGY, POWER, RelayProfile, load_relay_profile

SIZE = 128  # bits and registers served per table: every profile here fits


@dataclass
class SimulatedRelay:
    unit: int
    profile: RelayProfile
    coils: list[bool] = field(default_factory=lambda: [False] * SIZE)
    load_w: dict[int, Decimal] = field(default_factory=dict)  # channel -> W drawn while on
    energy_wh: Decimal = Decimal(0)
    stuck: set[int] = field(default_factory=set)  # channels whose contactor does not follow
    silent: bool = False
    writes: int = 0

    def is_on(self, channel: int) -> bool:
        """The contactor's real state (what the feedback input reads)."""
        ch = self.profile.channel(channel)
        return self.coils[ch.coil] and channel not in self.stuck

    def power_w(self) -> Decimal:
        return sum((w for c, w in self.load_w.items() if self.is_on(c)), Decimal(0))

    def advance(self, seconds: float) -> None:
        self.energy_wh += self.power_w() * Decimal(str(seconds)) / 3600

    def device(self) -> SimDevice:
        bits, regs = DataType.BITS, DataType.REGISTERS
        blocks = tuple([SimData(0, values=[0] * SIZE, datatype=kind)]
                       for kind in (bits, bits, regs, regs))
        # Bit addressing: coil n is bit n (pymodbus packs 16 bits a register).
        return SimDevice(self.unit, simdata=blocks, use_bit_addressing=True,  # type: ignore[arg-type]
                         action=self._on_access)

    def _inputs(self) -> list[bool]:
        out = [False] * SIZE
        for ch in self.profile.channels:
            if ch.feedback is not None:
                out[ch.feedback] = self.is_on(ch.channel)
        return out

    def _registers(self) -> list[int]:
        words = [0] * SIZE
        meter = self.profile.metering
        if meter is None:
            return words
        for reg in meter.registers:
            if reg.quantity == ENERGY:
                value = self.energy_wh / 1000 if reg.unit == "kWh" else self.energy_wh
            elif reg.quantity in POWER:
                value = self.power_w() / 1000 if reg.unit == "kW" else self.power_w()
            else:
                continue
            order = reg.word_order or meter.word_order
            words[reg.address:reg.address + reg.width] = encode(value, reg.type, order,
                                                                reg.scale)
        return words

    async def _on_access(self, function_code: int, start_address: int, address: int,
                         count: int, current: list[Any], set_values: Any) -> ExcCodes | None:
        if self.silent:
            from pymodbus.exceptions import NoSuchIdException

            raise NoSuchIdException(f"simulated silent relay {self.unit}")
        if function_code in (5, 15) and set_values is not None:
            for i, v in enumerate(set_values):
                self.coils[address + i] = bool(v)
            self.writes += 1
            return None
        if function_code in (1, 2):  # the whole bit table, packed as pymodbus keeps it
            bits = self.coils if function_code == 1 else self._inputs()
            current[:len(bits) // 16] = SimUtils.bitsToRegisters(bits)
            return None
        words = self._registers()
        for i in range(count):
            if address + i < len(words):
                current[address - start_address + i] = words[address + i]
        return None


class RelaySimulator(SimulatorServer):
    """Several simulated relay devices behind one Modbus TCP server."""

    def __init__(self, devices: list[tuple[int, str]],
                 meters: list[tuple[int, str]] | None = None) -> None:
        self.devices = {u: SimulatedRelay(u, load_relay_profile(p)) for u, p in devices}
        # Meters on the same wire: the relays share the bus with them, as in a building.
        self.meters = {u: SimulatedMeter(u, load_profile(p)) for u, p in meters or []}
        super().__init__([d.device() for d in (*self.devices.values(), *self.meters.values())])

    def step(self, seconds: float) -> None:
        for d in self.devices.values():
            d.advance(seconds)
        for m in self.meters.values():
            m.step(seconds)


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description="simulated Modbus relay devices")
    p.add_argument("--tcp", type=int, required=True, metavar="PORT")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--framing", choices=["tcp", "rtu-over-tcp"], default="tcp")
    p.add_argument("--device", action="append", required=True, metavar="UNIT:PROFILE")
    p.add_argument("--meter", action="append", default=[], metavar="UNIT:PROFILE",
                   help="a meter (Modbus meter profile) on the same wire")
    p.add_argument("--load", type=Decimal, default=Decimal(2000), help="W per channel while on")
    args = p.parse_args()

    async def run() -> None:
        sim = RelaySimulator(unit_profiles(args.device), unit_profiles(args.meter))
        for d in sim.devices.values():
            d.load_w = {c.channel: args.load for c in d.profile.channels}
        await sim.start_tcp(args.host, args.tcp, args.framing)
        await sim.announce_and_run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
