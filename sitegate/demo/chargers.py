"""Charge points that come and go like real ones: a tenant badges in, charges, leaves.

Built on the OCPP 1.6 simulator of ``sitegate.ocpp_server.simulator`` (``connect`` and its
charger methods). Its ``run_fleet`` keeps one session open per charger for the benchmark
and never stops it; billing needs completed sessions, so each charger here runs a cycle of
sessions, and ends the one in progress when the demo stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import structlog

from sitegate.demo.site import Charger
from sitegate.ocpp_server.simulator import SimCharger16, close, connect

log = structlog.get_logger(__name__)

VOLTS = Decimal(230)


class ChargerFleet:
    def __init__(self, url: str, chargers: list[Charger], interval: float) -> None:
        self.url = url
        self.chargers = chargers
        self.interval = interval  # seconds between MeterValues
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(i, c), name=f"charger:{c.cp_id}")
                       for i, c in enumerate(self.chargers)]

    async def stop(self) -> None:
        """End the sessions in progress (StopTransaction), then disconnect."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless stopping; True when the demo is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def _run(self, index: int, c: Charger) -> None:
        try:
            sim, task = await connect(self.url, c.cp_id, version="1.6")
        except Exception as exc:  # noqa: BLE001 - refused handshake, no listener, ...
            log.warning("demo.charger_connect_failed", charge_point=c.cp_id, error=str(exc))
            return
        assert isinstance(sim, SimCharger16)
        try:
            await sim.boot()
            await sim.status(1, "Available")
            wh = Decimal(0)
            # Staggered: the chargers start one poll apart, then charge 12 polls, rest 4.
            if await self._pause(self.interval * (index + 1)):
                return
            while True:
                wh = await self._session(sim, c, wh)
                if await self._pause(self.interval * 4):
                    return
        except Exception as exc:  # noqa: BLE001 - a demo charger failing must not end the demo
            if not self._stop.is_set():
                log.warning("demo.charger_failed", charge_point=c.cp_id, error=repr(exc))
        finally:
            await close(sim, task)

    async def _session(self, sim: SimCharger16, c: Charger, wh: Decimal) -> Decimal:
        await sim.status(1, "Preparing")
        if await sim.authorize(c.badge) != "Accepted":
            await sim.status(1, "Available")
            return wh
        tx, _ = await sim.start_tx(1, c.badge, int(wh))
        await sim.status(1, "Charging")
        amps = Decimal(c.amps)
        watts = amps * VOLTS * 3
        for _ in range(12):
            if await self._pause(self.interval):
                break
            wh += (watts * Decimal(str(self.interval)) / 3600).quantize(Decimal(1))
            await sim.meter(1, tx, int(wh), amps)
        await sim.stop_tx(tx, int(wh), reason="EVDisconnected" if c.kind == "ev" else "Local",
                          badge=c.badge)
        await sim.status(1, "Available")
        return wh
