"""Simulated Modbus meters: pymodbus servers that serve a profile's registers.

Used by the tests (the values decoded must equal the values served) and by ``sitegate
demo``. Energy counters advance with the simulated power, so a demo shows plausible data.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pymodbus import FramerType
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from sitegate.drivers.modbus.codec import decode, encode
from sitegate.drivers.modbus.profile import Profile, Register, load_profile

_PHASE_VOLTAGE = ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0")
_PHASE_CURRENT = ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0")
_PHASE_POWER = ("1-0:21.7.0", "1-0:41.7.0", "1-0:61.7.0")


@dataclass
class SimulatedMeter:
    unit: int
    profile: Profile
    seed: int = 0
    values: dict[str, Decimal] = field(default_factory=dict)
    words: dict[str, list[int]] = field(default_factory=dict)  # "holding"/"input" -> registers
    silent: bool = False  # a dead meter: the server gets no answer from it
    # Where the phase currents (A) come from at each step instead of random values: the
    # demo's main meter sees the building's base load plus what its chargers draw.
    currents: Callable[[], Sequence[Decimal]] | None = None
    produces: bool = False  # a PV inverter's meter: energy goes to the export register

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed * 7919 + self.unit)
        self.size = max((r.address + r.width for r in self.profile.registers), default=1) + 1
        self.words = {"holding": [0] * self.size, "input": [0] * self.size}
        base = Decimal(1000 + 37 * self.unit + self.seed)
        for reg in self.profile.registers:
            q = reg.quantity
            if ":1.8." in q or ":3.8." in q:
                start = base
            elif ":2.8." in q or ":4.8." in q:
                start = base / 10
            else:
                start = Decimal(0)
            self.set(reg, start)
        self.step(0.0)

    def device(self) -> SimDevice:
        def block(kind: DataType) -> list[SimData]:
            # One value per register, count=1: pymodbus 3.16 multiplies values by count twice,
            # so count=size costs size**2 memory (a MemoryError at ABB/Janitza addresses).
            return [SimData(0, values=[0] * self.size, datatype=kind)]

        bits, regs = DataType.BITS, DataType.REGISTERS
        return SimDevice(self.unit, simdata=(block(bits), block(bits), block(regs), block(regs)),
                         action=self._on_access)

    async def _on_access(self, function_code: int, start_address: int, address: int,
                         count: int, registers: list[int], set_values: object) -> None:
        # Serve our words for the requested range: pymodbus keeps its own copy of memory.
        source = self.words["holding" if function_code == 3 else "input"]
        for i in range(count):
            registers[address - start_address + i] = source[address + i]
        if self.silent:  # the server then sends nothing: the client times out, as on a bus
            raise NoSuchIdException(f"simulated silent meter {self.unit}")

    def set(self, reg: Register, value: Decimal) -> None:
        """Store ``value`` in the registers; remembers exactly what a reader must decode."""
        order = self.profile.word_order_of(reg)
        words = encode(value, reg.type, order, reg.scale)
        self.words[self.profile.function_of(reg)][reg.address:reg.address + reg.width] = words
        self.values[reg.quantity] = decode(words, reg.type, order, reg.scale)

    def step(self, seconds: float) -> None:
        """Advance the simulation: new instantaneous values, energy integrated over time."""
        rng = self._rng
        volts = [Decimal(str(round(230 + rng.uniform(-3, 3), 1))) for _ in range(3)]
        if self.currents is not None:
            amps = [Decimal(a).quantize(Decimal("0.01")) for a in self.currents()]
        else:
            amps = [Decimal(str(round(rng.uniform(0.5, 16), 2))) for _ in range(3)]
        watts = [v * a for v, a in zip(volts, amps, strict=True)]
        total_w = sum(watts, Decimal(0))
        kwh = total_w * Decimal(str(seconds)) / Decimal(3_600_000)
        for reg in self.profile.registers:
            q = reg.quantity
            kw = reg.unit.startswith("k")
            new: Decimal | None = None
            if q in _PHASE_VOLTAGE:
                new = volts[_PHASE_VOLTAGE.index(q)]
            elif q in _PHASE_CURRENT:
                new = amps[_PHASE_CURRENT.index(q)]
            elif q in _PHASE_POWER:
                new = watts[_PHASE_POWER.index(q)] / (1000 if kw else 1)
            elif q in ("1-0:16.7.0", "1-0:1.7.0"):
                new = total_w / (1000 if kw else 1)
            elif q == "1-0:14.7.0":
                new = Decimal("50.0")
            elif q in (("1-0:2.8.0", "1-0:2.8.1") if self.produces
                       else ("1-0:1.8.0", "1-0:1.8.1")) and seconds:
                new = self.values[q] + (kwh if reg.unit == "kWh" else kwh * 1000)
            if new is not None:
                self.set(reg, new)


class ModbusSimulator:
    """Several simulated meters behind one Modbus server (TCP, RTU-over-TCP or serial)."""

    def __init__(self, meters: list[tuple[int, str]], seed: int = 0) -> None:
        self.meters = {
            unit: SimulatedMeter(unit, load_profile(name), seed) for unit, name in meters
        }
        self.devices = [m.device() for m in self.meters.values()]
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    async def start_tcp(self, host: str, port: int, framing: str = "tcp") -> None:
        framer = FramerType.RTU if framing == "rtu-over-tcp" else FramerType.SOCKET
        self._server = ModbusTcpServer(self.devices, framer=framer, address=(host, port),
                                       ignore_missing_devices=True)
        await self._start()

    async def start_serial(self, port: str, baudrate: int = 9600, parity: str = "N",
                           stopbits: int = 1) -> None:
        self._server = ModbusSerialServer(self.devices, framer=FramerType.RTU, port=port,
                                          baudrate=baudrate, parity=parity, stopbits=stopbits,
                                          ignore_missing_devices=True)
        await self._start()

    async def _start(self) -> None:
        self._task = asyncio.create_task(self._server.serve_forever())
        for _ in range(100):  # serve_forever returns control before the port is open
            if self._server.transport is not None:  # pragma: no branch
                break
            await asyncio.sleep(0.02)

    def run_clock(self, every: float = 1.0) -> None:
        """Advance every meter each ``every`` seconds (for the demo)."""

        async def tick() -> None:
            while True:
                await asyncio.sleep(every)
                for m in self.meters.values():
                    m.step(every)

        self._ticker = asyncio.create_task(tick())

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        if self._server is not None:
            await self._server.shutdown()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass


def main() -> None:
    """``python -m sitegate.drivers.modbus.simulator --tcp 5020 --meter 1:eastron_sdm630``"""
    import argparse

    p = argparse.ArgumentParser(description="simulated Modbus meters")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", type=int, metavar="PORT")
    where.add_argument("--serial", metavar="DEV")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--framing", choices=["tcp", "rtu-over-tcp"], default="tcp")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--meter", action="append", required=True, metavar="UNIT:PROFILE")
    p.add_argument("--silent", action="append", default=[], type=int, metavar="UNIT",
                   help="a meter that never answers")
    args = p.parse_args()

    async def run() -> None:
        meters = [(int(u), prof) for u, prof in (m.split(":", 1) for m in args.meter)]
        sim = ModbusSimulator(meters)
        for unit in args.silent:
            sim.meters[unit].silent = True
        if args.tcp:
            await sim.start_tcp(args.host, args.tcp, args.framing)
        else:
            await sim.start_serial(args.serial, args.baud)
        sim.run_clock(1.0)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
