"""Serial RFID readers (RS232, or RS485 in a listen-only setup) with a line protocol: each
card is sent as its UID in ASCII, ended by CR and/or LF, optionally framed by STX (0x02) and
ETX (0x03), as most simple readers do.

Input is bounded: a line longer than ``MAX_LINE`` bytes is dropped whole (garbage on the
line, wrong baud rate), never grown without limit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import serial  # type: ignore[import-untyped]

from sitegate.drivers.rfid.keyboard import ReaderUnavailable

MAX_LINE = 64
_ENDS = b"\r\n\x03"
_STX = 0x02


class LineSplitter:
    """Bytes in, lines out (pure: tested without a port)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[str]:
        out: list[str] = []
        for b in data:
            if b in _ENDS:
                if self._buf and not self._overflow:
                    out.append(self._buf.decode("ascii", "replace"))
                self._buf.clear()
                self._overflow = False
            elif b == _STX:
                self._buf.clear()  # a frame starts: what came before was noise
                self._overflow = False
            elif len(self._buf) >= MAX_LINE:
                self._overflow = True
            else:
                self._buf.append(b)
        return out


class SerialReader:
    def __init__(self, port: str, baudrate: int = 9600) -> None:
        self.port = port
        self.baudrate = baudrate

    def describe(self) -> str:
        return f"serial {self.port}@{self.baudrate}"

    async def lines(self, on_open: Callable[[], None] | None = None) -> AsyncIterator[str]:
        """UIDs as sent; ``on_open`` is called once the port is open (pyserial drops what
        arrived before: a card presented earlier is not seen)."""
        try:
            port = serial.Serial(self.port, baudrate=self.baudrate, timeout=0.2)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ReaderUnavailable(f"{self.port}: {exc}") from exc
        if on_open is not None:
            on_open()
        splitter = LineSplitter()
        stop = threading.Event()
        try:
            while True:
                try:
                    data = await asyncio.to_thread(_read, port, stop)
                except (serial.SerialException, OSError) as exc:
                    raise ReaderUnavailable(f"{self.port}: {exc}") from exc
                for line in splitter.feed(data):
                    yield line
        finally:
            stop.set()
            port.close()


def _read(port: serial.Serial, stop: threading.Event) -> bytes:
    if stop.is_set():
        return b""
    return bytes(port.read(max(1, min(port.in_waiting, 256))))
