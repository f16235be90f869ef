"""The M-Bus link: one serial port (pyserial, 8E1) or one transparent TCP converter.

Half duplex, one request at a time. ``MbusLink`` sends a request and waits for one reply
frame with the standard's timing; bytes that do not make exactly one valid frame are a
``Garbled`` reply, which on a bus with several meters answering at once is a collision.
"""

from __future__ import annotations

import asyncio
import contextlib
import termios
from dataclasses import dataclass

import serial
import structlog

from sitegate.drivers.base import BusError, LinkSettings
from sitegate.drivers.mbus import frames as fr

log = structlog.get_logger(__name__)


class Garbled(Exception):
    """Bytes arrived but not one valid frame (collision, noise, wrong baud rate)."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True, slots=True)
class Timing:
    reply_timeout: float  # seconds until the first byte of a reply
    char_slack: float  # extra time allowed for the rest of a frame beyond its wire time
    settle: float  # quiet time after a frame that proves no second answer follows
    baud: int | None = None  # None on TCP: no wire-time arithmetic

    @classmethod
    def standard(cls, baud: int, reply_timeout: float | None = None) -> Timing:
        """EN 13757-2 timing for ``baud``: reply within 330 bit times + 50 ms; after a
        reply at least 11 bit times of idle. We listen 3 characters (33 bit times) for a
        second answer before taking a reply as the only one."""
        return cls(reply_timeout=reply_timeout or fr.reply_timeout(baud), char_slack=0.05,
                   settle=max(33 / baud, 0.004), baud=baud)

    @classmethod
    def for_link(cls, link: LinkSettings) -> Timing:
        if link.serial_port:
            return cls.standard(link.baudrate, max(fr.reply_timeout(link.baudrate),
                                                   link.timeout))
        # A converter adds network latency and its own buffering: the configured timeout.
        return cls(reply_timeout=link.timeout, char_slack=link.timeout, settle=0.02)

    def frame_time(self, n_bytes: int) -> float:
        return (fr.wire_time(n_bytes, self.baud) if self.baud else 0.0) + self.char_slack


class _Transport:
    """Bytes in and out, with an input buffer filled from the event loop."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self._event = asyncio.Event()
        self.broken: str | None = None

    def _feed(self, data: bytes) -> None:
        self.buf += data
        self._event.set()

    def _fail(self, why: str) -> None:
        self.broken = why
        self._event.set()

    async def wait_data(self, timeout: float) -> bool:
        """Wait until the buffer holds more than now, or timeout. False on timeout."""
        if self.broken:
            raise BusError(self.broken)
        self._event.clear()
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        if self.broken:
            raise BusError(self.broken)
        return True

    async def open(self) -> None: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class SerialTransport(_Transport):
    def __init__(self, link: LinkSettings) -> None:
        super().__init__()
        self.link = link
        self._port: serial.Serial | None = None

    async def open(self) -> None:
        link = self.link
        try:
            self._port = serial.Serial(link.serial_port, baudrate=link.baudrate,
                                       parity=link.parity, stopbits=link.stopbits,
                                       bytesize=link.bytesize, timeout=0, write_timeout=5)
        except (serial.SerialException, OSError, ValueError, termios.error) as exc:
            raise BusError(f"cannot open {link.describe()}: {exc}") from exc
        self.broken = None
        asyncio.get_running_loop().add_reader(self._port.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        assert self._port is not None
        try:
            data = self._port.read(self._port.in_waiting or 1)
        except (serial.SerialException, OSError) as exc:
            asyncio.get_running_loop().remove_reader(self._port.fileno())
            self._fail(f"{self.link.describe()}: {exc}")
            return
        if data:
            self._feed(data)

    async def write(self, data: bytes) -> None:
        if self._port is None or self.broken:
            raise BusError(self.broken or f"{self.link.describe()} is not open")
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise BusError(f"{self.link.describe()}: {exc}") from exc

    async def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._port.fileno())
            self._port.close()
            self._port = None


class TcpTransport(_Transport):
    def __init__(self, link: LinkSettings) -> None:
        super().__init__()
        self.link = link
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None

    async def open(self) -> None:
        try:
            reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.link.host, self.link.port or 10001), 5)
        except (OSError, TimeoutError) as exc:
            raise BusError(f"cannot connect to {self.link.describe()}: {exc}") from exc
        self.broken = None
        self._pump = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(4096):
                self._feed(data)
            self._fail(f"{self.link.describe()}: connection closed by the converter")
        except OSError as exc:
            self._fail(f"{self.link.describe()}: {exc}")

    async def write(self, data: bytes) -> None:
        if self._writer is None or self.broken:
            raise BusError(self.broken or f"{self.link.describe()} is not connected")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise BusError(f"{self.link.describe()}: {exc}") from exc

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._writer = self._pump = None


class MbusLink:
    """Request/reply on one bus with the standard's timing."""

    def __init__(self, link: LinkSettings, timing: Timing | None = None) -> None:
        self.settings = link
        self.timing = timing or Timing.for_link(link)
        self.transport: _Transport = (SerialTransport(link) if link.serial_port
                                      else TcpTransport(link))
        self.is_open = False
        self.bytes_sent = 0
        self.bytes_received = 0
        self.requests = 0
        self.silences = 0  # requests that expected a reply and got none

    async def open(self) -> None:
        if not self.is_open:
            await self.transport.open()
            self.is_open = True

    async def close(self) -> None:
        await self.transport.close()
        self.is_open = False

    async def transact(self, request: bytes, reply: bool = True) -> fr.Frame | None:
        """Send ``request``; return the one reply frame, None on silence, raise Garbled."""
        await self.open()
        t = self.transport
        if t.buf:  # late bytes of an earlier exchange must not pass as this reply
            log.debug("mbus_stale_bytes", raw=bytes(t.buf).hex())
            t.buf.clear()
        if self.timing.baud:  # EN 13757-2: bus idle before a new request
            await asyncio.sleep(fr.idle_gap(self.timing.baud))
        await t.write(request)
        self.requests += 1
        self.bytes_sent += len(request)
        if not reply:
            return None
        # The request's own wire time counts before the reply can start.
        wait = self.timing.reply_timeout + (
            fr.wire_time(len(request), self.timing.baud) if self.timing.baud else 0)
        if not t.buf and not await t.wait_data(wait):
            self.silences += 1
            return None
        return await self._one_frame()

    async def _one_frame(self) -> fr.Frame:
        t = self.transport
        while True:
            try:
                n = fr.frame_length(t.buf)
            except fr.FrameError as exc:
                raise Garbled(str(exc), await self._drain()) from exc
            if n is not None and len(t.buf) >= n:
                break
            missing = (n or 6) - len(t.buf)
            if not await t.wait_data(self.timing.frame_time(missing)):
                raise Garbled(f"reply stopped after {len(t.buf)} bytes", await self._drain())
        raw = bytes(t.buf[:n])
        del t.buf[:n]
        # A second answer right behind the first means two meters talked at once.
        if t.buf or await t.wait_data(self.timing.settle):
            raise Garbled("more than one answer", raw + await self._drain())
        self.bytes_received += len(raw)
        try:
            return fr.parse_frame(raw)
        except fr.FrameError as exc:
            raise Garbled(str(exc), raw) from exc

    async def _drain(self) -> bytes:
        """Collect what is still coming until the line is quiet, and return it all."""
        t = self.transport
        while await t.wait_data(self.timing.settle + self.timing.char_slack):
            pass
        raw = bytes(t.buf)
        t.buf.clear()
        self.bytes_received += len(raw)
        return raw
