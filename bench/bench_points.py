"""Badge to relay: how long a tenant waits at the machine, from the reader's UID to the
relay confirmed on (``Point.present``: badge list, device read, session stored with fsync,
switch, read-back, running report into the buffer), and for the end of a session. Against
the simulators on loopback: Shelly RPC over HTTP and WebSocket with digest authentication,
and a three-phase relay meter on Modbus TCP.

    .venv/bin/python bench/bench_points.py [--sessions 100]

Limit: p99 start below 250 ms (a person at a machine notices half a second; the device's
own switching time comes on top).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import ROOT, free_port, quiet_logs

sys.path.insert(0, str(ROOT / "tests" / "relays"))

from relay_helpers import ANNA, badge_list, modbus_relays, point  # noqa: E402

from sitegate.drivers.relays.shelly import ShellyClient  # noqa: E402
from sitegate.drivers.relays.shelly_sim import ShellySimulator  # noqa: E402
from sitegate.gateway.buffer import Buffer  # noqa: E402
from sitegate.gateway.points import Point  # noqa: E402
from sitegate.ocpp_server.state import StateStore  # noqa: E402

LIMIT_P99_MS = 250.0


async def sessions(device: Any, channel: int, n: int, tmp: Path) -> tuple[list[float], ...]:
    buffer = Buffer(tmp / f"buffer-{id(device)}.db")
    store = StateStore(str(tmp / f"points-{id(device)}.db"))
    p = Point(point(channel=channel), device, badge_list(), store, buffer)
    starts, stops = [], []
    try:
        for _ in range(n):
            t = time.perf_counter()
            assert (await p.present(ANNA))["result"] == "started"
            starts.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            assert (await p.present(ANNA))["result"] == "stopped"
            stops.append((time.perf_counter() - t) * 1000)
    finally:
        store.close()
        buffer.close()
    return starts, stops


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def main(n: int) -> int:
    quiet_logs()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sim = ShellySimulator(password="pw")
        port = await sim.start()
        for transport in ("http", "ws"):
            dev = ShellyClient("127.0.0.1", port, password="pw", transport=transport)
            rows.append((f"shelly {transport} + auth", *await sessions(dev, 0, n, tmp)))
            await dev.close()
        await sim.stop()
        msim, client, relays = await modbus_relays(free_port(), (1, "relay_meter_3ph"))
        rows.append(("modbus relay meter", *await sessions(relays[1], 1, n, tmp)))
        await client.close()
        await msim.stop()
    print(f"{n} sessions each; ms from badge to relay confirmed on (start) and off (stop)")
    print(f"{'device':<24}{'start p50':>10}{'p99':>8}{'stop p50':>10}{'p99':>8}")
    worst = 0.0
    for name, starts, stops in rows:
        worst = max(worst, pct(starts, 0.99))
        print(f"{name:<24}{statistics.median(starts):>10.1f}{pct(starts, 0.99):>8.1f}"
              f"{statistics.median(stops):>10.1f}{pct(stops, 0.99):>8.1f}")
    ok = worst < LIMIT_P99_MS
    print(f"worst start p99 {worst:.1f} ms, limit {LIMIT_P99_MS:.0f} ms: "
          f"{'OK' if ok else 'OVER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=100)
    sys.exit(asyncio.run(main(ap.parse_args().sessions)))
