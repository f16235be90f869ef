"""Buffer ingest through the daemon's production path vs raw sqlite3.executemany, in one run.

Ours is what the daemon runs: each poll cycle handed to the one writer
(``Writer.submit_cycle``, as ``Daemon.commit`` does) in an event loop, cycle by cycle, the
next one handed over once the previous is written (as in the field, where the disk keeps up
with the buses: one transaction per cycle). It pays for serializing the Reading objects,
the queue, the hop to the writer thread, sequence allocation, the writer mark and the cap
check. The raw side gets its rows pre-serialized and its sequence numbers for free. Both:
WAL, synchronous=FULL, one transaction per cycle, the same schema.

A second figure (not compared to the limit) hands all cycles over at once, as after a disk
that was full: the writer then puts several cycles in one transaction.

The disk's fsync dominates both and varies a lot on a shared machine, so the two run in
alternating rounds and the best round of each is compared.

    .venv/bin/python bench/bench_buffer.py [--rows 100000] [--cycle 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sitegate.gateway.buffer import MIGRATIONS, Buffer
from sitegate.gateway.writer import Writer, spill_path
from sitegate.sync.protocol import Reading

LIMIT = 0.5  # ours must keep at least this share of raw


def readings(n: int) -> list[Reading]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [Reading(f"m{i % 100}", t0 + timedelta(seconds=900 * (i // 100)), "1-0:1.8.0",
                    Decimal(i) / 100, "kWh", read_at=t0) for i in range(n)]


def cycles(rows: list[Reading], size: int) -> list[list[Reading]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def raw(path: Path, rows: list[Reading], cycle: int) -> float:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.executescript(MIGRATIONS[0])
    prepared = [("readings", i + 1, r.ts.isoformat(), json.dumps(r.to_dict()))
                for i, r in enumerate(rows)]
    start = time.perf_counter()
    for i in range(0, len(prepared), cycle):
        con.execute("BEGIN")
        con.executemany("INSERT INTO entries VALUES (?,?,?,?)", prepared[i:i + cycle])
        con.execute("COMMIT")
    took = time.perf_counter() - start
    con.close()
    return took


async def _production(path: Path, batches: list[list[Reading]], wait_each: bool) -> float:
    buf = Buffer(path, max_bytes=10 * 1024**3)
    written = asyncio.Event()
    writer = Writer(buf, max_pending_bytes=2 * 1024**3, spill=spill_path(path),
                    on_written=written.set)
    writer.start()
    start = time.perf_counter()
    for batch in batches:
        written.clear()
        writer.submit_cycle(batch, [])
        if wait_each:
            await written.wait()
    await writer.close()  # the last write (nothing left when waiting for each)
    took = time.perf_counter() - start
    assert writer.lost_cycles == 0 and buf.last_seq("readings") == sum(map(len, batches))
    buf.close()
    return took


def ours(path: Path, rows: list[Reading], cycle: int, wait_each: bool = True) -> float:
    return asyncio.run(_production(path, cycles(rows, cycle), wait_each))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--cycle", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rows = readings(args.rows)
    t_raw = t_ours = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            t_raw = min(t_raw, raw(Path(tmp) / f"raw{n}.db", rows, args.cycle))
            t_ours = min(t_ours, ours(Path(tmp) / f"ours{n}.db", rows, args.cycle))
        t_burst = ours(Path(tmp) / "burst.db", rows, args.cycle, wait_each=False)
    r_raw, r_ours, r_burst = (args.rows / t for t in (t_raw, t_ours, t_burst))
    share = r_ours / r_raw
    print(f"{args.rows} readings, {args.cycle} per poll cycle, WAL, FULL sync, "
          f"best of {args.rounds} alternating rounds")
    print(f"raw executemany (pre-serialized), a transaction per cycle  {r_raw:>9,.0f} rows/s")
    print(f"sitegate writer, cycle by cycle (production path)           {r_ours:>9,.0f} rows/s"
          f"   ({share:.0%} of raw; target >= {LIMIT:.0%})")
    print(f"sitegate writer, all cycles handed over at once (backlog)   {r_burst:>9,.0f} rows/s")
    return 0 if share >= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
