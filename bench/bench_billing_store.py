"""Loading a month of 15-min readings from the store (``source.load_readings``) for sites of
N meters, side by side with the limit: a bare ``SELECT`` of the same rows into Python.

    .venv/bin/python bench/bench_billing_store.py [--db postgresql://...] [SIZES...]
    (default 100 1000; with --db a fresh database is made on that server and dropped)

Each size runs in its own process on a fresh store (SQLite file, or PostgreSQL database):
N meters x 2,977 readings (one register each) written through the store's table definition,
a quarter-hour of all meters per transaction as the ingest stores them (so one meter's
readings are spread over the table). Then, same process, same data:

- raw: the rows billing needs (meter, ts, quantity, value, unit, quality) selected through
  the DBAPI cursor, 500 meters per query, fetched 20,000 at a time and dropped
  (how the load queried before);
- reg: ``load_readings``' own queries (one per register, the four columns it reads),
  fetched and dropped: the limit for this load;
- load: ``load_readings`` as ``bill`` calls it, giving a ``Register`` per register.

Reported: readings, seconds and microseconds a reading of each, load / reg, resident memory
growth over the load per reading.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path


def rss_mb() -> float:
    """Current resident set (the peak is the write phase's, so ru_maxrss would hide it)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


@contextmanager
def store(db: str | None) -> Iterator[str]:
    """A fresh, empty store URL: a temp SQLite file, or a new database on ``db``'s server."""
    if db is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield str(Path(tmp) / "cloud.db")
        return
    from sqlalchemy import create_engine, text

    from sitegate.cloud.store.db import normalize_url
    admin = create_engine(normalize_url(db), isolation_level="AUTOCOMMIT")
    name = f"bench_billing_store_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield normalize_url(db).rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def raw_select(engine, gw: str, ids: list[str], quantities: list[str], lo: datetime,
               hi: datetime) -> int:
    """The same rows as load_readings reads, straight off the DBAPI cursor."""
    from sqlalchemy import and_, bindparam, select

    from sitegate.cloud.store.readings import READINGS, TS
    r = READINGS.c
    count = 0
    with engine.connect() as conn:
        dialect = conn.dialect
        bind = TS.dialect_impl(dialect).bind_processor(dialect) or (lambda v: v)
        cur = conn.connection.cursor()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = select(r.meter_id, r.ts, r.quantity, r.value, r.unit, r.quality).where(and_(
                r.gateway_id == gw, r.meter_id.in_(chunk), r.quantity.in_(quantities),
                r.ts >= bindparam("lo", bind(lo)), r.ts <= bindparam("hi", bind(hi))))
            compiled = q.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
            params = compiled.params  # lo/hi already in the driver's form
            if compiled.positional:
                params = [params[k] for k in compiled.positiontup]
            cur.execute(str(compiled), params)
            while rows := cur.fetchmany(20_000):
                count += len(rows)
        cur.close()
    return count


def raw_per_register(engine, gw: str, ids: list[str], quantities: list[str], lo: datetime,
                     hi: datetime) -> int:
    """load_readings' own queries (one per register, four columns), fetched and dropped."""
    from sitegate.cloud.store.readings import TS, _series_sql
    count = 0
    with engine.connect() as conn:
        dialect = conn.dialect
        bind = TS.dialect_impl(dialect).bind_processor(dialect) or (lambda v: v)
        sql, order = _series_sql(dialect)
        cur = conn.connection.cursor()
        for mid in ids:
            for qty in quantities:
                p = {"gw": gw, "mid": mid, "qty": qty, "lo": bind(lo), "hi": bind(hi)}
                cur.execute(sql, [p[k] for k in order] if order else p)
                while rows := cur.fetchmany(20_000):
                    count += len(rows)
        cur.close()
    return count


def write_cycles(engine, gw: str, cycles) -> None:
    """Each cycle (a list of (seq, meter, ts, quantity, value)) in its own transaction, as
    the ingest stores them (its bulk insert: COPY on PostgreSQL)."""
    from sitegate.cloud.store.ingest_rows import Labels, insert_readings
    recv = datetime(2026, 2, 1, tzinfo=UTC)
    labels = Labels(engine)
    epoch, kwh = labels.epoch(gw, "0"), labels.unit("kWh")
    for rows in cycles:
        with engine.begin() as conn:  # reading_rows' column order (no flags, quality good)
            insert_readings(conn, [(ts, seq, None, recv, epoch, kwh, 0, 0, gw, mid, qty, value)
                                   for seq, mid, ts, qty, value in rows])


def one(n: int, db: str | None) -> dict:
    from sitegate.cloud.billing.periods import grid_for, parse_period
    from sitegate.cloud.billing.sitemodel import parse_site
    from sitegate.cloud.store.db import make_engine, upgrade
    from sitegate.cloud.store.readings import MARGIN, load_readings

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
    with store(db) as url:
        upgrade(url)
        engine = make_engine(url)
        t0 = time.perf_counter()

        def cycles():  # a poll cycle of every meter per transaction
            seq = 0
            for k in range(grid.n + 1):
                ts = datetime.fromtimestamp(grid.start + k * 900, UTC)
                rows = []
                for j, mid in enumerate(ids):
                    seq += 1
                    rows.append((seq, mid, ts, "1-0:1.8.0", f"{1000 + j + k * 0.25:.3f}"))
                yield rows

        write_cycles(engine, "gw", cycles())
        write_s = time.perf_counter() - t0
        if url.startswith("postgresql"):
            with engine.connect() as conn:  # what autovacuum does after a bulk ingest
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE reading_rows")
        lo = datetime.fromtimestamp(grid.start - MARGIN, UTC)
        hi = datetime.fromtimestamp(grid.end + MARGIN, UTC)
        quantities = sorted({"1-0:1.8.0", "1-0:2.8.0"})
        t0 = time.perf_counter()
        raw_rows = raw_select(engine, "gw", ids, quantities, lo, hi)
        raw_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        reg_rows = raw_per_register(engine, "gw", ids, quantities, lo, hi)
        reg_s = time.perf_counter() - t0
        before = rss_mb()
        t0 = time.perf_counter()
        with engine.connect() as conn:
            loaded = load_readings(conn, model, grid.start, grid.end)
        load_s = time.perf_counter() - t0
        after = rss_mb()
        count = sum(len(r) for regs in loaded.values() for r in regs.values())
        engine.dispose()
    assert raw_rows == reg_rows == count, (raw_rows, reg_rows, count)
    return {"meters": n, "rows": count, "write_s": round(write_s, 1), "raw_s": round(raw_s, 2),
            "reg_s": round(reg_s, 2),
            "load_s": round(load_s, 2), "rss_before_mb": round(before),
            "bytes_per_reading": round((after - before) * 1024 * 1024 / count, 1)}


def main() -> None:
    args = sys.argv[1:]
    db = None
    if "--db" in args:
        i = args.index("--db")
        db = args[i + 1]
        del args[i:i + 2]
    if len(args) == 2 and args[0] == "--one":
        print(json.dumps(one(int(args[1]), db)))
        return
    sizes = [int(a) for a in args] or [100, 1000]
    print(f"store: {'SQLite file' if db is None else db}")
    print(f"{'meters':>7} {'readings':>10} {'raw s':>7} {'raw us':>7} {'reg s':>7} {'reg us':>7} "
          f"{'load s':>7} {'load us':>7} {'load/reg':>8} {'B/reading':>9}")
    for n in sizes:
        cmd = [sys.executable, __file__, "--one", str(n)] + (["--db", db] if db else [])
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        per = 1e6 / r["rows"]
        print(f"{n:>7} {r['rows']:>10} {r['raw_s']:>7.2f} {r['raw_s'] * per:>7.2f} "
              f"{r['reg_s']:>7.2f} {r['reg_s'] * per:>7.2f} "
              f"{r['load_s']:>7.2f} {r['load_s'] * per:>7.2f} "
              f"{r['load_s'] / r['reg_s']:>7.2f}x {r['bytes_per_reading']:>9}", flush=True)


if __name__ == "__main__":
    main()
