"""Load management end to end: 10 chargers behind 63 A, profiles pushed over WebSockets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from ocpp_helpers import central, events, make_cfg, run, until

from sitegate.ocpp_server.simulator import SimCharger16, close, connect

N = 10
MARGIN = 2  # A per phase kept free below the 63 A


class MainMeter:
    """Stands in for the Modbus part's live main-meter readings (amps per phase, when)."""

    def __init__(self) -> None:
        self.amps = (D(0), D(0), D(0))
        self.at: datetime | None = datetime.now(UTC)

    def __call__(self) -> tuple[tuple[D, ...], datetime] | None:
        return None if self.at is None else (self.amps, self.at)


def lm_cfg(**lm: Any) -> Any:
    cps = [{"id": f"EV{i}", "max_current": 32 if i % 2 else 16, "priority": 1 if i == 0 else 0}
           for i in range(N)]
    cps.append({"id": "WATT", "max_current": 16})
    cps.append({"id": "BAD", "max_current": 16})
    return make_cfg(charge_points=cps, load_management={
        "enabled": True, "connection_limit": 63, "min_current": 6, "fallback_current": 8,
        "stale_after": 30, "interval": 3600, "safety_margin": MARGIN, **lm})


def latest_limits(sims: list[SimCharger16]) -> dict[str, D]:
    """Each charger's last TxProfile limit (A per phase)."""
    out = {}
    for s in sims:
        tx = [p for p in s.got.profiles if p["charging_profile_purpose"] == "TxProfile"]
        if tx:
            out[s.id] = D(str(tx[-1]["charging_schedule"]["charging_schedule_period"][0]
                              ["limit"]))
    return out


def test_ten_chargers_share_63_a_with_varying_base_load(tmp: Path) -> None:
    meter = MainMeter()

    async def scenario() -> None:
        async with central(tmp, lm_cfg(), main_meter_currents=meter) as (cs, buf, url):
            sims, tasks = [], []
            for i in range(N):
                sim, task = await connect(url, f"EV{i}")
                await sim.boot()
                sims.append(sim)
                tasks.append(task)
            # Every charger got a safe default profile at boot (fallback current).
            await until(lambda: all(s.got.profiles for s in sims))
            assert {p["charging_schedule"]["charging_schedule_period"][0]["limit"]
                    for s in sims for p in s.got.profiles} == {8.0}
            txs = [(await s.start_tx(1, "04A23BC1", 0))[0] for s in sims]

            for base in [D(3), D(20), D("41.5"), D(55), D(10)]:
                # Chargers report what they draw; the meter sees base + chargers.
                drawn = latest_limits(sims)
                for s, tx in zip(sims, txs, strict=True):
                    await s.meter(1, tx, 100, amps=drawn.get(s.id, D(0)))
                total = base + sum(drawn.values(), D(0))
                meter.amps, meter.at = (total, total, total), datetime.now(UTC)
                cs.core.on_change()
                room = D(63) - MARGIN - base  # what is shared

                def settled(room: D = room) -> bool:
                    lim = latest_limits(sims)
                    running = [v for v in lim.values() if v > 0]
                    return (len(lim) == N and sum(lim.values()) <= room
                            and len(running) == min(N, int(room // 6)))
                await until(settled)
                lim = latest_limits(sims)
                assert sum(lim.values()) <= room
                assert all(v == 0 or v >= 6 for v in lim.values())
                assert lim["EV0"] > 0  # the priority charger is never the one paused
                # Fair: unpaused chargers below their own max differ by at most 0.1 A.
                open_share = [v for k, v in lim.items() if v > 0 and k != "EV0"
                              and v < (32 if int(k[2:]) % 2 else 16)]
                if open_share:
                    assert max(open_share) - min(open_share) <= D("0.1")

            # Stale main meter: everybody falls back to the safe current.
            meter.at = datetime.now(UTC) - timedelta(minutes=5)
            cs.core.on_change()
            await until(lambda: set(latest_limits(sims).values()) == {D(8)})
            assert cs.health()["load_management"]["mode"] == "fallback"
            for s, t in zip(sims, tasks, strict=True):
                await close(s, t)
    run(scenario(), timeout=60)


def test_watt_unit_and_rejecting_charger(tmp: Path) -> None:
    meter = MainMeter()

    async def scenario() -> None:
        async with central(tmp, lm_cfg(), main_meter_currents=meter) as (cs, buf, url):
            watt, t1 = await connect(url, "WATT", rate_unit="Power")
            bad, t2 = await connect(url, "BAD", profile_answer="Rejected")
            await watt.boot()
            await bad.boot()
            await until(lambda: bool(watt.got.profiles))
            default = watt.got.profiles[0]["charging_schedule"]
            # 8 A fallback x 230 V x 3 phases, in W as the charger asked.
            assert default["charging_rate_unit"] == "W"
            assert default["charging_schedule_period"][0]["limit"] == 5520.0
            await watt.start_tx(1, "04A23BC1", 0)
            await bad.start_tx(1, "04A23BC1", 0)
            # Boot default and the first TxProfile were rejected (two recomputations may
            # have pushed two); one more recomputation.
            await until(lambda: len(bad.got.profiles) >= 2)
            meter.amps, meter.at = (D(10), D(10), D(10)), datetime.now(UTC)
            cs.core.on_change()
            await until(lambda: "BAD" in cs.health()["profiles_disabled"])
            n_bad = len(bad.got.profiles)
            assert n_bad == 3  # max_rejects, then left alone
            meter.amps = (D(1), D(1), D(1))
            cs.core.on_change()
            await until(lambda: watt.got.profiles[-1]["charging_schedule"]
                        ["charging_schedule_period"][0]["limit"] == 11040.0)  # 16 A
            assert len(bad.got.profiles) == n_bad
            await close(watt, t1)
            await close(bad, t2)
        assert any(e["kind"] == "profile_rejected" and e["charge_point"] == "BAD"
                   for e in events(buf))
    run(scenario())


def test_profiles_on_ocpp201(tmp: Path) -> None:
    meter = MainMeter()
    meter.amps = (D(50), D(50), D(50))  # 13 A spare, 11 A shared (2 A margin)

    async def scenario() -> None:
        async with central(tmp, lm_cfg(), main_meter_currents=meter) as (cs, buf, url):
            sim, task = await connect(url, "EV1", version="2.0.1")
            await sim.boot()
            await until(lambda: bool(sim.got.profiles))
            assert sim.got.profiles[0]["charging_profile_purpose"] == "TxDefaultProfile"
            await sim.event("Started", "t-1", 1, wh=0, badge="04A23BC1")
            await until(lambda: len(sim.got.profiles) == 2)
            p = sim.got.profiles[1]
            assert (p["charging_profile_purpose"], p["transaction_id"]) == ("TxProfile", "t-1")
            assert p["charging_schedule"][0]["charging_schedule_period"][0]["limit"] == 11.0
            await close(sim, task)
    run(scenario())
