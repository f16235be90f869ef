"""Helpers for the relay tests: badges, point configs, a test clock, Modbus relay simulators."""

from __future__ import annotations

from decimal import Decimal

from sitegate.common.sitefile_ocpp import BadgeConfig
from sitegate.common.sitefile_relays import PointConfig
from sitegate.drivers.base import LinkSettings
from sitegate.drivers.modbus.client import ModbusBusClient
from sitegate.drivers.relays.modbus_relay import ModbusRelay
from sitegate.drivers.relays.modbus_sim import RelaySimulator
from sitegate.drivers.relays.profile import load_relay_profile
from sitegate.ocpp_server.badges import BadgeList

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


W = Decimal
