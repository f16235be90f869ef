"""What a relay device offers the local sessions: switch a channel, read it back (with the
power and the energy register where the device meters).

Errors are the bus drivers' (``sitegate.drivers.base``): ``NoResponse`` when the device is
silent, ``DeviceError`` when it answers with an error, ``BusError`` when the link is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RelayStatus:
    on: bool  # as the device reports it (its read-back, not what we asked for)
    power_w: Decimal | None = None  # active power now, W (None: the device does not meter)
    energy_wh: Decimal | None = None  # cumulative active energy, Wh


class RelayDevice(Protocol):
    async def set(self, channel: int, on: bool) -> None: ...

    async def status(self, channel: int) -> RelayStatus: ...

    async def close(self) -> None: ...

    def describe(self) -> str: ...
