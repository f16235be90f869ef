"""Charge points that come and go like real ones: a tenant badges in, charges, leaves.

Built on the OCPP 1.6 simulator of ``sitegate.ocpp_server.simulator`` (``connect`` and its
charger methods). Its ``run_fleet`` keeps one session open per charger for the benchmark
and never stops it; billing needs completed sessions, so each charger here runs a cycle of
sessions, and ends the one in progress when the demo stops.

A car draws what the charger allows (the gateway's charging profiles) up to its own
maximum, and starts drawing the new current as soon as a profile arrives; the charger then
reports it (MeterValues) at once, as well as every interval. What each one draws goes into
``Building.drawing``, which the simulated main meter adds to the base load.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import structlog

from sitegate.common.ocmf_sign import SigningMeter
from sitegate.demo.building import Building
from sitegate.demo.site import Charger
from sitegate.ocpp_server.simulator import SimCharger16, close, connect

log = structlog.get_logger(__name__)

VOLTS = Decimal(230)


class ChargerFleet:
    def __init__(self, url: str, chargers: list[Charger], interval: float,
                 building: Building) -> None:
        self.url = url
        self.chargers = chargers
        self.interval = interval  # seconds between MeterValues
        self.building = building
        self._stop = asyncio.Event()
        self._wake: dict[str, asyncio.Event] = {c.cp_id: asyncio.Event() for c in chargers}
        self._tasks: list[asyncio.Task[None]] = []
        # A calibrated charger's meter signs with a key made for this run (OCMF, P-256).
        self.meters = {c.cp_id: SigningMeter(serial=f"{c.cp_id}-MID")
                       for c in chargers if c.calibrated}

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(i, c), name=f"charger:{c.cp_id}")
                       for i, c in enumerate(self.chargers)]

    async def stop(self) -> None:
        """End the sessions in progress (StopTransaction), then disconnect."""
        self._stop.set()
        for wake in self._wake.values():
            wake.set()
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
        sim.on_profile = self._wake[c.cp_id].set
        try:
            await sim.boot()
            await sim.status(1, "Available")
            wh = Decimal(0)
            # Staggered: the chargers start one poll apart, then charge c.polls, rest 4.
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
            self.building.drawing.pop(c.cp_id, None)
            await close(sim, task)

    def _signed(self, c: Charger, tx: str, wh: int) -> str:
        """The meter's signed reading as a 1.6 SignedData value: the 2.0.1 structure as
        JSON text, with its public key (pinned by the gateway at first use)."""
        meter = self.meters[c.cp_id]
        rec = meter.record([(datetime.now(UTC), tx, Decimal(wh).scaleb(-3))], badge=c.badge)
        return json.dumps({"signedMeterData": base64.b64encode(rec.encode()).decode(),
                           "signingMethod": "", "encodingMethod": "OCMF",
                           "publicKey": base64.b64encode(
                               bytes.fromhex(meter.public_key_hex)).decode()})

    def _amps(self, sim: SimCharger16, c: Charger, tx: int) -> Decimal:
        """min(what the charger allows, what the car takes); a relay box just switches."""
        own = Decimal(c.amps)
        limit = sim.limit(1, tx) if c.kind == "ev" else None
        return own if limit is None else min(own, limit)

    async def _session(self, sim: SimCharger16, c: Charger, wh: Decimal) -> Decimal:
        await sim.status(1, "Preparing")
        if await sim.authorize(c.badge) != "Accepted" or self._stop.is_set():
            # (the demo stopping meanwhile: no session that would end at once, 0 kWh in 0 s)
            await sim.status(1, "Available")
            return wh
        tx, _ = await sim.start_tx(1, c.badge, int(wh))
        begun = wh  # the register at the start
        if c.cp_id in self.meters:  # the OCA whitepaper's placement: MeterValues at begin
            await sim.signed_meter(1, tx, "Transaction.Begin",
                                   self._signed(c, "B", int(wh)))
        await sim.status(1, "Charging")
        wake = self._wake[c.cp_id]
        amps = self._amps(sim, c, tx)
        self.building.drawing[c.cp_id] = (amps, c.phases)
        last = started = time.monotonic()
        end = last + c.polls * self.interval
        report_at = last + self.interval
        try:
            # The charger reports what the car draws from the start (under the default
            # profile until the session's own arrives).
            await sim.meter(1, tx, int(wh), amps if c.kind == "ev" else None)
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), max(0.0, min(report_at, end) - last))
                wake.clear()
                now = time.monotonic()
                # Energy at the current drawn since the last step, then the new current.
                wh += amps * VOLTS * len(c.phases) * Decimal(str(now - last)) / 3600
                last = now
                if self._stop.is_set() or now >= end:
                    break
                new = self._amps(sim, c, tx)
                if new == amps and now < report_at:
                    continue
                amps = new
                self.building.drawing[c.cp_id] = (amps, c.phases)
                if now >= report_at:
                    report_at = now + self.interval
                # The relay box meters energy only; a wallbox reports its current too.
                await sim.meter(1, tx, int(wh), amps if c.kind == "ev" else None)
        finally:
            self.building.drawing.pop(c.cp_id, None)
        if self._stop.is_set() and time.monotonic() - started < 1.0:
            # the demo's stop came while this session was starting: nothing was drawn (no
            # Wh the register's rounding would make of the milliseconds), not billed
            wh = begun
        end = [("Transaction.End", self._signed(c, "E", int(wh)))] \
            if c.cp_id in self.meters else None
        await sim.stop_tx(tx, int(wh), reason="EVDisconnected" if c.kind == "ev" else "Local",
                          badge=c.badge, signed=end)
        await sim.status(1, "Available")
        return wh
