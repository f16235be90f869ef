"""Sync end to end: drain a buffered backlog into the cloud database, next to raw inserts.

One run, real parts: a private Mosquitto, ``sitegate-cloud serve`` as its own process, the
gateway's Buffer and SyncClient here. Prints

- drain: readings per second from a full buffer to all rows acknowledged (cloud committed),
  next to the raw rate of inserting the same rows into the same kind of database directly
  (SQLAlchemy Core, same table, same 500-row transactions): the raw rate is the limit;
- bytes on the wire per reading (MQTT payloads, resends included);
- live latency p50/p99: buffer commit -> cloud row (its received_at, stamped in the
  committing transaction) and buffer commit -> ack back in the gateway buffer.

    python bench/bench_sync_drain.py                 # 1,000,000 readings, SQLite
    python bench/bench_sync_drain.py --rows 20000    # a quick run
    python bench/bench_sync_drain.py --db postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from benchkit import free_port, quiet_logs
from sqlalchemy import create_engine, text

from sitegate.cloud.store import tables as t
from sitegate.cloud.store.db import make_engine, normalize_url, upgrade
from sitegate.cloud.store.ingest_rows import Labels, insert_readings
from sitegate.gateway.buffer import Buffer, reading_row
from sitegate.sync.client import SyncClient
from sitegate.sync.config import MqttConfig
from sitegate.sync.protocol import Reading

T0 = datetime(2026, 1, 1, tzinfo=UTC)
METERS = 50  # a building: 50 meters, each with a few quantities


def reading(n: int) -> Reading:
    slot = T0 + timedelta(minutes=15 * (n // (METERS * 4)))
    return Reading(meter_id=f"site1-m{n % METERS:02d}", ts=slot,
                   quantity=("1-0:1.8.0", "1-0:2.8.0", "1-0:1.7.0", "1-0:32.7.0")[n // METERS % 4],
                   value=Decimal(10_000_000 + n * 7919 % 1_000_003) / 1000, unit="kWh",
                   read_at=slot)


class TimedBuffer(Buffer):
    """Records when each ack arrived, for the latency figures."""

    acks: list[tuple[int, float]]

    def ack(self, stream: str, upto: int) -> int:
        mark = super().ack(stream, upto)
        if stream == "readings":
            self.acks.append((mark, time.time()))
        return mark


CREATED: list[tuple[str, str]] = []  # (admin URL, database) to drop at the end


def fresh_db(url: str | None, workdir: Path, name: str) -> str:
    if url is None:
        return str(workdir / f"{name}.db")
    base = normalize_url(url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    db = f"bench_{name}_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    CREATED.append((base, db))
    return base.rsplit("/", 1)[0] + "/" + db


def raw_insert(db: str, rows: int, batch: int) -> float:
    """Readings per second inserting the same rows directly, in ``batch``-row transactions
    (the ingest's own bulk insert into ``reading_rows``: COPY / executemany)."""
    upgrade(db)
    engine = make_engine(db)
    labels = Labels(engine)
    epoch = labels.epoch("gw-raw", t.LEGACY_EPOCH)
    now = datetime.now(UTC)
    start = time.perf_counter()
    for first in range(1, rows + 1, batch):
        chunk = []
        for n in range(first, min(first + batch, rows + 1)):
            r = reading(n)
            chunk.append((r.ts, n, r.read_at, now, epoch, labels.unit(r.unit), t.NO_FLAGS,
                          t.QUALITY_IDS[r.quality], "gw-raw", r.meter_id, r.quantity,
                          str(r.value)))
        with engine.begin() as conn:
            insert_readings(conn, chunk)
    return rows / (time.perf_counter() - start)


async def drain_and_live(args: argparse.Namespace, workdir: Path, broker: str, db: str) -> dict:
    buf = TimedBuffer(workdir / "buffer.db")
    buf.acks = []
    print(f"filling the gateway buffer with {args.rows:,} readings ...", flush=True)
    for first in range(1, args.rows + 1, 10_000):
        buf.write([reading_row(reading(n))
                   for n in range(first, min(first + 10_000, args.rows + 1))])
    cfg = MqttConfig(broker=broker, drain_rate=None, batch_rows=args.batch, max_inflight=8,
                     ack_timeout=60, poll_interval=0.5)
    client = SyncClient(cfg, "gw-bench", buf)
    start = time.perf_counter()
    await client.start()
    while buf.acked_upto("readings") < args.rows:
        await asyncio.sleep(0.05)
    drain_s = time.perf_counter() - start
    bytes_per_reading = client.bytes_sent / args.rows

    # Live: one poll cycle of 20 readings every 100 ms, the daemon's way (append, wake).
    committed: dict[int, float] = {}
    for _ in range(args.live_cycles):
        have = buf.last_seq("readings")
        buf.write([reading_row(reading(n)) for n in range(have + 1, have + 21)])
        committed[have + 20] = time.time()
        for n in range(have + 1, have + 20):
            committed[n] = committed[have + 20]
        client.wake()
        await asyncio.sleep(0.1)
    end = buf.last_seq("readings")
    while buf.acked_upto("readings") < end:
        await asyncio.sleep(0.05)
    await client.stop()
    ack_lat = []
    for seq, at in committed.items():
        acked_at = next(a for mark, a in buf.acks if mark >= seq)
        ack_lat.append(at and acked_at - at)
    engine = make_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, received_at FROM readings WHERE seq > :s"),
                            {"s": args.rows}).all()
        total, distinct = conn.execute(
            text("SELECT COUNT(*), COUNT(DISTINCT seq) FROM readings")).one()
    cloud_lat = []
    for seq, received in rows:
        if isinstance(received, str):
            received = datetime.fromisoformat(received)
        received = received.replace(tzinfo=UTC) if received.tzinfo is None else received
        cloud_lat.append(received.timestamp() - committed[seq])
    buf.close()
    return {"drain_s": drain_s, "bytes": bytes_per_reading, "ack_lat": ack_lat,
            "cloud_lat": cloud_lat, "total": total, "distinct": distinct, "end": end,
            "batches": client.batches_sent}


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--live-cycles", type=int, default=300)
    ap.add_argument("--db", help="PostgreSQL admin URL (a fresh database is made); "
                                 "default: SQLite files")
    args = ap.parse_args()
    quiet_logs()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()
        conf = workdir / "mosquitto.conf"
        # set_tcp_nodelay: without it Nagle holds small acks ~40 ms behind delayed TCP ACKs
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
        mosq = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        cloud = None
        try:
            db = fresh_db(args.db, workdir, "sync")
            upgrade(db)
            broker = f"mqtt://127.0.0.1:{port}"
            time.sleep(0.3)
            cloud = subprocess.Popen([sys.executable, "-m", "sitegate.cloud.cli", "serve",
                                      "--db", db, "--broker", broker],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2.0)  # imports and connect
            r = asyncio.run(drain_and_live(args, workdir, broker, db))
            cloud.terminate()
            cloud.wait(30)
            print(f"raw inserts of the same {args.rows:,} rows ...", flush=True)
            raw = raw_insert(fresh_db(args.db, workdir, "raw"), args.rows, args.batch)
        finally:
            if cloud is not None and cloud.poll() is None:
                cloud.kill()
            mosq.kill()
            mosq.wait()
            for admin_url, name in CREATED:
                admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    e2e = args.rows / r["drain_s"]
    kind = "PostgreSQL" if args.db else "SQLite"
    assert r["total"] == r["distinct"] == r["end"], "lost or duplicated rows"
    print(json.dumps({k: v for k, v in r.items() if not k.endswith("lat")}, default=str))
    print(f"\nsync drain, {args.rows:,} buffered readings into {kind}, {args.batch}-row batches")
    print(f"{'':34}{'readings/s':>12}")
    print(f"{'end to end (buffer -> MQTT -> db)':34}{e2e:>12,.0f}   {r['drain_s']:.1f} s")
    print(f"{'raw inserts, same rows, same db':34}{raw:>12,.0f}   (the limit)")
    print(f"{'end to end / raw':34}{e2e / raw:>12.0%}")
    print(f"\nbytes on the wire per reading: {r['bytes']:.1f} (JSON batch payloads)")
    print(f"exactly once: {r['total']:,} rows, {r['distinct']:,} distinct seq")
    print(f"\nlive latency, {len(r['cloud_lat'])} readings in 20-reading cycles every 100 ms")
    print(f"{'':34}{'p50 ms':>8}{'p99 ms':>8}")
    print(f"{'buffer commit -> cloud row':34}{pct(r['cloud_lat'], 50):>8.1f}"
          f"{pct(r['cloud_lat'], 99):>8.1f}")
    print(f"{'buffer commit -> ack in buffer':34}{pct(r['ack_lat'], 50):>8.1f}"
          f"{pct(r['ack_lat'], 99):>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
