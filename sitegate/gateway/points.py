"""Local RFID relay points: a badge switches a laundry machine or an eBike outlet on, the
session's energy and time are recorded, and the session goes into the buffer's
``sessions`` stream in the same form as an OCPP relay box's, so the cloud bills both alike.

A session ends on a second presentation (the same badge), when the power stays below the
point's threshold for its time (the programme ended; counted once the power was above
it), at the maximum duration, or on a fault: a relay that does not confirm, a device that
stops answering. A fault or a daemon restart closes the session with a flag and leaves the
relay in its safe state (default off).

Exactly once: the session is in the points' state file (the OCPP state store's schema,
WAL, synchronous=FULL) before the relay is switched on; its completion is stored before it
is reported, and a report is marked as given only after the buffer committed it. After a
``kill -9`` the next start finds the session still open, puts the relay in its safe state
and closes it, flagged ``closed_after_restart``; completed sessions whose report did not
reach the buffer are reported then. A re-sent report has the same session id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import structlog

from sitegate.common.sitefile_relays import PointConfig
from sitegate.drivers.base import BusError, DeviceError, NoResponse
from sitegate.drivers.relays.base import RelayDevice, RelayStatus
from sitegate.ocpp_server.badges import BadgeList
from sitegate.ocpp_server.core import session_record
from sitegate.ocpp_server.state import StateStore, Tx
from sitegate.sync.protocol import STREAM_SESSIONS

log = structlog.get_logger(__name__)

DEVICE_ERRORS = (NoResponse, DeviceError, BusError, OSError)
ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"


class Sink(Protocol):
    def append(self, stream: str, payloads: list[dict[str, Any]]) -> Any: ...

    def append_event(self, kind: str, severity: str = "info", **fields: Any) -> None: ...


class Point:
    def __init__(self, cfg: PointConfig, device: RelayDevice, badges: BadgeList,
                 store: StateStore, sink: Sink, badge_format: str = "hex",
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.cfg = cfg
        self.device = device
        self.badges = badges
        self.store = store
        self.sink = sink
        self.badge_format = badge_format
        self.clock = clock  # for durations (power below threshold, device silence)
        self.wall = wall  # for session times
        self.lock = asyncio.Lock()  # one change at a time: badge, poll, command
        self.last: RelayStatus | None = None
        self.last_ok = clock()
        self.last_error: str | None = None
        self._below_since: float | None = None
        self._armed = False  # the power was above stop_below_w once in this session
        self._pending_safe = bool(store.get(self._safe_key))

    @property
    def _safe_key(self) -> str:
        return f"pending_safe:{self.cfg.id}"

    @property
    def tx(self) -> Tx | None:
        open_ = self.store.open_txs(self.cfg.id)
        return open_[0] if open_ else None

    # -- what happens at the point -------------------------------------------------------------

    async def present(self, raw: str) -> dict[str, Any]:
        """A badge at the reader: start a session, end it, or refuse it."""
        async with self.lock:
            d = self.badges.decide(raw, self.badge_format)
            tx = self.tx
            if tx is not None:
                if d.badge == tx.badge:
                    await self._stop(tx, "Local", [])
                    return {"result": "stopped", "badge": d.badge, "session": tx.session_id}
                self._event("badge_ignored", "info", badge=d.badge,
                            note="a session of another badge is running")
                return {"result": "busy", "badge": d.badge}
            if d.status != "Accepted":
                self._event("badge_refused", "warning", badge=d.badge, raw=raw,
                            status=d.status)
                return {"result": "refused", "badge": d.badge, "status": d.status}
            return await self._start(d.badge, d.account)

    async def _start(self, badge: str, account: str | None) -> dict[str, Any]:
        if self._pending_safe:
            await self._apply_safe()
            if self._pending_safe:
                return {"result": "fault", "badge": badge,
                        "error": "the relay's safe state is not confirmed yet"}
        try:
            before = await self.device.status(self.cfg.channel)
        except DEVICE_ERRORS as exc:
            self._fault(exc)
            self._event("point_fault", "warning", badge=badge, error=str(exc),
                        note="badge accepted, but the device does not answer: not switched")
            return {"result": "fault", "badge": badge, "error": str(exc)}
        self._ok(before)
        start = self.wall()
        meter_start = self._energy(before)
        flags = [] if self.cfg.metered else ["unmetered"]
        if self.cfg.metered and before.energy_wh is None:
            flags.append("no_energy_register")
        # Stored before the relay switches: a crash from here on is closed at the restart.
        with self.store.batch():
            tx, _ = self.store.start_tx(
                cp_id=self.cfg.id, connector=self.cfg.channel, kind=self.cfg.kind, badge=badge,
                account=account, start_ts=start, meter_start=meter_start,
                ext_id=f"L{int(start.timestamp() * 1000)}", flags=flags)
            self._meter_value(tx, start, before)
        self._below_since, self._armed = None, False
        try:
            await self.device.set(self.cfg.channel, True)
            after = await self.device.status(self.cfg.channel)
        except DEVICE_ERRORS as exc:
            self._fault(exc)
            await self._close_fault(tx, "relay_not_confirmed", str(exc))
            return {"result": "fault", "badge": badge, "error": str(exc)}
        self._ok(after)
        if not after.on:
            await self._close_fault(tx, "relay_not_confirmed", "the relay reads back off")
            return {"result": "fault", "badge": badge, "error": "relay not confirmed"}
        log.info("point.started", point=self.cfg.id, session=tx.session_id, badge=badge)
        try:  # the cloud sees it running, as an OCPP relay box's (the final report wins)
            await self._report(tx)
        except Exception:
            log.exception("point.running_report_failed", session=tx.session_id)
        return {"result": "started", "badge": badge, "session": tx.session_id}

    async def poll(self) -> None:
        """One look at the device: record the session's energy, end it when due."""
        async with self.lock:
            if self._pending_safe:
                await self._apply_safe()
            tx = self.tx
            try:
                st = await self.device.status(self.cfg.channel)
            except DEVICE_ERRORS as exc:
                self._fault(exc)
                if tx is not None and self.clock() - self.last_ok >= self.cfg.device_timeout:
                    await self._close_fault(tx, "device_silent", str(exc))
                return
            self._ok(st)
            if tx is None:
                return
            now = self.wall()
            if self.cfg.metered and st.energy_wh is not None:
                with self.store.batch():
                    self.store.set_last_meter(tx.id, st.energy_wh, now)
                    self._meter_value(tx, now, st)
            reason = self._due(tx, st, now)
            if reason == "relay_off":
                await self._stop(tx, "Other", ["relay_switched_off_outside"])
            elif reason is not None:
                await self._stop(tx, reason, [])

    def _due(self, tx: Tx, st: RelayStatus, now: datetime) -> str | None:
        if not st.on:
            return "relay_off"
        if (now - tx.start_ts).total_seconds() >= self.cfg.max_duration:
            return "MaxDuration"
        limit = self.cfg.stop_below_w
        if limit is None or st.power_w is None:
            return None
        if st.power_w >= limit:
            self._armed, self._below_since = True, None
            return None
        if not self._armed:
            return None
        if self._below_since is None:
            self._below_since = self.clock()
        if self.clock() - self._below_since >= self.cfg.stop_after:
            return "PowerDrop"
        return None

    async def switch(self, on: bool) -> dict[str, Any]:
        """The technician's ``sitegate relay on|off``: off ends a running session."""
        async with self.lock:
            tx = self.tx
            if not on and tx is not None:
                await self._stop(tx, "Remote", [])
                return {"point": self.cfg.id, "relay": "off", "session": tx.session_id}
            try:
                await self.device.set(self.cfg.channel, on)
                st = await self.device.status(self.cfg.channel)
            except DEVICE_ERRORS as exc:
                self._fault(exc)
                raise RuntimeError(f"{self.cfg.id}: {exc}") from exc
            self._ok(st)
            self._event("relay_switched_manually", "info", on=on, confirmed=st.on == on)
            return {"point": self.cfg.id, "relay": "on" if st.on else "off",
                    "confirmed": st.on == on}

    # -- restart and faults ------------------------------------------------------------------

    async def recover(self) -> int:
        """At start: a session left open by a crash is closed once, flagged, the relay put
        in its safe state; completed sessions not yet in the buffer are reported."""
        async with self.lock:
            closed = 0
            for tx in self.store.open_txs(self.cfg.id):
                self._set_pending_safe(True)
                await self._apply_safe()
                st = self.last if not self._pending_safe else None
                flags = ["closed_after_restart"]
                if self._pending_safe:
                    flags.append("relay_state_unknown")
                end = tx.last_meter if tx.last_meter is not None else tx.meter_start
                if st is not None and st.energy_wh is not None and self.cfg.metered:
                    end = st.energy_wh  # what the machine drew while we were down counts
                    stop_ts = self.wall()
                else:
                    stop_ts = tx.last_meter_ts or tx.start_ts
                self._event("session_closed_after_restart", "warning",
                            session=tx.session_id, meter_stop_wh=str(end),
                            relay=self.cfg.safe_state if not self._pending_safe else "unknown")
                await self._finish(tx, stop_ts, end, "Reboot", flags)
                closed += 1
            for tx in self.store.unreported_completed():
                if tx.cp_id == self.cfg.id:
                    await self._report(tx)
            return closed

    async def _close_fault(self, tx: Tx, flag: str, error: str) -> None:
        self._set_pending_safe(True)
        await self._apply_safe()
        flags = [flag] + (["relay_state_unknown"] if self._pending_safe else [])
        end = tx.last_meter if tx.last_meter is not None else tx.meter_start
        self._event("session_closed_on_fault", "error", session=tx.session_id, fault=flag,
                    error=error, relay=self.cfg.safe_state if not self._pending_safe
                    else "unknown")
        await self._finish(tx, tx.last_meter_ts or tx.start_ts, end, "DeviceFault", flags)

    async def _apply_safe(self) -> None:
        want = self.cfg.safe_state == "on"
        try:
            await self.device.set(self.cfg.channel, want)
            st = await self.device.status(self.cfg.channel)
        except DEVICE_ERRORS as exc:
            self._fault(exc)
            return
        self._ok(st)
        if st.on == want:
            self._set_pending_safe(False)
            self._event("relay_safe_state", "info", state=self.cfg.safe_state)

    def _set_pending_safe(self, pending: bool) -> None:
        self._pending_safe = pending
        self.store.put(self._safe_key, pending)

    # -- ending and reporting -----------------------------------------------------------------

    async def _stop(self, tx: Tx, reason: str, flags: list[str]) -> None:
        st: RelayStatus | None = None
        try:
            await self.device.set(self.cfg.channel, False)
            st = await self.device.status(self.cfg.channel)
            self._ok(st)
        except DEVICE_ERRORS as exc:
            self._fault(exc)
        if st is None or st.on:
            flags = flags + ["relay_not_confirmed_off"]
            self._set_pending_safe(True)
            self._event("relay_not_confirmed_off", "error", session=tx.session_id)
        end = (st.energy_wh if st is not None and st.energy_wh is not None and self.cfg.metered
               else tx.last_meter if tx.last_meter is not None else tx.meter_start)
        await self._finish(tx, self.wall(), end, reason, flags)

    async def _finish(self, tx: Tx, stop_ts: datetime, meter_stop: Decimal, reason: str,
                      flags: list[str]) -> None:
        all_flags = list(tx.flags) + flags
        if meter_stop < tx.meter_start:
            all_flags.append("meter_decreased")
        self.store.stop_tx(tx.id, stop_ts=stop_ts, meter_stop=meter_stop, reason=reason,
                           flags=all_flags)
        stored = self.store.tx(tx.id)
        assert stored is not None
        log.info("point.stopped", point=self.cfg.id, session=tx.session_id, reason=reason,
                 energy_wh=str(meter_stop - tx.meter_start), flags=sorted(set(all_flags)))
        self._below_since, self._armed = None, False
        await self._report(stored)

    async def _report(self, tx: Tx) -> None:
        payload = session_record(self.store, tx).to_payload()
        await asyncio.to_thread(self.sink.append, STREAM_SESSIONS, [payload])
        self.store.mark_reported(tx.id, tx.status)

    # -- small helpers -----------------------------------------------------------------------

    def _energy(self, st: RelayStatus) -> Decimal:
        return st.energy_wh if self.cfg.metered and st.energy_wh is not None else Decimal(0)

    def _meter_value(self, tx: Tx, ts: datetime, st: RelayStatus) -> None:
        rows = []
        if self.cfg.metered and st.energy_wh is not None:
            rows.append((ts, ENERGY, "", "", st.energy_wh, "Wh"))
        if self.cfg.metered and st.power_w is not None:
            rows.append((ts, POWER, "", "", st.power_w, "W"))
        if rows:
            self.store.add_meter_values(tx.id, rows)

    def _ok(self, st: RelayStatus) -> None:
        self.last, self.last_ok, self.last_error = st, self.clock(), None

    def _fault(self, exc: BaseException) -> None:
        if self.last_error is None:
            log.warning("point.device_failed", point=self.cfg.id, error=str(exc))
        self.last_error = str(exc)

    def _event(self, kind: str, severity: str, **fields: Any) -> None:
        log.info("point." + kind, point=self.cfg.id, **fields)
        try:
            self.sink.append_event(kind, severity=severity, point=self.cfg.id, **fields)
        except Exception:  # an event lost is logged; the session itself is not at stake
            log.exception("point.event_not_buffered", kind=kind)

    def health(self) -> dict[str, Any]:
        tx = self.tx
        return {
            "point": self.cfg.id, "kind": self.cfg.kind, "device": self.cfg.device,
            "channel": self.cfg.channel, "reader": self.cfg.reader,
            "relay": None if self.last is None else ("on" if self.last.on else "off"),
            "power_w": _plain(self.last.power_w if self.last else None),
            "energy_wh": _plain(self.last.energy_wh if self.last else None),
            "state": "fault" if self.last_error else "session" if tx else "idle",
            "last_error": self.last_error,
            "safe_state_pending": self._pending_safe,
            "session": None if tx is None else {
                "id": tx.session_id, "badge": tx.badge, "start": tx.start_ts.isoformat(),
                "energy_wh": _plain((tx.last_meter or tx.meter_start) - tx.meter_start)},
        }


def _plain(d: Decimal | None) -> str | None:
    """Decimal as people write it: 3000, not 3E+3."""
    return None if d is None else f"{d:f}"
