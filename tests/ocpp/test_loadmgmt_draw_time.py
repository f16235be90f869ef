"""The base load is the main meter minus what the chargers drew when the meter was read.

A car that stops right after a main meter reading is still in that reading; its draw must
still be subtracted from it, or the base load looks that much higher and the cars that stay
are cut back instead of getting its share (seen in ``sitegate demo``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

from ocpp_helpers import central, charging, make_cfg, run, until

from sitegate.ocpp_server.simulator import SimCharger16, close


class MainMeter:
    def __init__(self) -> None:
        self.amps = (D(0), D(0), D(0))
        self.at = datetime.now(UTC)

    def __call__(self) -> tuple[tuple[D, ...], datetime]:
        return self.amps, self.at


def tx_limit(sim: SimCharger16) -> D | None:
    tx = [p for p in sim.got.profiles if p["charging_profile_purpose"] == "TxProfile"]
    return D(str(tx[-1]["charging_schedule"]["charging_schedule_period"][0]["limit"])) \
        if tx else None


def test_a_car_leaving_after_the_meter_read_leaves_its_share_to_the_other(tmp: Path) -> None:
    meter = MainMeter()
    cfg = make_cfg(charge_points=[{"id": "EV0", "max_current": 16},
                                  {"id": "EV1", "max_current": 16}],
                   load_management={"enabled": True, "connection_limit": 32,
                                    "safety_margin": 2, "min_current": 6,
                                    "interval": 3600})

    async def scenario() -> None:
        async with central(tmp, cfg, main_meter_currents=meter) as (cs, _buf, url):
            sims, tasks, txs = await charging(url, "EV0", "EV1")
            # Both draw 10 A; then the meter reads 10 A base load + 20 A of cars
            # (32 A connection less a 2 A margin: 20 A shared).
            for sim, tx in zip(sims, txs, strict=True):
                await sim.meter(1, tx, 100, D(10))
            meter.amps, meter.at = (D(30), D(30), D(30)), datetime.now(UTC)
            cs.core.on_change()
            await until(lambda: [tx_limit(s) for s in sims] == [D(10), D(10)])

            # EV0 leaves before the next reading: 32 - 2 - 10 base = 20 A for EV1 alone.
            await sims[0].stop_tx(txs[0], 200)
            await until(lambda: tx_limit(sims[1]) == D(16))
            assert cs.load.last["headroom"] == {"1": "22", "2": "22", "3": "22"}
            for sim, task in zip(sims, tasks, strict=True):
                await close(sim, task)
    run(scenario())
