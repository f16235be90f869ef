"""What every bus driver offers the gateway's scheduler.

The scheduler owns timing, backoff and the buffer; a driver owns one bus link and turns
"read meter X now" into readings. Drivers know nothing of the site configuration: the
gateway hands them a ``LinkSettings`` and ``MeterRef`` built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sitegate.sync.protocol import Reading


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """One bus: a serial port, or a TCP converter. Exactly one of serial_port / host."""

    serial_port: str | None = None
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8
    host: str | None = None
    port: int | None = None
    framing: str = "tcp"  # Modbus on TCP: "tcp" (MBAP) or "rtu-over-tcp"
    timeout: float = 1.0  # seconds for one reply
    retries: int = 1  # retries of one request

    def describe(self) -> str:
        if self.serial_port:
            return f"{self.serial_port}@{self.baudrate}/{self.bytesize}{self.parity}{self.stopbits}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class MeterRef:
    """One meter on a bus, as the driver needs it."""

    meter_id: str
    profile: str
    unit: int | None = None  # Modbus unit id
    address: int | None = None  # M-Bus primary address
    secondary: str | None = None  # M-Bus secondary address (8 or 16 hex digits)


@dataclass(slots=True)
class ReadResult:
    readings: list[Reading]
    # Events for the buffer's events stream (dicts with at least "kind", "severity",
    # "message"): a partly decoded frame, a raw undecodable frame kept for analysis, ...
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0  # requests sent on the bus for this read


class BusError(Exception):
    """The bus link itself failed (port gone, converter unreachable)."""


class NoResponse(Exception):
    """The meter did not answer within timeout and retries: it counts toward backoff."""


class DeviceError(Exception):
    """The meter answered, but with an error (Modbus exception, bad CRC, garbled frame)."""

    def __init__(self, message: str, kind: str = "device_error") -> None:
        super().__init__(message)
        self.kind = kind  # e.g. "modbus_exception", "crc_error", "garbled"


class BusClient(Protocol):
    """One per bus; the scheduler calls ``read`` strictly sequentially."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def read(self, meter: MeterRef, scheduled: datetime) -> ReadResult:
        """Read every quantity of ``meter``'s profile. Raises NoResponse, DeviceError or
        BusError; readings carry ``ts=scheduled`` and ``read_at`` = actual read time."""
        ...
