"""``sitegate demo``: a whole site on one machine, no hardware, no configuration.

Simulated meters (pymodbus servers serving the device profiles) on a simulated
RS485-Ethernet converter, and the real daemon polling them into a real buffer. Each part
of the product adds its simulated devices here as it lands.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
from pathlib import Path
from typing import Any

from sitegate.drivers.modbus.simulator import ModbusSimulator
from sitegate.gateway.config import parse_config
from sitegate.gateway.daemon import Daemon
from sitegate.gateway.logging_setup import configure

DEMO_METERS = [  # (unit, profile, meter id, billing point)
    (1, "eastron_sdm630", "main", "Grid connection"),
    (2, "eastron_sdm630", "pv", "PV inverter"),
    (3, "eastron_sdm630", "apt-1", "Apartment 1"),
    (4, "eastron_sdm630", "apt-2", "Apartment 2"),
    (5, "eastron_sdm630", "apt-3", "Apartment 3"),
    (6, "eastron_sdm630", "common", "Common areas"),
]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="simulated site: meters and the daemon on this machine")
    p.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    p.add_argument("--interval", type=int, default=5, help="poll interval in seconds")
    p.add_argument("--dir", default=None, help="keep the buffer here (default: a temp dir)")
    p.set_defaults(func=cmd_demo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_config(workdir: Path, modbus_port: int, interval: int) -> str:
    meters = "".join(
        f'[[meters]]\nid = "{mid}"\nbus = "converter"\nunit = {unit}\nprofile = "{prof}"\n'
        f'interval = {interval}\nbilling_point = "{label}"\n\n'
        for unit, prof, mid, label in DEMO_METERS
    )
    return (
        f'gateway_id = "demo-gw"\n\n[storage]\npath = "{workdir}/buffer.db"\n\n'
        f'[health]\nsocket = "{workdir}/sitegate.sock"\n\n'
        f'[[buses]]\nname = "converter"\ntimeout = 0.5\n'
        f'tcp = {{ host = "127.0.0.1", port = {modbus_port}, framing = "rtu-over-tcp" }}\n\n'
        + meters
    )


async def _show(daemon: Daemon, every: float) -> None:
    """Print the newest values as they arrive: what an installer wants to see."""
    shown: dict[str, str] = {}
    while True:
        await asyncio.sleep(every)
        printed = False
        rows: dict[str, dict[str, Any]] = {}
        for (meter, quantity), r in daemon.latest.items():
            rows.setdefault(meter, {})[quantity] = r
        for meter in sorted(rows):
            q = rows[meter]
            energy = q.get("1-0:1.8.0")
            power = q.get("1-0:16.7.0")
            if energy is None or shown.get(meter) == energy.ts.isoformat():
                continue
            shown[meter] = energy.ts.isoformat()
            printed = True
            print(f"{energy.ts:%H:%M:%S}  {meter:<8} import {energy.value:>12} kWh"
                  + (f"   power {power.value:>10} W" if power else ""), flush=True)
        if printed and daemon.buffer is not None:
            s = daemon.buffer.stats()["streams"]["readings"]
            print(f"          buffer: {s['rows']} readings, {s['unacknowledged']} "
                  "waiting for the cloud", flush=True)


async def run_demo(workdir: Path, duration: float | None, interval: int) -> int:
    port = _free_port()
    sim = ModbusSimulator([(u, p) for u, p, _, _ in DEMO_METERS], seed=1)
    await sim.start_tcp("127.0.0.1", port, "rtu-over-tcp")
    sim.run_clock(1.0)
    text = demo_config(workdir, port, interval)
    (workdir / "site.toml").write_text(text)
    daemon = Daemon(parse_config(text, "demo"))
    print(f"sitegate demo: {len(DEMO_METERS)} simulated meters on 127.0.0.1:{port} "
          f"(RTU over TCP); buffer and config in {workdir}\n"
          f"  try: sitegate status -c {workdir}/site.toml\n", flush=True)
    run = asyncio.create_task(daemon.run())
    show = asyncio.create_task(_show(daemon, max(1.0, interval / 2)))
    try:
        if duration is not None:
            done, _ = await asyncio.wait({run}, timeout=duration)
            if not done:
                daemon.request_stop()
        return await run
    finally:
        show.cancel()
        await sim.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    configure("warning")
    if args.dir:
        workdir = Path(args.dir)
        workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run_demo(workdir, args.duration, args.interval))
    with tempfile.TemporaryDirectory(prefix="sitegate-demo-") as tmp:
        return asyncio.run(run_demo(Path(tmp), args.duration, args.interval))
