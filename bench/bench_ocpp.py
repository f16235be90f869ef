"""OCPP central system under load: 200 charge points sending MeterValues every 10 s.

    .venv/bin/python bench/bench_ocpp.py [--chargers 200] [--interval 10] [--duration 60]

Runs the same simulated fleet (sitegate.ocpp_server.simulator, in this process) twice,
each time against a server in its own process so its CPU and memory are its own:
1. sitegate's CentralSystem (state file, lenient parsing, real SQLite buffer as sink);
2. a bare ``ocpp`` library server that acknowledges and stores nothing.
Prints handling latency (MeterValues round trip seen by the charger) p50/p99, the server's
CPU (share of one core) and peak RSS, side by side with the limits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchkit import free_port, quiet_logs, status_mb

LIMITS = {"p50_ms": 20.0, "p99_ms": 100.0, "p99_all_ms": 1000.0, "max_all_ms": 5000.0,
          "cpu_pct": 25.0, "rss_mb": 150.0}


# -- the servers (run in a child process) ------------------------------------------------------

async def serve_sitegate(port: int, workdir: str) -> None:
    from sitegate.common.sitefile_ocpp import OcppConfig
    from sitegate.gateway.buffer import Buffer
    from sitegate.ocpp_server.service import CentralSystem

    # The simulated fleet is unlisted and comes from one address: the admission limits
    # for unknown chargers (a few, four per address) would refuse all but four.
    cfg = OcppConfig(host="127.0.0.1", port=port, security={"unknown_chargers": "accept"},
                     badges=[{"id": "04A23BC1"}],
                     limits={"max_connections": 2000, "max_pending": 2000,
                             "max_pending_per_address": 2000})
    buf = Buffer(Path(workdir) / "buffer.db")
    cs = CentralSystem(cfg, buf, str(Path(workdir) / "ocpp.db"))
    await cs.start()
    print("READY", flush=True)
    await asyncio.Event().wait()


async def serve_bare(port: int, workdir: str) -> None:
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from ocpp.v16.enums import Action
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    ids = iter(range(1, 1 << 30))

    class Bare(ChargePoint):
        @on(Action.boot_notification)
        def on_boot(self, **kw: Any) -> Any:
            return call_result.BootNotification(
                current_time=datetime.now(UTC).isoformat(), interval=300, status="Accepted")

        @on(Action.start_transaction)
        def on_start(self, **kw: Any) -> Any:
            return call_result.StartTransaction(transaction_id=next(ids),
                                                id_tag_info={"status": "Accepted"})

        @on(Action.meter_values)
        def on_meter(self, **kw: Any) -> Any:
            return call_result.MeterValues()

    async def handler(ws: Any) -> None:
        try:
            await Bare(ws.request.path.rsplit("/", 1)[-1], ws).start()
        except ConnectionClosed:
            pass

    async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6"]):  # type: ignore
        print("READY", flush=True)
        await asyncio.Event().wait()


# -- measuring ---------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(kind: str, n: int, interval: float, duration: float) -> dict[str, float]:
    from sitegate.ocpp_server.simulator import run_fleet

    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port),
                                 "--dir", workdir], stdout=subprocess.PIPE, text=True,
                                env=os.environ | {"PYTHONUNBUFFERED": "1"})
        try:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "READY":
                raise RuntimeError(f"{kind} server did not start")
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            lat = asyncio.run(run_fleet(f"ws://127.0.0.1:{port}/ocpp/", n, interval=interval,
                                        duration=duration, prefix=kind[:3].upper()))
            cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
            rss = status_mb(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(10)
    # Steady state: after the first interval, when every charger has booted and started its
    # session (the boot storm of a gateway restart is shown separately).
    lat_ms = sorted(x * 1000 for _, x in lat)
    steady = sorted(x * 1000 for t, x in lat if t >= interval * 1.5)
    return {"messages": len(lat_ms), "p50_ms": statistics.median(steady),
            "p99_ms": pct(steady, 99), "p99_all_ms": pct(lat_ms, 99),
            "max_all_ms": lat_ms[-1], "cpu_pct": cpu, "rss_mb": rss}


def pct(sorted_ms: list[float], p: int) -> float:
    return sorted_ms[max(0, int(len(sorted_ms) * p / 100) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chargers", type=int, default=200)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--serve", choices=["sitegate", "bare"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        quiet_logs()
        server = serve_sitegate if args.serve == "sitegate" else serve_bare
        asyncio.run(server(args.port, args.dir))
        return 0
    print(f"{args.chargers} charge points, MeterValues every {args.interval:g} s, "
          f"{args.duration:g} s per server, {os.cpu_count()} cores")
    results = {k: measure(k, args.chargers, args.interval, args.duration)
               for k in ("sitegate", "bare")}
    print(f"{'':24}{'sitegate':>12}{'bare ocpp':>12}{'limit':>10}")
    print(f"{'MeterValues handled':24}{results['sitegate']['messages']:>12.0f}"
          f"{results['bare']['messages']:>12.0f}{'':>10}")
    for key, label in [("p50_ms", "steady p50 (ms)"), ("p99_ms", "steady p99 (ms)"),
                       ("p99_all_ms", "incl. boot p99 (ms)"), ("max_all_ms", "incl. boot max (ms)"),
                       ("cpu_pct", "server CPU (% core)"), ("rss_mb", "server peak RSS (MB)")]:
        s, b = results["sitegate"][key], results["bare"][key]
        verdict = "ok" if s <= LIMITS[key] else "OVER"
        print(f"{label:24}{s:>12.1f}{b:>12.1f}{LIMITS[key]:>10.0f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
