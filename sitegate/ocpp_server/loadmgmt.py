"""Load management: measure, allocate (``allocation.allocate``), push charging profiles.

Recomputed on every change (session start/stop, status change) and every ``interval``.
The base load is the main meter's current minus what the managed chargers draw (from their
Current.Import meter values), so a charger taking more does not look like more base load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import structlog

from sitegate.ocpp_server.allocation import Demand, allocate
from sitegate.ocpp_server.config import LoadManagementConfig
from sitegate.ocpp_server.core import Connection, Core

log = structlog.get_logger(__name__)

MainMeter = Callable[[], tuple[tuple[Decimal, ...], datetime] | None]


class LoadManager:
    def __init__(self, core: Core, cfg: LoadManagementConfig,
                 main_meter_currents: MainMeter | None) -> None:
        self.core = core
        self.cfg = cfg
        self.main_meter = main_meter_currents
        self._wake = asyncio.Event()
        self.last: dict[str, Any] = {"mode": "idle"}
        self.manual_caps: dict[tuple[str, int], Decimal] = {}  # from 'set-limit'
        core.on_change = self._wake.set

    def headroom(self) -> dict[int, Decimal] | None:
        """Spare current per phase, or None when the main meter data is missing or stale."""
        reading = self.main_meter() if self.main_meter else None
        if reading is None:
            return None
        amps, at = reading
        age = (datetime.now(UTC) - at).total_seconds()
        if age > self.cfg.stale_after or len(amps) != 3:
            return None
        drawn = {1: Decimal(0), 2: Decimal(0), 3: Decimal(0)}
        for conn in self.core.connections.values():
            draw_then = conn.draw_at(at)  # what was in the main meter's reading
            # Connector 0 is the whole charger: only counted when no connector reports.
            per_connector = [d for c, d in draw_then.items() if c > 0]
            if not per_connector and 0 in draw_then:
                per_connector = [draw_then[0]]
            for draw in per_connector:
                for i, a in draw.items():
                    if i <= len(conn.config.phases):
                        drawn[conn.config.phases[i - 1]] += a
        limit = self.cfg.connection_limit
        # A base load below zero means inconsistent readings: never hand out more than the
        # connection itself.
        return {p: limit - max(amps[p - 1] - drawn[p], Decimal(0)) for p in (1, 2, 3)}

    def plan(self) -> dict[tuple[str, int], Decimal]:
        """Limit (A per phase) for every managed running session, keyed (charger, connector)."""
        demands: list[Demand] = []
        for tx in self.core.store.open_txs():
            conn = self.core.connections.get(tx.cp_id)
            if conn is None or conn.config.kind != "ev" or not conn.accepted:
                continue
            cap = min(conn.config.max_current,
                      self.manual_caps.get((tx.cp_id, tx.connector), conn.config.max_current))
            demands.append(Demand((tx.cp_id, tx.connector), frozenset(conn.config.phases),
                                  cap, conn.config.priority, tx.id))
        room = self.headroom()
        if room is None:
            self.last = {"mode": "fallback", "sessions": len(demands)}
            return {d.key: min(self.cfg.fallback_current, d.max_current)  # type: ignore[misc]
                    for d in demands}
        self.last = {"mode": "managed", "headroom": {str(p): str(v) for p, v in room.items()},
                     "sessions": len(demands)}
        return allocate(room, demands, self.cfg.min_current)  # type: ignore[return-value]

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.cfg.interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.apply(self.plan())
            except Exception as exc:  # one bad cycle must not end load management
                log.error("ocpp.loadmgmt_failed", error=repr(exc))

    async def apply(self, plan: dict[tuple[str, int], Decimal]) -> None:
        by_conn: dict[str, list[tuple[int, Decimal]]] = {}
        for (cp_id, connector), amps in plan.items():
            conn = self.core.connections.get(cp_id)
            if conn is None or conn.profiles_disabled:
                continue
            if conn.limits.get(connector) == amps:
                continue  # unchanged: do not flood the charger
            by_conn.setdefault(cp_id, []).append((connector, amps))
        await asyncio.gather(*(self._push(self.core.connections[c], items)
                               for c, items in by_conn.items()))

    async def _push(self, conn: Connection, items: list[tuple[int, Decimal]]) -> None:
        for connector, amps in items:
            tx = next((t for t in self.core.store.open_txs(conn.cp_id)
                       if t.connector == connector), None)
            if await self.push_one(conn, connector, amps, tx) != "Accepted":
                return

    async def push_one(self, conn: Connection, connector: int, amps: Decimal,
                       tx: Any | None) -> str:
        """Push one limit, counting rejections: after ``max_rejects`` in a row the charger
        is reported once and left alone until it reconnects."""
        if conn.profiles_disabled:
            return "disabled"
        status = await push_limit(conn, connector, amps, tx)
        if status == "Accepted":
            conn.limits[connector] = amps
            conn.profile_rejects = 0
            return status
        conn.profile_rejects += 1
        log.warning("ocpp.profile_rejected", charge_point=conn.cp_id, status=status,
                    count=conn.profile_rejects)
        if conn.profile_rejects >= self.cfg.max_rejects:
            conn.profiles_disabled = True
            self.core.event("profile_rejected", severity="alarm", charge_point=conn.cp_id,
                            status=status, attempts=conn.profile_rejects,
                            message="charger rejects charging profiles; no longer sent "
                                    "until it reconnects")
        return status


async def push_limit(conn: Connection, connector: int, amps: Decimal, tx: Any | None) -> str:
    """Send one limit in the charger's own unit; returns its answer or the failure."""
    unit = conn.rate_unit or "A"
    nphases = len(conn.config.phases)
    value = amps if unit == "A" else (amps * conn.config.voltage * nphases).quantize(
        Decimal(1), rounding=ROUND_FLOOR)
    try:
        return str(await conn.cp.set_limit(connector, value, unit, tx, nphases))
    except Exception as exc:  # timeout, CallError, connection lost
        return f"failed: {type(exc).__name__}: {exc}"
