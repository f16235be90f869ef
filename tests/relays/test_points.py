"""Local RFID relay points end to end in one process, against simulators speaking the real
protocols (Shelly RPC over HTTP/WebSocket with digest auth, Modbus coils and registers),
with the real state file and the real buffer: sessions by badge, their ends, refusals,
faults, and the restart that closes a session once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from relay_helpers import ANNA, BEN, BLOCKED, Clock, badge_list, modbus_rig, point, shelly_rig

from sitegate.drivers.relays.shelly import ShellyClient
from sitegate.drivers.relays.shelly_sim import ShellySimulator
from sitegate.gateway.buffer import Buffer
from sitegate.gateway.points import Point
from sitegate.ocpp_server.state import StateStore


def reports(buffer: Buffer) -> list[dict[str, Any]]:
    return [e.data() for e in buffer.pending("sessions")]


def sessions(buffer: Buffer) -> list[dict[str, Any]]:
    """The final reports (a started session is reported running first)."""
    return [s for s in reports(buffer) if s["status"] == "completed"]


def events(buffer: Buffer) -> list[dict[str, Any]]:
    return [e.data() for e in buffer.pending("events")]


def test_laundry_session_ends_when_the_programme_ends(tmp_path: Path) -> None:
    """Anna's badge (written 04:a2:3b:c1 in the list, read 04a23bc1) starts the machine on a
    Shelly with authentication over HTTP; 2000 W for 45 min = 1500 Wh; then the power stays
    at 3 W (< 10 W) for the configured 120 s: the session ends by itself, relay off."""
    async def run() -> None:
        async with shelly_rig(tmp_path, password="pw", transport="http") as r:
            sim, buffer, clock = r.sim, r.buffer, Clock()
            p = Point(point(stop_below_w=10, stop_after=120), r.device, badge_list(), r.store,
                      buffer, clock=clock)
            sim.switches[0].energy_wh = Decimal("5000.5")  # the meter's register before
            assert (await p.present("04a23bc1"))["result"] == "started"
            assert sim.switches[0].on
            await p.poll()  # the machine has not started drawing: not armed yet
            sim.switches[0].load_w = Decimal(2000)
            await p.poll()  # 2000 W: armed
            sim.advance(2700)  # 45 min x 2000 W = 1500 Wh
            sim.switches[0].load_w = Decimal(3)  # programme over, standby
            await p.poll()  # below since now
            clock.t += 119
            await p.poll()
            assert sim.switches[0].on and p.tx is not None  # 119 s: not yet
            clock.t += 1
            await p.poll()  # 120 s below 10 W: ended
            assert not sim.switches[0].on and p.tx is None
            (s,) = sessions(buffer)
            assert (s["kind"], s["badge"], s["account"], s["status"], s["stop_reason"]) == \
                ("laundry", ANNA, "anna", "completed", "PowerDrop")
            # 5000.5 -> 6500.5 Wh (the standby's 3 W over no simulated time adds nothing)
            assert (s["meter_start_wh"], s["meter_stop_wh"], s["energy_wh"]) == \
                ("5000.5", "6500.5", "1500.0")
            assert s["charge_point"] == "wash-1" and s["session_id"].startswith("wash-1-L")
            assert s["flags"] == []
            assert sim.auth_failures == 0
            # Reported running at the start, completed at the end: one session id.
            assert [(r["session_id"], r["status"]) for r in reports(buffer)] == [
                (s["session_id"], "running"), (s["session_id"], "completed")]

    asyncio.run(run())


def test_ebike_session_ended_by_second_presentation(tmp_path: Path, free_port: int) -> None:
    """Ben's badge on an eBike outlet behind a three-phase relay meter (Modbus): 250 W for
    2 h = 500 Wh; a different badge meanwhile changes nothing; Ben's badge again ends it."""
    async def run() -> None:
        async with modbus_rig(tmp_path, free_port, (3, "relay_meter_3ph")) as r:
            buffer = r.buffer
            p = Point(point(id="bike-1", kind="ebike", channel=1), r.device[3], badge_list(),
                      r.store, buffer)
            dev = r.sim.devices[3]
            dev.load_w = {1: Decimal(250)}
            assert (await p.present(BEN))["result"] == "started"
            assert dev.coils[0]
            dev.advance(7200)
            await p.poll()
            assert (await p.present(ANNA))["result"] == "busy"
            assert dev.coils[0]
            assert (await p.present(BEN))["result"] == "stopped"
            assert not dev.coils[0]
            (s,) = sessions(buffer)
            assert (s["kind"], s["account"], s["stop_reason"], s["energy_wh"], s["flags"]) == \
                ("ebike", "ben", "Local", "500.0", [])
            measurands = {v["measurand"] for v in s["meter_values"]}
            assert measurands == {"Energy.Active.Import.Register", "Power.Active.Import"}

    asyncio.run(run())


def test_unknown_and_blocked_badges_leave_the_relay_off(tmp_path: Path) -> None:
    async def run() -> None:
        async with shelly_rig(tmp_path, transport="ws") as r:
            sim, buffer = r.sim, r.buffer
            p = Point(point(), r.device, badge_list(), r.store, buffer)
            assert await p.present("11223344") == {"result": "refused", "badge": "11223344",
                                                    "status": "Invalid"}
            assert (await p.present(BLOCKED.lower()))["status"] == "Blocked"
            assert not sim.switches[0].on and "Switch.Set" not in sim.calls
            assert sessions(buffer) == []
            refused = [(e["kind"], e["badge"], e["status"]) for e in events(buffer)]
            assert refused == [("badge_refused", "11223344", "Invalid"),
                               ("badge_refused", BLOCKED, "Blocked")]

    asyncio.run(run())


def test_relay_that_does_not_confirm_closes_the_session_flagged(tmp_path: Path,
                                                                 free_port: int) -> None:
    """The 4-relay module's contactor on channel 2 does not pull in (its auxiliary contact
    stays open): the session is closed at once, flagged, not billed energy, coil off."""
    async def run() -> None:
        async with modbus_rig(tmp_path, free_port, (1, "io_4relay_4di")) as r:
            sim, buffer = r.sim, r.buffer
            p = Point(point(channel=2, metered=False), r.device[1], badge_list(), r.store,
                      buffer)
            sim.devices[1].stuck.add(2)
            assert (await p.present(ANNA))["result"] == "fault"
            assert sim.devices[1].coils[1] is False  # safe state: off
            (s,) = sessions(buffer)
            assert s["status"] == "completed" and s["stop_reason"] == "DeviceFault"
            assert s["flags"] == ["relay_not_confirmed", "unmetered"]
            assert s["energy_wh"] == "0"
            # The contactor repaired: the next badge starts normally (fixed price per use).
            sim.devices[1].stuck.clear()
            assert (await p.present(ANNA))["result"] == "started"
            assert (await p.present(ANNA))["result"] == "stopped"
            assert [x["flags"] for x in sessions(buffer)] == [
                ["relay_not_confirmed", "unmetered"], ["unmetered"]]

    asyncio.run(run())


def test_device_that_stops_answering_closes_the_session(tmp_path: Path) -> None:
    async def run() -> None:
        async with shelly_rig(tmp_path, transport="ws", timeout=0.2) as r:
            sim, buffer, clock = r.sim, r.buffer, Clock()
            sim.switches[0].load_w = Decimal(500)
            p = Point(point(device_timeout=30), r.device, badge_list(), r.store, buffer,
                      clock=clock)
            await p.present(ANNA)
            sim.advance(360)  # 500 W x 6 min = 50 Wh
            await p.poll()
            sim.silent = True
            clock.t += 29
            await p.poll()
            assert p.tx is not None  # 29 s of silence: still running
            clock.t += 1
            await p.poll()
            assert p.tx is None
            (s,) = sessions(buffer)
            assert s["stop_reason"] == "DeviceFault"
            assert s["flags"] == ["device_silent", "relay_state_unknown"]
            assert s["energy_wh"] == "50.0"  # up to the last value read
            assert p.health()["safe_state_pending"]
            sim.silent = False  # back: the safe state is applied at the next poll
            await p.poll()
            assert not sim.switches[0].on and not p.health()["safe_state_pending"]

    asyncio.run(run())


def test_restart_mid_session_closes_it_once(tmp_path: Path) -> None:
    """A point's process dies during a session (its state file and buffer are left as they
    are); the next start switches the relay to its safe state and closes the session once,
    flagged, with the energy drawn meanwhile; a further start closes nothing."""
    async def run() -> None:
        sim = ShellySimulator()
        sim.switches[0].load_w = Decimal(1000)
        port = await sim.start()
        dev = ShellyClient("127.0.0.1", port, timeout=1)
        try:
            buffer = Buffer(tmp_path / "buffer.db")
            store = StateStore(str(tmp_path / "points.db"))
            first = Point(point(), dev, badge_list(), store, buffer)
            assert (await first.present(ANNA))["result"] == "started"
            sim.advance(900)  # 250 Wh, of which the dead process never learnt
            store.close()
            buffer.close()
            for closed in (1, 0):  # two starts after the crash
                buffer = Buffer(tmp_path / "buffer.db")
                store = StateStore(str(tmp_path / "points.db"))
                again = Point(point(), dev, badge_list(), store, buffer)
                assert await again.recover() == closed
                assert not sim.switches[0].on
                store.close()
                buffer.close()
            buffer = Buffer(tmp_path / "buffer.db")
            (s,) = sessions(buffer)
            buffer.close()
            assert (s["status"], s["stop_reason"], s["flags"], s["energy_wh"]) == \
                ("completed", "Reboot", ["closed_after_restart"], "250.0")
        finally:
            await dev.close()
            await sim.stop()

    asyncio.run(run())


def test_report_lost_before_the_buffer_is_resent_with_the_same_id(tmp_path: Path) -> None:
    """The completion was stored but the process died before the buffer committed the
    report: the next start reports it (same session id, so the cloud keeps one)."""
    async def run() -> None:
        class Dead:  # the buffer of a process that died: nothing reaches it
            def append(self, stream: str, payloads: list[dict[str, Any]]) -> None:
                raise OSError("process gone")

            def append_event(self, kind: str, severity: str = "info", **f: Any) -> None:
                pass

        async with shelly_rig(tmp_path) as r:
            dev, store, buffer = r.device, r.store, r.buffer
            p = Point(point(), dev, badge_list(), store, Dead())
            await p.present(ANNA)
            try:
                await p.present(ANNA)
            except OSError:
                pass
            assert sessions(buffer) == []
            again = Point(point(), dev, badge_list(), store, buffer)
            assert await again.recover() == 0
            assert await again.recover() == 0
            (s,) = sessions(buffer)
            assert s["status"] == "completed" and s["stop_reason"] == "Local"
            assert json.loads(json.dumps(s))["flags"] == []

    asyncio.run(run())


def test_max_duration_and_a_relay_switched_off_outside(tmp_path: Path) -> None:
    """An eBike left on the outlet: the session ends at max_duration (its start is stored,
    so the limit holds across polls). A relay someone switched off at the device: the
    session ends at the next poll, flagged."""
    async def run() -> None:
        now = [datetime(2026, 3, 1, 20, tzinfo=UTC)]
        async with shelly_rig(tmp_path, channels=2) as r:
            sim, dev, store, buffer = r.sim, r.device, r.store, r.buffer
            bike = Point(point(id="bike-1", kind="ebike", max_duration=6 * 3600), dev,
                         badge_list(), store, buffer, wall=lambda: now[0])
            wash = Point(point(id="wash-2", channel=1), dev, badge_list(), store, buffer,
                         wall=lambda: now[0])
            await bike.present(BEN)
            await wash.present(ANNA)
            now[0] += timedelta(hours=5, minutes=59)
            await bike.poll()
            assert bike.tx is not None
            sim.switches[1].on = False  # switched off at the device (its button)
            await wash.poll()
            assert wash.tx is None
            now[0] += timedelta(minutes=1)
            await bike.poll()
            assert bike.tx is None and not sim.switches[0].on
            got = {s["charge_point"]: (s["stop_reason"], s["flags"], s["duration_s"])
                   for s in sessions(buffer)}
            assert got == {"wash-2": ("Other", ["relay_switched_off_outside"], 21540),
                           "bike-1": ("MaxDuration", [], 21600)}

    asyncio.run(run())
