"""The installer's bulk tools against their baselines, in one run.

1. ``sitegate meters import`` of N meters (a CSV) next to ``sitegate check-config`` of the
   resulting file: what checking each row and editing the file adds to reading it once.
2. ``sitegate commission`` of a simulated site (M Modbus meters behind one RTU-over-TCP
   converter, K M-Bus meters behind one M-Bus converter, no daemon) next to the same
   meters read once each with the drivers and nothing else, and against the limit: an
   installer waits at most ``LIMIT_S`` for a 100-meter site (scaled to M + K meters).

    python bench/bench_commission.py [--import-rows 1000] [--modbus 40] [--mbus 10]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import ROOT

sys.path.insert(0, str(ROOT))

from tests.conftest import free_tcp_port, wait_port  # noqa: E402

LIMIT_S = 120.0  # seconds for a 100-meter site


def cli(*args: str) -> float:
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", *args],
                         capture_output=True, text=True)
    if res.returncode not in (0, 1):
        raise SystemExit(f"{args[0]} failed: {res.stdout[-500:]} {res.stderr[-500:]}")
    return time.perf_counter() - t


def bench_import(tmp: Path, rows: int) -> None:
    site = tmp / "import.toml"
    site.write_text('gateway_id = "bench"\n[[buses]]\nname = "a"\nserial = { port = '
                    '"/dev/ttyUSB0" }\n')
    csv = tmp / "meters.csv"
    units = [(b, u) for b in range(1 + rows // 247) for u in range(1, 248)][:rows]
    buses = sorted({b for b, _ in units})
    site.write_text('gateway_id = "bench"\n' + "".join(
        f'[[buses]]\nname = "b{b}"\ntcp = {{ host = "10.0.0.{b + 1}", framing = '
        f'"rtu-over-tcp" }}\n' for b in buses))
    csv.write_text("serial,bus,unit,profile,billing_point\n" + "".join(
        f"S{b}-{u},b{b},{u},eastron_sdm630,Unit {b}-{u}\n" for b, u in units))
    took = cli("meters", "import", str(csv), "-c", str(site))
    check = cli("check-config", str(site))
    print(f"meters import of {rows} rows        {took:6.2f} s")
    print(f"check-config of the result (baseline) {check:6.2f} s   "
          f"(import adds {took - check:+.2f} s)")


def bench_commission(tmp: Path, modbus: int, mbus: int) -> None:
    mport, bport = free_tcp_port(), free_tcp_port()
    sim = [sys.executable, "-m", "sitegate.drivers.modbus.simulator", "--tcp", str(mport),
           "--framing", "rtu-over-tcp"]
    for u in range(1, modbus + 1):
        sim += ["--meter", f"{u}:eastron_sdm630"]
    emu = [sys.executable, "-m", "sitegate.drivers.mbus.emulator", "--tcp", str(bport)]
    for a in range(1, mbus + 1):
        emu += ["--meter", f"kamstrup_multical_601:{a}:{10000000 + a}"]
    procs = [subprocess.Popen(sim, stdout=subprocess.PIPE, text=True),
             subprocess.Popen(emu, stdout=subprocess.PIPE, text=True)]
    try:
        assert procs[0].stdout is not None and procs[0].stdout.readline().strip() == "ready"
        wait_port("127.0.0.1", bport, 30)
        site = tmp / "site.toml"
        site.write_text(
            f'gateway_id = "bench"\n[storage]\npath = "{tmp}/buffer.db"\n[health]\n'
            f'socket = "{tmp}/sg.sock"\n'
            f'[[buses]]\nname = "rs485"\ntcp = {{ host = "127.0.0.1", port = {mport}, '
            f'framing = "rtu-over-tcp" }}\n'
            f'[[buses]]\nname = "mbus"\nprotocol = "mbus"\ntcp = {{ host = "127.0.0.1", '
            f'port = {bport} }}\n'
            + "".join(f'[[meters]]\nid = "m{u}"\nbus = "rs485"\nunit = {u}\nprofile = '
                      f'"eastron_sdm630"\n' for u in range(1, modbus + 1))
            + "".join(f'[[meters]]\nid = "h{a}"\nbus = "mbus"\naddress = {a}\nprofile = '
                      f'"kamstrup_multical_601"\n' for a in range(1, mbus + 1)))
        base = asyncio.run(_plain_reads(site))
        took = cli("commission", "-c", str(site), "--out", str(tmp))
        n = modbus + mbus
        limit = LIMIT_S * n / 100
        print(f"plain reads of {n} meters (baseline)     {base:6.2f} s")
        print(f"commission round of {n} meters         {took:6.2f} s   "
              f"(limit {limit:.0f} s: {'met' if took <= limit else 'MISSED'}; "
              f"checks, serials and reports add {took - base:+.2f} s)")
    finally:
        for p in procs:
            p.kill()
            p.wait()


async def _plain_reads(site: Path) -> float:
    from datetime import UTC, datetime

    from sitegate.common.sitefile import load_config
    from sitegate.gateway.buses import make_client, meter_ref

    cfg = load_config(site)
    t = time.perf_counter()

    async def bus(b):  # type: ignore[no-untyped-def]
        client = make_client(b)
        try:
            for m in cfg.meters:
                if m.bus == b.name:
                    await client.read(meter_ref(m), datetime.now(UTC))
        finally:
            await client.close()

    await asyncio.gather(*(bus(b) for b in cfg.buses))
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--import-rows", type=int, default=1000)
    p.add_argument("--modbus", type=int, default=40)
    p.add_argument("--mbus", type=int, default=10)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_import(Path(tmp), args.import_rows)
        bench_commission(Path(tmp), args.modbus, args.mbus)


if __name__ == "__main__":
    main()
