"""Helpers shared by the OCPP tests (imported by name: conftest puts this folder on the path)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from sitegate.common.sitefile_ocpp import OcppConfig
from sitegate.gateway.buffer import Buffer
from sitegate.ocpp_server.service import CentralSystem
from sitegate.ocpp_server.simulator import SimCharger16, connect


def run(coro: Coroutine[Any, Any, Any], timeout: float = 40) -> Any:
    """Run one scenario on a fresh event loop, with an overall deadline; on a hang, print
    where every task waits (so a deadlock is diagnosable from the test log)."""
    async def guarded() -> Any:
        task = asyncio.ensure_future(coro)
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            for t in asyncio.all_tasks():
                t.print_stack(limit=6)
            task.cancel()
            raise TimeoutError(f"scenario did not finish within {timeout} s")
        return task.result()
    return asyncio.run(guarded())


def make_cfg(**overrides: Any) -> OcppConfig:
    data: dict[str, Any] = {
        "host": "127.0.0.1", "port": 0,
        "charge_points": [
            {"id": "CP1"}, {"id": "CP2"}, {"id": "LAUNDRY1", "kind": "laundry"},
            {"id": "REV1", "badge_format": "hex-reversed"},
        ],
        "badges": [
            {"id": "04:A2:3B:C1", "account": "tenant-7"},
            {"id": "DEADBEEF", "status": "blocked"},
            {"id": "0BADC0DE", "expires": "2020-01-01T00:00:00Z"},
        ],
    }
    data.update(overrides)
    return OcppConfig.model_validate(data)


@contextlib.asynccontextmanager
async def central(tmp: Path, cfg: OcppConfig | None = None, **kw: Any
                  ) -> AsyncIterator[tuple[CentralSystem, Buffer, str]]:
    """A real CentralSystem on a free loopback port with a real SQLite buffer as its sink."""
    buf = Buffer(tmp / "buffer.db")
    cs = CentralSystem(cfg or make_cfg(), buf, str(tmp / "ocpp.db"), **kw)
    await cs.start()
    try:
        yield cs, buf, f"ws://127.0.0.1:{cs.port}/ocpp/"
    finally:
        await cs.stop()
        # The buffer stays open so the test can read what arrived after the stop.


def sessions(buf: Buffer) -> list[dict[str, Any]]:
    return [e.data() for e in buf.pending("sessions", limit=10000)]


def events(buf: Buffer) -> list[dict[str, Any]]:
    return [e.data() for e in buf.pending("events", limit=10000)]


async def until(pred: Any, timeout: float = 10.0) -> None:
    """Wait for a condition (state settles asynchronously); fails the test at the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def charging(url: str, *ids: str, badge: str = "04A23BC1"
                   ) -> tuple[list[SimCharger16], list[asyncio.Task[Any]], list[Any]]:
    """1.6 chargers ``ids`` connected, booted and each with a transaction started (one
    after the other): (simulators, their tasks, transaction ids)."""
    sims, tasks, txs = [], [], []
    for cp in ids:
        sim, task = await connect(url, cp)
        assert isinstance(sim, SimCharger16)
        await sim.boot()
        sims.append(sim)
        tasks.append(task)
        txs.append((await sim.start_tx(1, badge, 0))[0])
    return sims, tasks, txs


async def quiet(cs: CentralSystem) -> None:
    """Every background exchange with the chargers done (after a boot: capabilities, the
    badge list, the default limit; each ends by waking load management) and load management
    idle: what the test does next starts from a settled state, however late those came."""
    await until(lambda: not cs.core._calls and cs.load.idle)
