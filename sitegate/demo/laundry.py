"""The demo's second washing machine, without OCPP: an RFID reader on a serial line (a
pseudo-terminal the demo types badges into) and a Shelly relay with metering (the RPC
simulator, authentication on). A tenant presents a badge, the machine runs its programme,
its power drops to standby and the gateway's point ends the session by itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from decimal import Decimal

from sitegate.drivers.relays.shelly_sim import ShellySimulator

POINT_ID = "WASH2"
PASSWORD = "demo-shelly"
PROGRAMME_W = Decimal(2000)  # heating the water
STANDBY_W = Decimal(2)  # programme over: below the point's stop_below_w


class LaundryRoom:
    def __init__(self, badge: str, programme: float, pause: float) -> None:
        self.badge = badge
        self.programme = programme  # seconds the machine draws PROGRAMME_W
        self.pause = pause  # seconds between two washes
        self.shelly = ShellySimulator(password=PASSWORD, device_id="shellypro1pm-demo0002")
        self._master, self._slave = os.openpty()  # the reader's serial line
        self.reader_path = os.ttyname(self._slave)
        self.port = 0
        self.washes = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.port = await self.shelly.start()
        self.shelly.run_clock(0.5)
        self._task = asyncio.create_task(self._washes())

    def present(self) -> None:
        os.write(self._master, f"{self.badge}\r\n".encode())

    async def _until(self, on: bool, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.shelly.switches[0].on != on:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def _washes(self) -> None:
        sw = self.shelly.switches[0]
        while True:
            await asyncio.sleep(self.pause)
            sw.load_w = STANDBY_W
            self.present()
            if not await self._until(True, 10):
                continue  # the gateway refused or did not answer: try at the next wash
            sw.load_w = PROGRAMME_W
            await asyncio.sleep(self.programme)
            sw.load_w = STANDBY_W  # the point sees the power drop and ends the session
            if await self._until(False, 60):
                self.washes += 1

    async def stop(self) -> None:
        """A wash still running is ended by presenting the badge again."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.shelly.switches[0].on:
            await asyncio.sleep(2.5)  # past the reader's debounce
            self.present()
            await self._until(False, 5)

    async def close(self) -> None:
        await self.shelly.stop()
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def relays_config(room: LaundryRoom, interval: int) -> str:
    """The site file's [relays] part for it (as an installer would write it)."""
    return (
        f'[[relays.devices]]\nid = "shelly-wash-2"\ntype = "shelly"\nhost = "127.0.0.1"\n'
        f'port = {room.port}\npassword = "{PASSWORD}"\ntimeout = 2\n'
        f'[[relays.readers]]\nid = "reader-wash-2"\ntype = "serial"\n'
        f'device = "{room.reader_path}"\n'
        f'[[relays.points]]\nid = "{POINT_ID}"\nkind = "laundry"\nreader = "reader-wash-2"\n'
        f'device = "shelly-wash-2"\nchannel = 0\nstop_below_w = 10\n'
        f'stop_after = {float(max(2, interval))}\npoll_interval = 0.5\n'
        f'billing_point = "Laundry room"\n')
