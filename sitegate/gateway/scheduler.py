"""Polling: one task per bus, reads aligned to wall-clock boundaries, backoff for silent meters.

RS485 and M-Bus are half-duplex, so a bus task reads its meters strictly one after another.
A meter due at 10:15:00 is read as soon as the bus is free and its readings carry
``ts=10:15:00`` (the slot) and ``read_at`` (when the bus delivered them). Meters that are
failing are read last in a cycle and then backed off exponentially (capped), so a dead
meter costs the healthy ones at most one timeout per cycle.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from sitegate.drivers.base import BusClient, BusError, DeviceError, MeterRef, NoResponse
from sitegate.sync.protocol import SUSPECT, Reading

log = structlog.get_logger(__name__)

# The cycle's output: readings and events, committed together in one buffer transaction.
Sink = Callable[[list[Reading], list[dict[str, Any]]], Awaitable[None]]


def next_slot(now: float, interval: int) -> float:
    """The first wall-clock boundary of ``interval`` strictly after ``now`` (epoch seconds)."""
    return (math.floor(now / interval) + 1) * interval


@dataclass
class MeterState:
    ref: MeterRef
    interval: int
    due: float  # epoch seconds of the next slot to read
    failures: int = 0  # consecutive failed reads
    retry_at: float = 0.0  # no probe before this while failing
    last_success: datetime | None = None
    last_attempt: datetime | None = None
    last_error: str | None = None
    reads: int = 0
    readings: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def health(self) -> dict[str, Any]:
        return {
            "meter_id": self.ref.meter_id,
            "profile": self.ref.profile,
            "interval": self.interval,
            "state": "ok" if self.failures == 0 else "failing",
            "consecutive_failures": self.failures,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_attempt": self.last_attempt.isoformat() if self.last_attempt else None,
            "last_error": self.last_error,
            "next_probe": datetime.fromtimestamp(self.retry_at, UTC).isoformat()
            if self.failures else None,
            "reads": self.reads,
            "readings": self.readings,
            "errors": dict(self.errors),
        }


class BusWorker:
    """Owns one bus: polls its meters and hands each cycle's readings to the sink."""

    def __init__(
        self,
        name: str,
        client: BusClient,
        meters: list[tuple[MeterRef, int]],
        sink: Sink,
        *,
        backoff_max: float = 900.0,
        clock_synchronized: Callable[[], bool] = lambda: True,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.client = client
        self.sink = sink
        self.backoff_max = backoff_max
        self.clock_synchronized = clock_synchronized
        self.now = now
        t = now()
        # First read on the next boundary: a value read at 10:07 must not carry ts 10:00.
        self.meters = [MeterState(ref, iv, next_slot(t, iv)) for ref, iv in meters]
        self.cycles = 0
        self.overruns = 0
        self.busy_seconds = 0.0
        self.started = t
        self.last_cycle_seconds = 0.0
        self.bus_error: str | None = None
        self._stop = asyncio.Event()
        self._bus = asyncio.Lock()  # the wire: one request at a time, cycles and ad-hoc reads

    def stop(self) -> None:
        self._stop.set()

    @property
    def bus_lock(self) -> asyncio.Lock:
        """Held for every exchange on the wire: relay devices on this bus take it too."""
        return self._bus

    def take_over(self, previous: list[MeterState]) -> None:
        """Continue the schedule of a stopped worker of the same bus (a config switch).

        A stopped worker leaves the meters it had not reached in its last cycle due for that
        cycle's slot, and those it read due for the next one: a meter kept with the same
        interval takes that over, so the slot is read once, late, rather than lost or read
        twice. Called before ``run``."""
        due = {m.ref.meter_id: m for m in previous}
        for m in self.meters:
            before = due.get(m.ref.meter_id)
            if before is not None and before.interval == m.interval:
                m.due = before.due

    def health(self) -> dict[str, Any]:
        elapsed = max(self.now() - self.started, 1e-9)
        return {
            "bus": self.name,
            "cycles": self.cycles,
            "overruns": self.overruns,
            "utilization": round(self.busy_seconds / elapsed, 4),
            "last_cycle_seconds": round(self.last_cycle_seconds, 3),
            "bus_error": self.bus_error,
            "meters": [m.health() for m in self.meters],
        }

    def _backoff(self, m: MeterState, t: float) -> None:
        delay = min(m.interval * 2 ** (m.failures - 1), self.backoff_max)
        m.retry_at = t + delay

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                t = self.now()
                due = [m for m in self.meters if m.due <= t]
                if not due:
                    wake = min((m.due for m in self.meters), default=t + 1.0)
                    try:
                        await asyncio.wait_for(self._stop.wait(), timeout=max(wake - t, 0.01))
                    except TimeoutError:
                        pass
                    continue
                await self.cycle(due)
        finally:
            await self.client.close()

    async def cycle(self, due: list[MeterState]) -> None:
        """Read every due meter once (healthy ones first) and commit the results together."""
        start = self.now()
        synced = self.clock_synchronized()
        readings: list[Reading] = []
        events: list[dict[str, Any]] = []
        for m in sorted(due, key=lambda m: (m.failures > 0, m.due)):
            if self._stop.is_set():
                break
            slot = m.due
            m.due = next_slot(max(self.now(), slot), m.interval)
            if m.failures and self.now() < m.retry_at:
                continue  # backing off; its slot is skipped, not read late
            async with self._bus:
                got, evs = await self._read(m, slot, synced)
            readings.extend(got)
            events.extend(evs)
        if readings or events:
            await self.sink(readings, events)  # one transaction; finishes even on shutdown
        took = self.now() - start
        self.busy_seconds += took
        self.last_cycle_seconds = took
        self.cycles += 1
        shortest = min(m.interval for m in self.meters)
        if took > shortest:
            self.overruns += 1
            util = self.busy_seconds / max(self.now() - self.started, 1e-9)
            log.warning("poll.overrun", bus=self.name, cycle_seconds=round(took, 3),
                        interval=shortest, meters=len(due), utilization=round(util, 3))

    async def read_now(self, meter_id: str) -> list[Reading]:
        """Read one meter out of schedule (technician's ``sitegate read``); not buffered."""
        m = next((m for m in self.meters if m.ref.meter_id == meter_id), None)
        if m is None:
            raise KeyError(meter_id)
        async with self._bus:
            result = await self.client.read(m.ref, datetime.now(UTC))
        return result.readings

    async def _read(
        self, m: MeterState, slot: float, synced: bool
    ) -> tuple[list[Reading], list[dict[str, Any]]]:
        scheduled = datetime.fromtimestamp(slot, UTC)
        m.last_attempt = datetime.now(UTC)
        m.reads += 1
        try:
            result = await self.client.read(m.ref, scheduled)
        except (NoResponse, DeviceError, BusError) as exc:
            kind = (exc.kind if isinstance(exc, DeviceError)
                    else "no_response" if isinstance(exc, NoResponse) else "bus_error")
            m.errors[kind] = m.errors.get(kind, 0) + 1
            m.failures += 1
            m.last_error = str(exc)
            self._backoff(m, self.now())
            if isinstance(exc, BusError):
                self.bus_error = str(exc)
            log.warning("meter.read_failed", bus=self.name, meter=m.ref.meter_id, kind=kind,
                        error=str(exc), failures=m.failures,
                        next_probe_in=round(m.retry_at - self.now(), 1))
            events = []
            if m.failures == 1:  # one event per outage, not one per probe
                events.append({"ts": scheduled.isoformat(), "kind": "meter_fault",
                               "severity": "warning", "meter_id": m.ref.meter_id,
                               "bus": self.name, "error": kind, "message": str(exc)})
            return [], events
        except Exception as exc:  # a driver bug must not stop the bus
            log.exception("meter.read_crashed", bus=self.name, meter=m.ref.meter_id)
            m.errors["internal"] = m.errors.get("internal", 0) + 1
            m.failures += 1
            m.last_error = f"internal error: {exc}"
            self._backoff(m, self.now())
            return [], []
        self.bus_error = None
        events = [dict(e, ts=e.get("ts", scheduled.isoformat())) for e in result.events]
        if m.failures:
            log.info("meter.recovered", bus=self.name, meter=m.ref.meter_id,
                     after_failures=m.failures)
            events.append({"ts": scheduled.isoformat(), "kind": "meter_recovered",
                           "severity": "info", "meter_id": m.ref.meter_id, "bus": self.name})
        m.failures = 0
        m.last_error = None
        m.last_success = datetime.now(UTC)
        readings = result.readings
        if not synced:
            readings = [
                Reading(r.meter_id, r.ts, r.quantity, r.value, r.unit,
                        SUSPECT if r.quality == "good" else r.quality, r.read_at,
                        tuple(sorted({*r.flags, "clock_unsynced"})))
                for r in readings
            ]
        m.readings += len(readings)
        return readings, events
