"""Helpers for the relay tests: badges, point configs, a test clock, Modbus relay simulators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sitegate.common.sitefile_ocpp import BadgeConfig
from sitegate.common.sitefile_relays import PointConfig
from sitegate.drivers.base import LinkSettings
from sitegate.drivers.modbus.client import ModbusBusClient
from sitegate.drivers.relays.modbus_relay import ModbusRelay
from sitegate.drivers.relays.modbus_sim import RelaySimulator
from sitegate.drivers.relays.profile import load_relay_profile
from sitegate.drivers.relays.shelly import ShellyClient
from sitegate.drivers.relays.shelly_sim import ShellySimulator
from sitegate.gateway.buffer import Buffer
from sitegate.ocpp_server.badges import BadgeList
from sitegate.ocpp_server.state import StateStore

ANNA, BEN, BLOCKED = "04A23BC1", "0A0B0C0D", "DEADBEEF"


def badge_list() -> BadgeList:
    return BadgeList([BadgeConfig(id="04:a2:3b:c1", account="anna"),
                      BadgeConfig(id=BEN, account="ben"),
                      BadgeConfig(id=BLOCKED, status="blocked", account="mallory")])


def point(**kw: object) -> PointConfig:
    base: dict[str, object] = {"id": "wash-1", "kind": "laundry", "device": "d1",
                               "channel": 0, "poll_interval": 0.05}
    return PointConfig.model_validate(base | kw)


class Clock:
    """A monotonic clock the test advances (time thresholds without waiting)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def modbus_relays(port: int, *devices: tuple[int, str]
                        ) -> tuple[RelaySimulator, ModbusBusClient, dict[int, ModbusRelay]]:
    import asyncio

    sim = RelaySimulator(list(devices))
    await sim.start_tcp("127.0.0.1", port)
    client = ModbusBusClient(LinkSettings(host="127.0.0.1", port=port, timeout=0.3, retries=0))
    lock = asyncio.Lock()
    relays = {u: ModbusRelay(f"u{u}", lambda: (client, lock), u, load_relay_profile(p))
              for u, p in devices}
    return sim, client, relays


@dataclass
class Rig:
    """A point's surroundings: the simulated device and its driver, a real buffer and a
    real state file (``tmp/buffer.db``, ``tmp/points.db``)."""

    sim: Any  # ShellySimulator or RelaySimulator
    device: Any  # ShellyClient, or the RelaySimulator's ModbusRelay of each unit
    buffer: Buffer
    store: StateStore


@asynccontextmanager
async def _rig(tmp: Path, sim: Any, device: Any,
               close_driver: Callable[[], Awaitable[None]]) -> AsyncIterator[Rig]:
    buffer = Buffer(tmp / "buffer.db")
    store = StateStore(str(tmp / "points.db"))
    try:
        yield Rig(sim, device, buffer, store)
    finally:
        await close_driver()
        store.close()
        buffer.close()
        await sim.stop()


@asynccontextmanager
async def shelly_rig(tmp: Path, *, password: str | None = None, transport: str = "http",
                     timeout: float = 1, channels: int = 1) -> AsyncIterator[Rig]:
    """A Shelly simulator on loopback and its client; all closed at the end."""
    sim = ShellySimulator(channels=channels, password=password)
    port = await sim.start()
    dev = ShellyClient("127.0.0.1", port, password=password, transport=transport,
                       timeout=timeout)
    async with _rig(tmp, sim, dev, dev.close) as rig:
        yield rig


@asynccontextmanager
async def modbus_rig(tmp: Path, port: int, *devices: tuple[int, str]) -> AsyncIterator[Rig]:
    """Modbus relay devices simulated on ``port`` and their drivers by unit (``device``);
    all closed at the end."""
    sim, client, relays = await modbus_relays(port, *devices)
    async with _rig(tmp, sim, relays, client.close) as rig:
        yield rig


W = Decimal
