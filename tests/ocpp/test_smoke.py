from __future__ import annotations

from pathlib import Path

from ocpp_helpers import central, run, sessions

from sitegate.ocpp_server.simulator import close, connect


def test_full_transaction_16(tmp: Path) -> None:
    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            sim, task = await connect(url, "CP1")
            assert await sim.boot() == "Accepted"
            assert await sim.authorize("04a23bc1") == "Accepted"
            tx, status = await sim.start_tx(1, "04-A2-3B-C1", 1000)
            assert status == "Accepted"
            await sim.meter(1, tx, 1500)
            await sim.stop_tx(tx, 2250)
            await close(sim, task)
            s = sessions(buf)
            assert len(s) == 1
            assert s[0]["energy_wh"] == "1250"
    run(scenario())
