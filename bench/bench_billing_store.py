"""Loading a month of 15-min readings from the store (``source.load_readings``) for sites of
N meters: time and memory, the part ``bench_billing.py`` leaves out.

    .venv/bin/python bench/bench_billing_store.py [SIZES...]   (default 100 1000)

Each size runs in its own process on a fresh SQLite file: N meters x 2,977 readings (one
register each) are written through the store's table definition, then loaded the way
``bill`` loads them. Reported: rows, load time, resident memory before and after the load
(peak), and the growth per reading.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(n: int) -> dict:
    from sitegate.cloud.billing.periods import grid_for, parse_period
    from sitegate.cloud.billing.sitemodel import parse_site
    from sitegate.cloud.billing.source import load_readings
    from sitegate.cloud.store.db import make_engine, upgrade
    from sitegate.cloud.store.tables import readings

    ids = [f"m{j:05d}" for j in range(n)]
    model = parse_site({
        "site": {"id": "bench", "name": "Bench", "gateways": ["gw"],
                 "creditor": {"name": "X", "pcode": "8000", "city": "Zürich",
                              "iban": "CH44 3199 9123 0008 8901 2"}},
        "buildings": [{"id": "b", "name": "B"}],
        "meters": [{"id": i, "gateway": "gw"} for i in ids],
        "billing_points": [], "accounts": [], "tariffs": [],
    })
    grid = grid_for(parse_period("2026-01"), model.tz)
    with tempfile.TemporaryDirectory() as tmp:
        url = str(Path(tmp) / "cloud.db")
        upgrade(url)
        engine = make_engine(url)
        recv = datetime(2026, 2, 1, tzinfo=UTC)
        stamps = [datetime.fromtimestamp(grid.start + k * 900, UTC) for k in range(grid.n + 1)]
        seq = 0
        with engine.begin() as conn:
            for j, mid in enumerate(ids):
                rows = []
                for k, ts in enumerate(stamps):
                    seq += 1
                    rows.append({"gateway_id": "gw", "seq": seq, "meter_id": mid, "ts": ts,
                                 "quantity": "1-0:1.8.0",
                                 "value": f"{1000 + j + k * 0.25:.3f}", "unit": "kWh",
                                 "quality": "good", "flags": "[]", "received_at": recv})
                conn.execute(readings.insert(), rows)
        before = rss_mb()
        t0 = time.perf_counter()
        with engine.connect() as conn:
            loaded = load_readings(conn, model, grid.start, grid.end)
        dt = time.perf_counter() - t0
        after = rss_mb()
        count = sum(len(r) for regs in loaded.values() for r in regs.values())
        engine.dispose()
    return {"meters": n, "rows": count, "seconds": round(dt, 2),
            "rss_before_mb": round(before), "peak_rss_mb": round(after),
            "bytes_per_reading": round((after - before) * 1024 * 1024 / count, 1)}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(one(int(sys.argv[2]))))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000]
    print(f"{'meters':>7} {'readings':>10} {'load s':>7} {'us/reading':>10} "
          f"{'RSS before MB':>13} {'peak RSS MB':>11} {'B/reading':>9}")
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out)
        print(f"{n:>7} {r['rows']:>10} {r['seconds']:>7.2f} "
              f"{1e6 * r['seconds'] / r['rows']:>10.2f} {r['rss_before_mb']:>13} "
              f"{r['peak_rss_mb']:>11} {r['bytes_per_reading']:>9}", flush=True)


if __name__ == "__main__":
    main()
