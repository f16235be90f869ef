"""Modbus bus client on pymodbus: RTU over serial, RTU over TCP, and Modbus TCP.

One instance per bus; the gateway's bus task calls ``read`` strictly sequentially.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from sitegate.drivers.base import (
    BusError,
    DeviceError,
    LinkSettings,
    MeterRef,
    NoResponse,
    ReadResult,
)
from sitegate.drivers.modbus.codec import DecodeError, decode
from sitegate.drivers.modbus.planner import Block, plan
from sitegate.drivers.modbus.profile import Profile, load_profile
from sitegate.sync.protocol import Reading

log = structlog.get_logger(__name__)


def make_pymodbus_client(link: LinkSettings, trace_packet=None):  # type: ignore[no-untyped-def]
    common = {"timeout": link.timeout, "retries": link.retries, "trace_packet": trace_packet,
              "reconnect_delay": 0.5, "reconnect_delay_max": 30}
    if link.serial_port:
        return AsyncModbusSerialClient(
            link.serial_port, framer=FramerType.RTU, baudrate=link.baudrate,
            parity=link.parity, stopbits=link.stopbits, bytesize=link.bytesize, **common,
        )
    framer = FramerType.RTU if link.framing == "rtu-over-tcp" else FramerType.SOCKET
    return AsyncModbusTcpClient(link.host or "", port=link.port or 502, framer=framer, **common)


class ModbusBusClient:
    def __init__(self, link: LinkSettings) -> None:
        self.link = link
        self._rx_bytes = 0  # bytes received during the current request: tells garbled from silent
        self._client = make_pymodbus_client(link, trace_packet=self._trace)
        # A silent meter must not make pymodbus drop the link for the other meters on the bus.
        self._client.set_max_no_responses(1_000_000)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._rx_bytes += len(data)
        return data

    async def connect(self) -> None:
        if self._client.connected:
            return
        ok = await self._client.connect()
        if not ok:
            raise BusError(f"cannot open {self.link.describe()}")

    async def close(self) -> None:
        self._client.close()

    async def read_block(self, unit: int, block: Block) -> list[int]:
        fn = (
            self._client.read_holding_registers
            if block.function == "holding"
            else self._client.read_input_registers
        )
        what = f"{block.function} {block.start}+{block.count}"
        response = await self._request(
            unit, what, lambda: fn(block.start, count=block.count, device_id=unit))
        words = list(response.registers)
        if len(words) < block.count:
            raise DeviceError(f"unit {unit}: short reply ({len(words)} of {block.count})",
                              kind="garbled")
        return words

    async def write_registers(self, unit: int, address: int, words: list[int]) -> None:
        """Write holding registers (FC16): a meter's settings (unit id, baud rate)."""
        await self._request(unit, f"write {address}+{len(words)}",
                            lambda: self._client.write_registers(address, words,
                                                                 device_id=unit))

    async def write_coil(self, unit: int, address: int, on: bool) -> None:
        """Switch one coil (FC05): a relay of an I/O module or a relay meter."""
        await self._request(unit, f"write coil {address}",
                            lambda: self._client.write_coil(address, on, device_id=unit))

    async def read_bits(self, unit: int, kind: str, address: int, count: int = 1) -> list[bool]:
        """Coils (FC01) or discrete inputs (FC02): a relay's state read back."""
        fn = (self._client.read_coils if kind == "coil"
              else self._client.read_discrete_inputs)
        response = await self._request(unit, f"{kind} {address}+{count}",
                                       lambda: fn(address, count=count, device_id=unit))
        bits = list(response.bits)
        if len(bits) < count:
            raise DeviceError(f"unit {unit}: short reply ({len(bits)} of {count} bits)",
                              kind="garbled")
        return bits[:count]

    async def _request(self, unit: int, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """One request on the bus; its failure as NoResponse, DeviceError or BusError."""
        await self.connect()
        self._rx_bytes = 0
        try:
            response = await call()
        except ModbusIOException as exc:
            if self._rx_bytes:
                raise DeviceError(
                    f"unit {unit}: reply garbled ({self._rx_bytes} bytes, bad CRC or framing; "
                    "check baud rate, parity and wiring)", kind="crc_error",
                ) from exc
            raise NoResponse(f"unit {unit}: no response to {what}") from exc
        except ConnectionException as exc:
            raise BusError(f"{self.link.describe()}: {exc}") from exc
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise DeviceError(f"unit {unit}: Modbus exception {code} for {what}",
                              kind="modbus_exception")
        return response

    async def read(self, meter: MeterRef, scheduled: datetime) -> ReadResult:
        if meter.unit is None:
            raise ValueError(f"meter {meter.meter_id} has no Modbus unit id")
        profile = load_profile(meter.profile)
        return await read_profile(self, meter, profile, scheduled)


async def read_profile(
    client: ModbusBusClient, meter: MeterRef, profile: Profile, scheduled: datetime,
    blocks: Sequence[Block] | None = None,
) -> ReadResult:
    """Read all blocks of ``profile``; a block that fails after others succeeded yields a
    partial result with an event, the first failure with nothing read raises."""
    assert meter.unit is not None
    result = ReadResult(readings=[])
    delay = profile.limits.inter_frame_delay_ms / 1000
    failures: list[str] = []
    for i, block in enumerate(blocks if blocks is not None else plan(profile)):
        if i and delay:
            await asyncio.sleep(delay)
        result.requests += 1
        try:
            words = await client.read_block(meter.unit, block)
        except (NoResponse, DeviceError) as exc:
            if not result.readings and i == 0:
                raise
            failures.append(str(exc))
            continue
        read_at = datetime.now(UTC)
        for reg in block.registers:
            offset = reg.address - block.start
            chunk = words[offset:offset + reg.width]
            try:
                value = decode(chunk, reg.type, profile.word_order_of(reg), reg.scale)
                quality, flags = "good", ()
            except DecodeError as exc:
                # NaN/inf from a float register: keep the fact, not a number.
                result.events.append({"kind": "decode_error", "severity": "warning",
                                      "meter_id": meter.meter_id, "quantity": reg.quantity,
                                      "message": str(exc), "words": chunk})
                continue
            result.readings.append(Reading(meter.meter_id, scheduled, reg.quantity, value,
                                           reg.unit, quality, read_at, flags))
    if failures:
        result.events.append({"kind": "partial_read", "severity": "warning",
                              "meter_id": meter.meter_id, "message": "; ".join(failures)})
    return result

