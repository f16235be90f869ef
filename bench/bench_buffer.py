"""Buffer ingest rate vs raw sqlite3.executemany into the same schema, in one run.

Both write the same readings in transactions of one poll cycle (--cycle rows each), WAL,
synchronous=FULL. The raw side gets its rows pre-serialized and its sequence numbers for
free; ours pays for JSON encoding, sequence allocation and the cap check.

    .venv/bin/python bench/bench_buffer.py [--rows 200000] [--cycle 100]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sitegate.gateway.buffer import MIGRATIONS, Buffer
from sitegate.sync.protocol import Reading


def readings(n: int) -> list[Reading]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [Reading(f"m{i % 100}", t0 + timedelta(seconds=900 * (i // 100)), "1-0:1.8.0",
                    Decimal(i) / 100, "kWh", read_at=t0) for i in range(n)]


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


def ours(path: Path, rows: list[Reading], cycle: int) -> float:
    buf = Buffer(path, max_bytes=10 * 1024**3)
    start = time.perf_counter()
    for batch in itertools.batched(rows, cycle) if hasattr(itertools, "batched") else (
            rows[i:i + cycle] for i in range(0, len(rows), cycle)):
        buf.append_readings(batch)
    took = time.perf_counter() - start
    buf.close()
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--cycle", type=int, default=100)
    args = ap.parse_args()
    rows = readings(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        t_raw = raw(Path(tmp) / "raw.db", rows, args.cycle)
        t_ours = ours(Path(tmp) / "ours.db", rows, args.cycle)
    r_raw, r_ours = args.rows / t_raw, args.rows / t_ours
    print(f"{args.rows} readings, {args.cycle} per transaction (one poll cycle), WAL, FULL sync")
    print(f"raw executemany (pre-serialized)  {r_raw:>10,.0f} rows/s")
    print(f"sitegate Buffer.append_readings   {r_ours:>10,.0f} rows/s   "
          f"({r_ours / r_raw:.0%} of raw; target >= 50%)")


if __name__ == "__main__":
    main()
