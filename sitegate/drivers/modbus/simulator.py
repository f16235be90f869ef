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
    # Installation faults a commissioning round must find: a reversed current transformer
    # (power flows backwards), a phase without voltage (1-3).
    reversed_ct: bool = False
    dead_phase: int | None = None
    serial: int = 0  # what its serial number register says (0: derived from the unit)
    written: list[tuple[int, list[int]]] = field(default_factory=list)  # (address, words)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed * 7919 + self.unit)
        extra = _identity_words(self.profile)
        measured = max((r.address + r.width for r in self.profile.registers), default=1) + 1
        # Served ranges: the measured registers, and each identification or setting word
        # (a meter answers only where it has registers; 0xFC00 is far from 0x0000).
        self.ranges = _union([(0, measured)] + [(w.address, w.address + w.width)
                                                for w in extra])
        self.size = self.ranges[-1][1]
        self.words = {"holding": [0] * self.size, "input": [0] * self.size}
        self.serial = self.serial or 70_000_000 + 1000 * self.seed + self.unit
        self._identity()
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
            if kind == DataType.BITS:
                return [SimData(0, values=[0] * self.ranges[0][1], datatype=kind)]
            return [SimData(a, values=[0] * (b - a), datatype=kind) for a, b in self.ranges]

        bits, regs = DataType.BITS, DataType.REGISTERS
        return SimDevice(self.unit, simdata=(block(bits), block(bits), block(regs), block(regs)),
                         action=self._on_access)

    def _identity(self) -> None:
        """Model code, serial number and settings where the profile says the meter has them."""
        ident, settings = self.profile.identify, self.profile.settings
        values: list[tuple[Any, int]] = []
        if ident is not None and ident.model is not None and ident.model_codes:
            values.append((ident.model, ident.model_codes[0]))
        if ident is not None and ident.serial is not None:
            values.append((ident.serial, self.serial))
        if settings is not None and settings.unit is not None:
            values.append((settings.unit, self.unit))
        if settings is not None and settings.baudrate is not None:
            values.append((settings.baudrate, settings.baudrate.codes.get("9600", 9600)))
        for word, value in values:
            order = word.word_order or self.profile.word_order
            self.words[word.function][word.address:word.address + word.width] = encode(
                Decimal(value), word.type, order, Decimal(1))

    async def _on_access(self, function_code: int, start_address: int, address: int,
                         count: int, registers: list[int], set_values: object) -> None:
        # Serve our words for the requested range: pymodbus keeps its own copy of memory.
        source = self.words["input" if function_code == 4 else "holding"]
        if isinstance(set_values, list) and function_code in (6, 16):  # a write: keep it
            source[address:address + len(set_values)] = [int(v) for v in set_values]
            self.written.append((address, [int(v) for v in set_values]))
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
            # a three-phase load: the phases within ±20 % of each other, as a healthy
            # installation shows (commissioning warns on phases far apart)
            load = rng.uniform(0.5, 16)
            amps = [Decimal(str(round(load * rng.uniform(0.8, 1.2), 2))) for _ in range(3)]
        if self.dead_phase:
            volts[self.dead_phase - 1] = amps[self.dead_phase - 1] = Decimal(0)
        sign = -1 if self.reversed_ct else 1
        watts = [sign * v * a for v, a in zip(volts, amps, strict=True)]
        total_w = sum(watts, Decimal(0))
        kwh = abs(total_w) * Decimal(str(seconds)) / Decimal(3_600_000)
        exporting = self.produces or total_w < 0
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
            elif q in (("1-0:2.8.0", "1-0:2.8.1") if exporting
                       else ("1-0:1.8.0", "1-0:1.8.1")) and seconds:
                new = self.values[q] + (kwh if reg.unit == "kWh" else kwh * 1000)
            if new is not None:
                self.set(reg, new)


def _nobody() -> SimDevice:
    """Device 0, where pymodbus sends requests for unit ids it does not know: silence, as
    on a bus where nobody has that address (else it answers a device failure, and a scan
    would find a meter at every unit id)."""

    async def absent(*_args: object) -> None:
        raise NoSuchIdException("no simulated meter at this unit id")

    regs = [SimData(0, values=[0], datatype=DataType.REGISTERS)]
    bits = [SimData(0, values=[0], datatype=DataType.BITS)]
    return SimDevice(0, simdata=(bits, bits, regs, regs), action=absent)


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _identity_words(profile: Profile) -> list[Any]:
    out: list[Any] = []
    if profile.identify is not None:
        out += [w for w in (profile.identify.model, profile.identify.serial) if w is not None]
    if profile.settings is not None:
        out += [w for w in (profile.settings.unit, profile.settings.baudrate) if w is not None]
    return out


class SimulatorServer:
    """Simulated devices behind one Modbus server (TCP, RTU-over-TCP or serial), with a
    clock that advances them: what the meter and the relay simulators share."""

    def __init__(self, served: list[SimDevice]) -> None:
        self.served = served
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    def step(self, seconds: float) -> None:
        """Advance every simulated device by ``seconds`` (the subclass knows them)."""

    async def start_tcp(self, host: str, port: int, framing: str = "tcp") -> None:
        framer = FramerType.RTU if framing == "rtu-over-tcp" else FramerType.SOCKET
        self._server = ModbusTcpServer(self.served, framer=framer, address=(host, port),
                                       ignore_missing_devices=True)
        await self._start()

    async def start_serial(self, port: str, baudrate: int = 9600, parity: str = "N",
                           stopbits: int = 1) -> None:
        self._server = ModbusSerialServer(self.served, framer=FramerType.RTU, port=port,
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
        """Advance every device each ``every`` seconds (for the demo)."""

        async def tick() -> None:
            while True:
                await asyncio.sleep(every)
                self.step(every)

        self._ticker = asyncio.create_task(tick())

    async def announce_and_run(self) -> None:
        """For the command line: the clock at 1 s, "ready" on stdout, then run until
        killed."""
        self.run_clock(1.0)
        print("ready", flush=True)
        await asyncio.Event().wait()

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


class ModbusSimulator(SimulatorServer):
    """Several simulated meters behind one Modbus server (TCP, RTU-over-TCP or serial)."""

    def __init__(self, meters: list[tuple[int, str]], seed: int = 0) -> None:
        self.meters = {
            unit: SimulatedMeter(unit, load_profile(name), seed) for unit, name in meters
        }
        self.devices = [m.device() for m in self.meters.values()]
        if 0 not in self.meters:
            self.devices.append(_nobody())
        super().__init__(self.devices)

    def step(self, seconds: float) -> None:
        for m in self.meters.values():
            m.step(seconds)


def unit_profiles(items: list[str]) -> list[tuple[int, str]]:
    """``UNIT:PROFILE`` arguments as (unit, profile) pairs."""
    return [(int(u), prof) for u, prof in (m.split(":", 1) for m in items)]


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
    p.add_argument("--reversed-ct", action="append", default=[], type=int, metavar="UNIT",
                   help="a meter whose current transformers are reversed (negative power)")
    p.add_argument("--dead-phase", action="append", default=[], metavar="UNIT:PHASE",
                   help="a meter with no voltage on phase 1, 2 or 3")
    p.add_argument("--serial-number", action="append", default=[], metavar="UNIT:NUMBER",
                   help="what a meter's serial number register says")
    args = p.parse_args()

    async def run() -> None:
        sim = ModbusSimulator(unit_profiles(args.meter))
        for unit in args.silent:
            sim.meters[unit].silent = True
        for unit in args.reversed_ct:
            sim.meters[unit].reversed_ct = True
        for spec in args.dead_phase:
            unit, phase = (int(x) for x in spec.split(":"))
            sim.meters[unit].dead_phase = phase
        for spec in args.serial_number:
            unit, number = (int(x) for x in spec.split(":"))
            sim.meters[unit].serial = number
            sim.meters[unit]._identity()
        for m in sim.meters.values():
            m.step(0.0)  # the faults show from the first read
        if args.tcp:
            await sim.start_tcp(args.host, args.tcp, args.framing)
        else:
            await sim.start_serial(args.serial, args.baud)
        await sim.announce_and_run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
