"""Load management must never let the main fuse trip: a safety margin, a reaction at the
next main meter reading, reductions confirmed before raises, only managed draw subtracted.

Chargers are the OCPP 1.6 simulator over real WebSockets. ``Recorder`` chargers write every
SetChargingProfile they receive, and their answer, into one shared book in the order it
happens, so a test can replay which limits were in force at every moment.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp_helpers import central, charging, make_cfg, quiet, run, until

from sitegate.ocpp_server.simulator import SimCharger16, close, connect

LIMIT, MARGIN = D(40), D(2)
SHARED = LIMIT - MARGIN  # with no base load


class MainMeter:
    """Stands in for the Modbus part's live main-meter readings (amps per phase, when)."""

    def __init__(self, *amps: D) -> None:
        self.amps = amps or (D(0), D(0), D(0))
        self.at = datetime.now(UTC)

    def set(self, *amps: D) -> None:
        self.amps, self.at = amps, datetime.now(UTC)

    def __call__(self) -> tuple[tuple[D, ...], datetime]:
        return self.amps, self.at


def cfg(*cps: dict[str, Any]) -> Any:
    return make_cfg(charge_points=list(cps), load_management={
        "enabled": True, "connection_limit": str(LIMIT), "safety_margin": str(MARGIN),
        "min_current": 6, "fallback_current": 8, "interval": 3600})


def tx_limit(sim: SimCharger16) -> D | None:
    """The charger's last TxProfile limit, accepted or not."""
    tx = [p for p in sim.got.profiles if p["charging_profile_purpose"] == "TxProfile"]
    return D(str(tx[-1]["charging_schedule"]["charging_schedule_period"][0]["limit"])) \
        if tx else None


class Recorder(SimCharger16):
    """Writes ('received', cp, A) when a profile arrives and (answer, cp, A) when it answers,
    into a book shared by all chargers; ``slow`` chargers take a few loop turns to answer, so
    a central system that does not wait for the answer would show it."""

    def __init__(self, cp_id: str, ws: Any, book: list[tuple[str, str, D]],
                 slow: bool = False) -> None:
        super().__init__(cp_id, ws)
        self.book = book
        self.slow = slow

    @on(Action16.set_charging_profile)
    async def on_set_charging_profile(self, connector_id: int,
                                      cs_charging_profiles: dict[str, Any]
                                      ) -> result16.SetChargingProfile:
        self.got.profiles.append({"connector": connector_id, **cs_charging_profiles})
        amps = D(str(cs_charging_profiles["charging_schedule"]["charging_schedule_period"][0]
                     ["limit"]))
        self.book.append(("received", self.id, amps))
        if self.slow:
            for _ in range(20):
                await asyncio.sleep(0)
        self.book.append((self.profile_answer, self.id, amps))
        return result16.SetChargingProfile(status=self.profile_answer)


async def recorder(url: str, cp_id: str, book: list[tuple[str, str, D]],
                   slow: bool = False) -> tuple[Recorder, asyncio.Task[Any]]:
    ws = await websockets.connect(url + cp_id, subprotocols=["ocpp1.6"])  # type: ignore[list-item]
    sim = Recorder(cp_id, ws, book, slow)
    return sim, asyncio.create_task(sim.start())


def answered(book: list[tuple[str, str, D]]) -> bool:
    return sum(w == "received" for w, _, _ in book) * 2 == len(book)


async def settled(cs: Any, book: list[tuple[str, str, D]]) -> None:
    """No exchange with a charger left in the background (the after-boot default limit
    lands in the book too), load management idle and every profile it sent answered."""
    await quiet(cs)
    await until(lambda: answered(book))


def replay(book: list[tuple[str, str, D]], start: dict[str, D], shared: D) -> None:
    """Limits in force at every moment never add up to more than ``shared``. Worst case: a
    raise is in force from the moment it arrives, a reduction only once it is accepted."""
    force = dict(start)
    for what, cp, amps in book:
        if (what == "received" and amps > force[cp]) or (what == "Accepted" and amps < force[cp]):
            force[cp] = amps
        assert sum(force.values()) <= shared, (what, cp, amps, force, book)


def test_a_base_load_step_is_reduced_at_the_next_main_meter_reading(tmp: Path) -> None:
    meter = MainMeter()
    config = cfg({"id": "EV0"}, {"id": "EV1"})

    async def scenario() -> None:
        async with central(tmp, config, main_meter_currents=meter) as (cs, _buf, url):
            sims, tasks, txs = await charging(url, "EV0", "EV1")
            await until(lambda: [tx_limit(s) for s in sims] == [SHARED / 2] * 2)  # 19 A
            await quiet(cs)  # a late after-boot wake would make the next pass a full one

            # The cars draw their 19 A; a 6 A load switches on: 44 A on every phase.
            for sim, tx in zip(sims, txs, strict=True):
                await sim.meter(1, tx, 100, SHARED / 2)
            meter.set(D(44), D(44), D(44))
            passes = cs.load.passes
            cs.main_meter_read()  # what the daemon does after the reading (no periodic pass:
            # the interval is an hour)
            await until(lambda: [tx_limit(s) for s in sims] == [D(16), D(16)])  # (38 - 6) / 2
            assert cs.load.last["pass"] == "reduce"
            await until(lambda: cs.load.passes > passes)
            assert cs.load.overloads == 1

            # The load switches off again: 6 A below the threshold. No pass for that (the
            # limits would flap with a base load near the threshold): raising waits for the
            # next full pass.
            for sim, tx in zip(sims, txs, strict=True):
                await sim.meter(1, tx, 200, D(16))
            meter.set(D(32), D(32), D(32))
            cs.main_meter_read()
            assert cs.load.overloads == 1
            cs.core.on_change()  # stands in for the periodic pass
            await until(lambda: [tx_limit(s) for s in sims] == [D(19), D(19)])
            assert cs.load.last["pass"] == "full"
            for sim, task in zip(sims, tasks, strict=True):
                await close(sim, task)
    run(scenario())


def test_reductions_are_accepted_before_any_raise(tmp: Path) -> None:
    """The limits in force never add up to more than the headroom, not even for the moment
    between a raise and the reduction that makes room for it; a rejected reduction keeps its
    old limit in force and the raise is cut to fit beside it."""
    meter = MainMeter()
    config = cfg({"id": "EV0"}, {"id": "EV1"})
    book: list[tuple[str, str, D]] = []

    async def scenario() -> None:
        async with central(tmp, config, main_meter_currents=meter) as (cs, _buf, url):
            ev0, t0 = await recorder(url, "EV0", book)
            ev1, t1 = await recorder(url, "EV1", book, slow=True)
            tx = {}
            for sim in (ev0, ev1):
                await sim.boot()
                tx[sim.id] = (await sim.start_tx(1, "04A23BC1", 0))[0]
            await until(lambda: [tx_limit(ev0), tx_limit(ev1)] == [D(19), D(19)])
            await settled(cs, book)  # the start's passes answered: the book starts clean

            # A technician caps EV1 at 10 A: EV1 goes down to 10, EV0 up to 28. EV0's
            # session is older, so a central system pushing in plan order would raise
            # first; EV1 is slow to answer.
            start = {"EV0": ev0.limit(1, tx["EV0"]), "EV1": ev1.limit(1, tx["EV1"])}
            assert start == {"EV0": D(19), "EV1": D(19)}
            del book[:]
            cs.set_manual_cap("EV1", 1, D(10))
            await until(lambda: [tx_limit(ev0), tx_limit(ev1)] == [D(28), D(10)])
            assert [(w, cp) for w, cp, _ in book] == [
                ("received", "EV1"), ("Accepted", "EV1"),
                ("received", "EV0"), ("Accepted", "EV0")]
            replay(book, start, SHARED)

            # EV1 now rejects profiles: capped at 6 A, it keeps its 10 A, so EV0 may not
            # take the 4 A (its raise to 32 is held at 28).
            start = {"EV0": D(28), "EV1": D(10)}
            del book[:]
            ev1.profile_answer = "Rejected"
            passes = cs.load.passes
            cs.set_manual_cap("EV1", 1, D(6))
            await until(lambda: cs.load.passes > passes)
            assert book == [("received", "EV1", D(6)), ("Rejected", "EV1", D(6))]
            assert ev0.limit(1, tx["EV0"]) == D(28)
            replay(book, start, SHARED)
            await close(ev0, t0)
            await close(ev1, t1)
    run(scenario())


def test_an_unmanaged_relay_box_is_base_load_even_when_it_reports_its_current(
        tmp: Path) -> None:
    """The laundry box on L1 reports 8 A; it is not in the allocation, so its 8 A are not
    taken off the main meter's reading: subtracting them would give the car 8 A too much."""
    meter = MainMeter()
    config = cfg({"id": "EV0"}, {"id": "LAUNDRY", "kind": "laundry", "phases": [1]})

    async def scenario() -> None:
        async with central(tmp, config, main_meter_currents=meter) as (cs, _buf, url):
            box, tb = await connect(url, "LAUNDRY")
            ev, te = await connect(url, "EV0")
            assert isinstance(box, SimCharger16) and isinstance(ev, SimCharger16)
            await box.boot()
            await ev.boot()
            box_tx, _ = await box.start_tx(1, "04A23BC1", 0)
            await box.meter(1, box_tx, 10, D(8))  # 8 A on its phase (L1 of the building)
            ev_tx, _ = await ev.start_tx(1, "04A23BC1", 0)
            await ev.meter(1, ev_tx, 0, D(0))
            # 10 A of apartments on every phase, the washing machine's 8 A on L1.
            meter.set(D(18), D(10), D(10))
            cs.core.on_change()
            # L1: 40 - 2 margin - 18 = 20 A for the car (28 if the box were subtracted).
            await until(lambda: tx_limit(ev) == D(20) and cs.load.last["sessions"] == 1
                        and cs.load.last.get("headroom", {}).get("1") == "22")
            assert cs.load.last["headroom"] == {"1": "22", "2": "30", "3": "30"}
            assert all(p["charging_profile_purpose"] != "TxProfile" for p in box.got.profiles)
            await close(box, tb)
            await close(ev, te)
    run(scenario())


def test_set_limit_lowers_at_once_and_raises_only_through_load_management(tmp: Path) -> None:
    # Two cars share 38 A (19 each). A technician caps EV0 at 10 A: a reduction, pushed at
    # once. Then asks for 25 A: more than in force, so nothing goes out; the next pass (the
    # cap changed) shares 38 A again, 19 each: the raise goes only as far as it fits.
    meter = MainMeter()
    config = cfg({"id": "EV0", "max_current": 32}, {"id": "EV1", "max_current": 32})

    async def scenario() -> None:
        async with central(tmp, config, main_meter_currents=meter) as (cs, _buf, url):
            sims, tasks = [], []
            for cp in ("EV0", "EV1"):
                sim, task = await connect(url, cp)
                assert isinstance(sim, SimCharger16)
                await sim.boot()
                await sim.start_tx(1, "04A23BC1", 0)
                sims.append(sim)
                tasks.append(task)
            await until(lambda: [tx_limit(s) for s in sims] == [SHARED / 2] * 2)

            res = await cs.handle_command("set-limit", {"charge_point": "EV0", "amps": 10})
            assert res["status"] == "Accepted" and tx_limit(sims[0]) == D(10)
            pushed = len(sims[0].got.profiles)
            res = await cs.handle_command("set-limit", {"charge_point": "EV0", "amps": 25})
            assert res["status"] == "Scheduled"
            assert len(sims[0].got.profiles) == pushed  # nothing above the limit in force
            await until(lambda: tx_limit(sims[0]) == D(19) and tx_limit(sims[1]) == D(19))
            for sim, task in zip(sims, tasks, strict=True):
                await close(sim, task)
    run(scenario())
