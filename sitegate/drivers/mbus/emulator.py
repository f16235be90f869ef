"""An M-Bus slave emulator: several meters on one bus, answering with recorded frames.

For tests and the demo. It answers SND_NKE, REQ_UD2 (with FCB: a repeated FCB repeats the
last telegram, a toggled one moves to the next), selection by secondary address with
wildcards, and the primary-address write. When several meters answer at once it sends
what a master's UART sees on a real bus: the wired-AND of the answers plus a stray
byte, never one clean frame. With ``baud`` set it paces replies at wire speed.

    python -m sitegate.drivers.mbus.emulator --tcp 10001 --meter kamstrup_multical_601:1
    python -m sitegate.drivers.mbus.emulator --pty /dev/pts/5 --baud 2400 --demo
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import serial
import structlog

from sitegate.drivers.mbus import frames as fr
from sitegate.drivers.mbus.decode import decode_telegram

log = structlog.get_logger(__name__)

RECORDINGS = Path(__file__).resolve().parent / "recordings"


def recording(name: str) -> bytes:
    return bytes.fromhex((RECORDINGS / f"{name}.hex").read_text())


@dataclass
class EmulatedMeter:
    """One meter: its telegrams (all but the last announce more records) and addresses."""

    telegrams: list[bytes]
    primary: int
    secondary: str = ""  # 16 hex digits; from the first telegram when empty
    silent: bool = False  # a dead meter: never answers
    selected: bool = False
    _index: int = -1
    _last_fcb: bool | None = None
    requests: int = field(default=0)

    def __post_init__(self) -> None:
        if not self.secondary:
            ident = decode_telegram(self.telegrams[0]).identity
            self.secondary = ident.secondary if ident else "FFFFFFFFFFFFFFFF"

    @classmethod
    def from_recording(cls, primary: int, *names: str, ident: str | None = None
                       ) -> EmulatedMeter:
        """Meter from recorded frames; ``ident`` (8 digits) overrides the id in them, to put
        many meters of one model on a bus."""
        telegrams = [recording(n) for n in names]
        if ident is not None:
            telegrams = [with_id(t, ident) for t in telegrams]
        return cls(telegrams, primary)

    def matches(self, mask: str) -> bool:
        return all(m in ("F", s) for m, s in zip(mask, self.secondary, strict=True))

    def reset(self) -> None:
        self._index, self._last_fcb = -1, None

    def next_telegram(self, fcb: bool) -> bytes:
        if self._last_fcb is None or fcb != self._last_fcb or self._index < 0:
            self._index = (self._index + 1) % len(self.telegrams)  # round again after the last
        self._last_fcb = fcb
        return with_address(self.telegrams[self._index], self.primary)


def with_address(frame: bytes, address: int) -> bytes:
    body = bytearray(frame[4:-2])
    body[1] = address
    return frame[:4] + bytes(body) + bytes((fr.checksum(body), fr.STOP))


def with_id(frame: bytes, ident: str) -> bytes:
    body = bytearray(frame[4:-2])
    body[3:7] = bytes.fromhex(ident)[::-1]
    return frame[:4] + bytes(body) + bytes((fr.checksum(body), fr.STOP))


def collide(replies: list[bytes]) -> bytes:
    """Several slaves talking at once: current sinks add up, so a 0 bit wins (wired AND),
    and their slightly different start times leave a stray byte on the line."""
    n = max(map(len, replies))
    merged = bytearray(b"\xff" * n)
    for r in replies:
        for i, b in enumerate(r):
            merged[i] &= b
    return bytes(merged) + b"\x00"


class Bus:
    """The meters on one bus and their answers to one request (pure logic, no I/O)."""

    def __init__(self, meters: list[EmulatedMeter]) -> None:
        self.meters = meters

    def _addressed(self, a: int) -> list[EmulatedMeter]:
        if a == fr.ADDR_NETWORK:
            return [m for m in self.meters if m.selected]
        if a in (fr.ADDR_BROADCAST, fr.ADDR_BROADCAST_REPLY):
            return list(self.meters)
        return [m for m in self.meters if m.primary == a]

    def answer(self, request: bytes) -> bytes | None:
        try:
            f = fr.parse_frame(request)
        except fr.FrameError:
            return None  # a slave ignores what it cannot read
        replies = []
        for meter, reply in self._respond(f):
            meter.requests += 1
            if not meter.silent and reply is not None:
                replies.append(reply)
        if not replies or f.a == fr.ADDR_BROADCAST:  # 255: broadcast, nobody answers
            return None
        return replies[0] if len(replies) == 1 else collide(replies)

    def _respond(self, f: fr.Frame) -> list[tuple[EmulatedMeter, bytes | None]]:
        out: list[tuple[EmulatedMeter, bytes | None]] = []
        c = f.c & ~fr.FCB_BIT
        if f.kind == "short" and f.c == fr.C_SND_NKE:
            for m in self._addressed(f.a):
                m.reset()
                out.append((m, bytes((fr.ACK,))))
            if f.a == fr.ADDR_NETWORK:  # SND_NKE to 253 also ends the selection
                for m in self.meters:
                    m.selected = False
        elif f.kind == "short" and c == fr.C_REQ_UD2:
            for m in self._addressed(f.a):
                out.append((m, m.next_telegram(bool(f.c & fr.FCB_BIT))))
        elif f.kind == "long" and f.ci == fr.CI_SELECT and f.a == fr.ADDR_NETWORK:
            mask = f.data[0:4][::-1].hex() + f.data[4:6][::-1].hex() + f.data[6:8].hex()
            mask = mask.upper()
            for m in self.meters:
                m.selected = not m.silent and m.matches(mask)
                if m.selected:
                    m.reset()
                    out.append((m, bytes((fr.ACK,))))
        elif f.kind == "long" and f.ci == fr.CI_DATA_SEND:
            for m in self._addressed(f.a):
                if f.data[:2] == bytes((0x01, 0x7A)) and len(f.data) >= 3:
                    m.primary = f.data[2]
                out.append((m, bytes((fr.ACK,))))
        return out


class Emulator:
    """Serve a Bus on a TCP port or a serial device (a socat pseudo-terminal)."""

    def __init__(self, meters: list[EmulatedMeter], baud: int | None = None) -> None:
        self.bus = Bus(meters)
        self.baud = baud  # pace replies as if on an M-Bus wire at this speed
        self._server: asyncio.Server | None = None
        self._port: serial.Serial | None = None
        self._buf = bytearray()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    @property
    def meters(self) -> list[EmulatedMeter]:
        return self.bus.meters

    async def _reply_to(self, buf: bytearray) -> list[bytes]:
        """Cut complete requests out of ``buf``; the replies to send, in order."""
        out = []
        while buf:
            try:
                n = fr.frame_length(buf)
            except fr.FrameError:
                del buf[0]  # resynchronise on the next byte
                continue
            if n is None or len(buf) < n:
                break
            request = bytes(buf[:n])
            del buf[:n]
            reply = self.bus.answer(request)
            if self.baud:
                # The request's time on the wire, then the slave's turnaround (11 bit times).
                await asyncio.sleep(fr.wire_time(len(request), self.baud) + 11 / self.baud)
            if reply is not None:
                out.append(reply)
        return out

    async def _paced(self, write: Callable[[bytes], Awaitable[None]], reply: bytes) -> None:
        """Hand the reply over as a wire would: the first byte, the long-frame header,
        then the rest, each when its last bit would have arrived."""
        if not self.baud:
            await write(reply)
            return
        for chunk in (reply[:1], reply[1:4], reply[4:]):
            if chunk:
                await asyncio.sleep(fr.wire_time(len(chunk), self.baud))
                await write(chunk)

    # -- TCP ---------------------------------------------------------------------------

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._client, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        try:
            while data := await reader.read(1024):
                buf += data
                async def write(chunk: bytes) -> None:
                    writer.write(chunk)
                    await writer.drain()

                async with self._lock:
                    for reply in await self._reply_to(buf):
                        await self._paced(write, reply)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    # -- serial ------------------------------------------------------------------------

    async def start_serial(self, path: str, baud: int = 2400) -> None:
        self._port = serial.Serial(path, baudrate=baud, parity="E", timeout=0)
        asyncio.get_running_loop().add_reader(self._port.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._port is not None
        try:
            data = self._port.read(self._port.in_waiting or 1)
        except (serial.SerialException, OSError):
            return
        self._buf += data
        task = asyncio.get_running_loop().create_task(self._serve_serial())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_serial(self) -> None:
        async def write(chunk: bytes) -> None:
            if self._port is not None:
                self._port.write(chunk)

        async with self._lock:
            for reply in await self._reply_to(self._buf):
                await self._paced(write, reply)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        if self._port is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._port.fileno())
            self._port.close()
            self._port = None
        for t in list(self._tasks):
            t.cancel()


def demo_meters() -> list[EmulatedMeter]:
    """Two heat and two water meters (real recorded frames) for ``sitegate demo``."""
    return [
        EmulatedMeter.from_recording(1, "kamstrup_multical_601"),
        EmulatedMeter.from_recording(2, "landis_gyr_ultraheat_t230"),
        EmulatedMeter.from_recording(3, "itron_cyble_m-bus_v1.4_water"),
        EmulatedMeter.from_recording(4, "siemens_water"),
        EmulatedMeter.from_recording(5, "svm_f22_telegram1", "svm_f22_telegram2"),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sitegate.drivers.mbus.emulator",
                                description="M-Bus slave emulator answering recorded frames")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT")
    where.add_argument("--pty", metavar="DEV", help="serve a serial device / pseudo-terminal")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--baud", type=int, default=None, help="pace replies at this baud rate")
    p.add_argument("--meter", action="append", default=[], metavar="RECORDING:ADDR[:ID]",
                   help=f"a meter from {RECORDINGS.name}/ (repeatable)")
    p.add_argument("--demo", action="store_true", help="the demo's heat and water meters")
    p.add_argument("--silent", type=int, action="append", default=[], metavar="ADDR",
                   help="a meter at ADDR that never answers")
    args = p.parse_args(argv)
    meters = demo_meters() if args.demo else []
    for spec in args.meter:
        name, addr, *ident = spec.split(":")
        meters.append(EmulatedMeter.from_recording(int(addr), name,
                                                   ident=ident[0] if ident else None))
    for addr in args.silent:
        m = EmulatedMeter.from_recording(addr, "kamstrup_multical_601")
        m.silent = True
        meters.append(m)
    if not meters:
        p.error("no meters: give --demo or --meter")

    async def run() -> None:
        emu = Emulator(meters, baud=args.baud)
        if args.tcp is not None:
            port = await emu.start_tcp(args.host, args.tcp)
            print(f"M-Bus emulator on {args.host}:{port} with {len(meters)} meters", flush=True)
        else:
            await emu.start_serial(args.pty, args.baud or 2400)
            print(f"M-Bus emulator on {args.pty} with {len(meters)} meters", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await emu.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
