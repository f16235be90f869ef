"""Daemon resident memory with 100 simulated meters polled every 10 s (target: < 60 MB RSS).

Four simulated RS485-Ethernet converters (RTU over TCP) with 25 SDM630 meters each run in a
separate process; the real daemon runs as its own process; its RSS is sampled from /proc.
For scale, the RSS of a bare Python interpreter that imports pymodbus is shown beside it.

    .venv/bin/python bench/bench_daemon_memory.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import free_port, status_mb


def rss_mb(pid: int) -> float:
    return status_mb(pid, "VmRSS", missing=0.0)  # a process gone: nothing resident


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ['gateway_id = "bench"', f'[storage]\npath = "{tmp}/b.db"',
               f'[health]\nsocket = "{tmp}/s.sock"']
        for bus in range(4):
            port = free_port()
            cmd = [sys.executable, "-m", "sitegate.drivers.modbus.simulator", "--tcp", str(port),
                   "--framing", "rtu-over-tcp"]
            for unit in range(1, 26):
                cmd += ["--meter", f"{unit}:eastron_sdm630"]
                cfg.append(f'[[meters]]\nid = "b{bus}u{unit}"\nbus = "c{bus}"\nunit = {unit}\n'
                           'profile = "eastron_sdm630"\ninterval = 10')
            cfg.append(f'[[buses]]\nname = "c{bus}"\n'
                       f'tcp = {{ host = "127.0.0.1", port = {port}, framing = "rtu-over-tcp" }}')
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            procs.append(p)
        (Path(tmp) / "site.toml").write_text("\n".join(cfg) + "\n")
        bare = subprocess.Popen([sys.executable, "-c",
                                 "import pymodbus.client, time; time.sleep(3600)"])
        daemon = subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c",
                                   f"{tmp}/site.toml", "--log-level", "warning"])
        try:
            samples = []
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                time.sleep(2)
                samples.append(rss_mb(daemon.pid))
            bare_rss = rss_mb(bare.pid)
            rows = subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "buffer",
                                   "stats", "--db", f"{tmp}/b.db", "--json"],
                                  capture_output=True, text=True).stdout
        finally:
            for p in [daemon, bare, *procs]:
                p.terminate()
                p.wait()
    import json

    n = json.loads(rows)["streams"]["readings"]["rows"]
    print(f"100 meters x 13 quantities every 10 s, {args.seconds} s, {n} readings buffered")
    print(f"bare python + pymodbus import   {bare_rss:6.1f} MB RSS")
    print(f"sitegate daemon (max / last)    {max(samples):6.1f} / {samples[-1]:.1f} MB RSS   "
          "(target < 60 MB)")


if __name__ == "__main__":
    main()
