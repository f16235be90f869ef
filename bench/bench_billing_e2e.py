"""Billing a month of 15-min data end to end from the store: ``bill`` (load the readings,
compute, build and store the invoice documents) for a solar community of N billing points,
next to the bare per-register ``SELECT`` of the same rows, in the same run.

    .venv/bin/python bench/bench_billing_e2e.py [--db postgresql://...] [SIZES...]
    (default 1000 on SQLite; with --db a fresh database is made on that server and dropped)

Per size: one process writes the store (N consumer meters and a grid meter, 2,977 readings
a register of January, a quarter hour of all meters per transaction as the ingest stores
them; PostgreSQL through COPY), then a fresh process runs the bare SELECT and then ``bill``
and reports times and its peak RSS (ru_maxrss: the whole billing process). Targets (issue
14): 1,000 from SQLite < 10 s; 10,000 from PostgreSQL < 60 s and < 1 GB.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_billing_store import raw_per_register, store, write_cycles  # noqa: E402

TARGETS = {("sqlite", 1000): (10.0, None), ("postgresql", 10000): (60.0, 1024)}


def model_data(n: int) -> dict:
    ids = [f"bp{j:05d}" for j in range(n)]
    return {
        "site": {"id": "bench", "name": "Bench", "gateways": ["gw"], "grid_meter": "main",
                 "creditor": {"name": "X", "pcode": "8000", "city": "Zürich",
                              "iban": "CH44 3199 9123 0008 8901 2"}},
        "buildings": [{"id": "b", "name": "B"}],
        "meters": [{"id": i, "gateway": "gw"} for i in ids] + [{"id": "main", "gateway": "gw"}],
        "billing_points": [{"id": i, "building": "b", "name": i, "tariff": "t", "owner": "o"}
                           for i in ids],
        "meter_assignments": [{"billing_point": i, "meter": i, "from": "2025-01-01"}
                              for i in ids],
        "accounts": [{"id": "o", "name": "Owner", "kind": "owner"}]
        + [{"id": f"a{i}", "name": i} for i in ids],
        "occupancy": [{"billing_point": i, "account": f"a{i}", "from": "2025-01-01"}
                      for i in ids],
        "tariffs": [{"id": "t", "versions": [{"valid_from": "2025-01-01", "components": [
            {"key": "solar", "label": "Solar", "applies": "solar", "price": "0.18"},
            {"key": "peak", "label": "HT", "applies": "grid", "tou": "peak", "price": "0.31"},
            {"key": "off", "label": "NT", "applies": "grid", "tou": "offpeak", "price": "0.24"}],
            "fees": [{"key": "m", "label": "Messung", "monthly": "6.20"}]}]}],
    }


def write(n: int, url: str) -> float:
    """The store with January's readings; seconds taken."""
    from sitegate.cloud.billing.periods import grid_for, parse_period
    from sitegate.cloud.billing.sitemodel import parse_site
    from sitegate.cloud.billing.sites import save_site
    from sitegate.cloud.store.db import make_engine, upgrade

    upgrade(url)
    engine = make_engine(url)
    model = parse_site(model_data(n))
    grid = grid_for(parse_period("2026-01"), model.tz)
    with engine.begin() as conn:
        save_site(conn, model)
    ids = [f"bp{j:05d}" for j in range(n)]
    pg = url.startswith("postgresql")
    t0 = time.perf_counter()
    s7 = sum(j % 7 for j in range(n))

    def cycles():  # a quarter hour of every meter per transaction
        seq = 0
        for k in range(grid.n + 1):
            ts = datetime.fromtimestamp(grid.start + k * 900, UTC)
            rows = []
            for j, mid in enumerate(ids):  # 0.05-0.11 kWh a quarter hour
                seq += 1
                rows.append((seq, mid, ts, "1-0:1.8.0",
                             f"{1000 + j + k * (0.05 + (j % 7) * 0.01):.3f}"))
            # the grid meter imports 80 % of what the flats use: the rest is solar
            seq += 1
            rows.append((seq, "main", ts, "1-0:1.8.0", f"{k * 0.8 * (n * 0.05 + s7 * 0.01):.3f}"))
            seq += 1
            rows.append((seq, "main", ts, "1-0:2.8.0", "0.000"))
            yield rows

    write_cycles(engine, "gw", cycles())
    if pg:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE readings")
    engine.dispose()
    return time.perf_counter() - t0


def run_bill(n: int, url: str) -> dict:
    from sitegate.cloud.billing.billing_run import bill
    from sitegate.cloud.billing.periods import grid_for, parse_period
    from sitegate.cloud.billing.sites import load_site_model
    from sitegate.cloud.store.db import make_engine
    from sitegate.cloud.store.readings import MARGIN

    engine = make_engine(url)
    with engine.connect() as conn:
        model = load_site_model(conn, "bench")
    grid = grid_for(parse_period("2026-01"), model.tz)
    lo = datetime.fromtimestamp(grid.start - MARGIN, UTC)
    hi = datetime.fromtimestamp(grid.end + MARGIN, UTC)
    t0 = time.perf_counter()
    rows = raw_per_register(engine, "gw", [m.id for m in model.meters],
                            ["1-0:1.8.0", "1-0:2.8.0"], lo, hi)
    select_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with engine.begin() as conn:
        r = bill(conn, model, "2026-01")
    bill_s = time.perf_counter() - t0
    engine.dispose()
    assert len(r["created"]) == n, (len(r["created"]), n)
    return {"rows": rows, "select_s": round(select_s, 2), "bill_s": round(bill_s, 2),
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "total": r["summary"]["amount_total"]}


def main() -> None:
    args = sys.argv[1:]
    db = None
    if "--db" in args:
        i = args.index("--db")
        db = args[i + 1]
        del args[i:i + 2]
    if args[:1] == ["--keep"]:  # write once into a given store, for profiling
        print(write(int(args[1]), args[2]))
        return
    if args[:1] in (["--write"], ["--bill"]):
        n, url = int(args[1]), args[2]
        out = {"write_s": round(write(n, url), 1)} if args[0] == "--write" else run_bill(n, url)
        print(json.dumps(out))
        return
    sizes = [int(a) for a in args] or [1000]
    kind = "postgresql" if db else "sqlite"
    print(f"store: {'SQLite file' if db is None else db}")
    print(f"{'billing points':>14} {'readings':>10} {'write s':>8} {'SELECT s':>9} "
          f"{'bill s':>7} {'bill/SELECT':>11} {'peak RSS MB':>11}  target")
    for n in sizes:
        with store(db) as url:
            w = json.loads(subprocess.run([sys.executable, __file__, "--write", str(n), url],
                                          check=True, capture_output=True, text=True).stdout)
            b = json.loads(subprocess.run([sys.executable, __file__, "--bill", str(n), url],
                                          check=True, capture_output=True, text=True).stdout)
        limit_s, limit_mb = TARGETS.get((kind, n), (None, None))
        verdict = ""
        if limit_s is not None:
            ok = b["bill_s"] < limit_s and (limit_mb is None or b["peak_mb"] < limit_mb)
            verdict = (f"< {limit_s:g} s" + (f", < {limit_mb} MB" if limit_mb else "")
                       + (" ok" if ok else " MISSED"))
        print(f"{n:>14} {b['rows']:>10} {w['write_s']:>8.1f} {b['select_s']:>9.2f} "
              f"{b['bill_s']:>7.2f} {b['bill_s'] / b['select_s']:>10.2f}x {b['peak_mb']:>11}  "
              f"{verdict}", flush=True)


if __name__ == "__main__":
    main()
