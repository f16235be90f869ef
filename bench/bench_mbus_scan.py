"""A scan/read cycle of 20 emulated meters at 2400 baud against the theoretical wire time.

    .venv/bin/python bench/bench_mbus_scan.py

The emulator (another process) serves real recorded frames on one end of a socat
pseudo-terminal pair and hands each byte over when it would have arrived on a 2400 baud
wire. Theory for the same exchanges: every byte 11 bits (8E1) / 2400 baud, plus per answered
request the slave's turnaround (11 bit times) and the idle before the next request (11 bit
times), plus per unanswered request the standard's reply timeout (330 bit times + 50 ms).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

from sitegate.drivers.base import LinkSettings, MeterRef
from sitegate.drivers.mbus import frames as fr
from sitegate.drivers.mbus.client import MbusBusClient
from sitegate.drivers.mbus.link import Timing
from sitegate.drivers.mbus.scan import primary_scan, secondary_search

BAUD = 2400
MODELS = ["kamstrup_multical_601", "landis_gyr_ultraheat_t230", "itron_cyble_m-bus_v1.4_water",
          "siemens_water", "sen_pollutherm"]


def theory(link_stats: tuple[int, int, int, int]) -> float:
    sent, received, requests, silences = link_stats
    answered = requests - silences
    return ((sent + received) * 11 / BAUD + answered * 22 / BAUD
            + silences * fr.reply_timeout(BAUD))


async def measure(client: MbusBusClient, what: str, job) -> None:  # type: ignore[no-untyped-def]
    link = client.link
    before = (link.bytes_sent, link.bytes_received, link.requests, link.silences)
    start = time.perf_counter()
    detail = await job()
    took = time.perf_counter() - start
    after = (link.bytes_sent, link.bytes_received, link.requests, link.silences)
    stats = tuple(a - b for a, b in zip(after, before, strict=True))
    t = theory(stats)  # type: ignore[arg-type]
    print(f"{what:34s} {stats[2]:5d} {stats[3]:6d} {stats[0] + stats[1]:7d} {t:9.2f} s "
          f"{took:9.2f} s {took / t:6.2f}x  {detail}")


async def run(port: str) -> None:
    # Exactly the standard's timing, no retries: what a real 2400 baud bus allows.
    client = MbusBusClient(LinkSettings(serial_port=port, baudrate=BAUD, parity="E",
                                        retries=0), Timing.standard(BAUD))
    print(f"{'20 meters at 2400 baud, 8E1':34s} {'reqs':>5s} {'silent':>6s} {'bytes':>7s} "
          f"{'theory':>11s} {'measured':>11s} {'ratio':>7s}")

    async def scan() -> str:
        found = await primary_scan(client, range(0, 26), identify=False)
        return f"found {len(found)}"

    async def read_all() -> str:
        n = 0
        for a in range(1, 21):
            n += len((await client.read(MeterRef(f"m{a}", "mbus_generic", address=a),
                                        datetime.now(UTC))).readings)
        return f"{n} readings"

    async def search() -> str:
        found = await secondary_search(client)
        return f"found {len(found)}"

    await measure(client, "primary scan 0-25 (SND_NKE)", scan)
    await measure(client, "secondary wildcard search", search)
    await measure(client, "read cycle, 20 meters", read_all)
    await client.close()


def main() -> None:
    socat = subprocess.Popen(["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
                             stderr=subprocess.PIPE, text=True)
    paths: list[str] = []
    assert socat.stderr is not None
    while len(paths) < 2:
        m = re.search(r"PTY is (\S+)", socat.stderr.readline())
        if m:
            paths.append(m.group(1))
    meters = [f"--meter={MODELS[i % len(MODELS)]}:{i + 1}:{10000001 + i * 1111:08d}"
              for i in range(20)]
    emu = subprocess.Popen([sys.executable, "-m", "sitegate.drivers.mbus.emulator", "--pty",
                            paths[1], "--baud", str(BAUD), *meters], stdout=subprocess.PIPE,
                           text=True)
    try:
        assert emu.stdout is not None
        emu.stdout.readline()
        asyncio.run(run(paths[0]))
    finally:
        emu.terminate()
        emu.wait(10)
        socat.terminate()
        socat.wait(10)


if __name__ == "__main__":
    main()
