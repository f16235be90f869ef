"""Load management: measure, allocate (``allocation.allocate``), push charging profiles.

What is shared: per phase, the connection limit minus ``safety_margin`` minus the base load.
The base load is the main meter's current minus what the *managed* sessions drew when the
meter was read (their Current.Import meter values). An unmanaged device (a laundry or eBike
relay box, a charger that refuses profiles) stays in the base load even when it reports its
current: it is not in the allocation, so subtracting it would give its current to the cars.

When: a full pass on every change (session start/stop, status change, a charger coming or
going) and every ``interval``, lowering and raising limits; and, on each main meter reading
(``main_meter_read``, called by the daemon) that shows any phase above
``connection_limit - safety_margin``, a reduction pass at once that only lowers limits.
Raising waits for the next full pass, so a base load hovering near the threshold does not
make the limits flap (openWB regulates the same way: to the maximum minus an offset, while
the overload check reacts at every cycle).

How limits go out: reductions first; raises only after every reduction was answered, and
only as far as they fit beside the limits then in force. A charger that rejected its
reduction or could not be reached keeps the limit it last accepted, and that limit is
counted. So a rebalancing never has, even for a moment, limits in force that add up to more
than what is shared (pushing all at once could let a raise land before the reduction that
makes room for it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import structlog

from sitegate.common.sitefile_ocpp import LoadManagementConfig
from sitegate.ocpp_server.allocation import STEP, Demand, allocate
from sitegate.ocpp_server.core import Connection, Core

log = structlog.get_logger(__name__)

MainMeter = Callable[[], tuple[tuple[Decimal, ...], datetime] | None]
PHASES = (1, 2, 3)


@dataclass(frozen=True, slots=True)
class Session:
    """A managed running session as one pass sees it."""

    conn: Connection
    connector: int
    tx: Any  # state.Tx
    in_force: Decimal | None  # the limit the charger applies now; None: none accepted yet

    def now_allowed(self) -> Decimal:
        """The limit in force now, its maximum when it accepted none: the worst case."""
        amps = self.conn.limit_in_force(self.connector, self.tx.id)
        return self.conn.config.max_current if amps is None else amps


class LoadManager:
    def __init__(self, core: Core, cfg: LoadManagementConfig,
                 main_meter_currents: MainMeter | None) -> None:
        self.core = core
        self.cfg = cfg
        self.main_meter = main_meter_currents
        self._wake = asyncio.Event()
        self._full = False  # the pending pass may raise limits
        self._reducing = False  # the pass being planned only lowers limits
        self._sessions: dict[tuple[str, int], Session] = {}  # of the last plan
        self._shared: dict[int, Decimal] | None = None  # of the last plan; None: fallback
        self.last: dict[str, Any] = {"mode": "idle"}
        self.overloads = 0  # main meter readings above the threshold, since the start
        self.passes = 0  # passes completed, since the start
        self._in_pass = False
        self.manual_caps: dict[tuple[str, int], Decimal] = {}  # from 'set-limit'
        core.on_change = self.wake

    @property
    def idle(self) -> bool:
        """No pass running and none asked for: the limits pushed are the limits in force."""
        return not self._in_pass and not self._wake.is_set()

    # -- triggers --------------------------------------------------------------------------------

    def wake(self) -> None:
        """Something changed (a session, a charger): a full pass soon."""
        self._full = True
        self._wake.set()

    def main_meter_read(self) -> None:
        """A new main meter reading arrived: over the threshold on any phase, reduce now."""
        reading = self.main_meter() if self.main_meter else None
        if reading is None:
            return
        threshold = self.cfg.connection_limit - self.cfg.safety_margin
        if any(a > threshold for a in reading[0]):
            self.overloads += 1
            self._wake.set()

    # -- deciding --------------------------------------------------------------------------------

    def headroom(self) -> dict[int, Decimal] | None:
        """Connection limit minus base load per phase (no margin taken off yet), or None when
        the main meter data is missing or stale."""
        reading = self.main_meter() if self.main_meter else None
        if reading is None:
            return None
        amps, at = reading
        age = (datetime.now(UTC) - at).total_seconds()
        if age > self.cfg.stale_after or len(amps) != 3:
            return None
        drawn = {p: Decimal(0) for p in PHASES}
        for conn in self.core.connections.values():
            if not conn.managed:
                continue  # its current is base load: it is not in the allocation
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
        return {p: limit - max(amps[p - 1] - drawn[p], Decimal(0)) for p in PHASES}

    def plan(self) -> dict[tuple[str, int], Decimal]:
        """Limit (A per phase) for every managed running session, keyed (charger, connector).
        In a reduction pass no limit is above the one in force."""
        demands: list[Demand] = []
        sessions: dict[tuple[str, int], Session] = {}
        for tx in self.core.store.open_txs():
            conn = self.core.connections.get(tx.cp_id)
            if conn is None or not conn.managed:
                continue
            key = (tx.cp_id, tx.connector)
            sessions[key] = Session(conn, tx.connector, tx,
                                    conn.limit_in_force(tx.connector, tx.id))
            cap = min(conn.config.max_current,
                      self.manual_caps.get(key, conn.config.max_current))
            demands.append(Demand(key, frozenset(conn.config.phases), cap,
                                  conn.config.priority, tx.id))
        self._sessions = sessions
        kind = "reduce" if self._reducing else "full"
        room = self.headroom()
        if room is None:
            self._shared = None
            self.last = {"mode": "fallback", "pass": kind, "sessions": len(demands)}
            plan = {d.key: min(self.cfg.fallback_current, d.max_current) for d in demands}
        else:
            self._shared = {p: room[p] - self.cfg.safety_margin for p in PHASES}
            self.last = {"mode": "managed", "pass": kind,
                         "headroom": {str(p): str(v) for p, v in room.items()},
                         "safety_margin": str(self.cfg.safety_margin),
                         "sessions": len(demands)}
            plan = allocate(self._shared, demands, self.cfg.min_current)  # type: ignore[assignment]
        if self._reducing:
            plan = {k: min(a, sessions[k].now_allowed())  # type: ignore[index]
                    for k, a in plan.items()}
        return plan  # type: ignore[return-value]

    # -- running -----------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = loop.time() + self.cfg.interval
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_full - loop.time())):
                    await self._wake.wait()
            except TimeoutError:
                self._full = True  # the periodic pass
            self._wake.clear()
            full, self._full = self._full, False
            if full:
                next_full = loop.time() + self.cfg.interval
            self._in_pass = True
            try:
                await self.rebalance(raises=full)
            except Exception as exc:  # one bad cycle must not end load management
                log.error("ocpp.loadmgmt_failed", error=repr(exc))
            finally:
                self._in_pass = False

    async def rebalance(self, *, raises: bool = True) -> None:
        """One pass: plan, then push (reductions first; raises only when ``raises``)."""
        self._reducing = not raises
        try:
            plan = self.plan()
        finally:
            self._reducing = False
        await self.apply(plan, raises=raises)
        self.passes += 1

    async def apply(self, plan: dict[tuple[str, int], Decimal], *, raises: bool = True) -> None:
        downs: list[tuple[Session, Decimal]] = []
        ups: list[tuple[Session, Decimal]] = []
        for key, amps in plan.items():
            s = self._sessions.get(key)
            if s is None or s.conn.profiles_disabled or amps == s.in_force:
                continue  # unchanged: do not flood the charger
            # A charger that accepted no limit yet may draw its maximum: a reduction.
            (downs if s.in_force is None or amps < s.in_force else ups).append((s, amps))
        # Reductions first, all at once: each makes room only once the charger accepted it.
        await asyncio.gather(*(self.push_one(s.conn, s.connector, a, s.tx) for s, a in downs))
        if not raises or not ups:
            return
        await asyncio.gather(*(self.push_one(s.conn, s.connector, a, s.tx)
                               for s, a in self._fitting(ups)))

    def _fitting(self, ups: list[tuple[Session, Decimal]]) -> list[tuple[Session, Decimal]]:
        """The raises, each cut to what fits beside the limits in force now (a reduction that
        was rejected or not answered keeps its old limit), by priority, then arrival."""
        if self._shared is None:  # fallback: every session gets the same safe current
            return ups
        used = {p: Decimal(0) for p in PHASES}
        # Every session of the plan, also one whose charger has just been given up on
        # (rejecting, gone): it still runs at the limit it last accepted.
        for s in self._sessions.values():
            amps = s.now_allowed()
            for p in s.conn.config.phases:
                used[p] += amps
        out = []
        for s, want in sorted(ups, key=lambda u: (-u[0].conn.config.priority, u[0].tx.id)):
            now = s.now_allowed()
            fit = min(self._shared[p] - used[p] for p in s.conn.config.phases)
            amps = min(want, now + fit).quantize(STEP, rounding=ROUND_FLOOR)
            if amps <= now or (now == 0 and amps < self.cfg.min_current):
                log.info("ocpp.raise_held", charge_point=s.conn.cp_id, connector=s.connector,
                         wanted=str(want), in_force=str(now))
                continue
            if amps < want:
                log.info("ocpp.raise_cut", charge_point=s.conn.cp_id, connector=s.connector,
                         wanted=str(want), pushed=str(amps))
            for p in s.conn.config.phases:
                used[p] += amps - now
            out.append((s, amps))
        return out

    async def push_one(self, conn: Connection, connector: int, amps: Decimal,
                       tx: Any | None) -> str:
        """Push one limit, counting rejections: after ``max_rejects`` in a row the charger
        is reported once and left alone until it reconnects."""
        if conn.profiles_disabled:
            return "disabled"
        status = await push_limit(conn, connector, amps, tx)
        if status == "Accepted":
            conn.limits[connector] = amps
            if tx is None:
                conn.default_limits[connector] = amps
            else:
                conn.tx_limits[tx.id] = amps
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
