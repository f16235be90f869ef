"""A fleet of gateways against the cloud ingest, next to a bare COPY of the same rows.

One run, real parts: a private Mosquitto, M ``sitegate-cloud serve`` processes on the shared
subscription, a fresh PostgreSQL database, and N simulated gateways: paho MQTT 5 clients
(spread over a few worker processes, one event loop each) that send one quarter-hour cycle
each (``--meters`` x ``--quantities`` readings, the gateway's own batch encoding, 500-row
batches, 8 in flight), starting at their own offset within ``--spread`` seconds after the
common start as the gateway does (``sync.client.uplink_offset``), and wait for acks like
the gateway: a batch is done when an ack's mark covers it (or the ack of that very batch
says it was committed); one without an answer is resent after its timeout (``--ack-timeout``
at least, longer behind batches in flight, doubled per resend).

Reported: stored readings per second (first publish to last ack), CPU per reading of the
ingest processes and of their PostgreSQL backends (from /proc: ``utime + stime``),
publish -> ack p50/p99 per batch, resends; then exactly-once (rows = distinct (gateway,
epoch, seq) = sent, every mark at its end). The limit: the same rows COPYed into a copy of
the readings table, one gateway's cycle per transaction, by one connection.

    .venv/bin/python bench/bench_fleet.py --gateways 1000 --ingest 2
    .venv/bin/python bench/bench_fleet.py --gateways 100 --spread 0      # the burst
    .venv/bin/python bench/bench_fleet.py --gateways 200 --baseline /tmp/main-tree
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

DB = "postgresql://postgres@127.0.0.1:5432/test"
BATCH_ROWS, IN_FLIGHT = 500, 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def epoch_of(gw: str) -> str:
    return "20261130000000-" + uuid.uuid5(uuid.NAMESPACE_DNS, gw).hex[:12]


def cycle_texts(gw_index: int, meters: int, quantities: int, ts: datetime) -> list[str]:
    """One quarter-hour cycle of a gateway as its buffer stores the rows (JSON texts)."""
    from decimal import Decimal

    from sitegate.gateway.buffer import reading_json
    from sitegate.sync.protocol import Reading

    out = []
    for m in range(meters):
        for q in range(quantities):
            value = Decimal(100_000 + gw_index * 7 + m * 13 + q) / 1000
            out.append(reading_json(Reading(f"m{m:03d}", ts, f"1-0:{q + 1}.8.0", value,
                                            "kWh", read_at=ts)))
    return out


# -- a worker: many gateways on one event loop ------------------------------------------------


class Gateway:
    def __init__(self, gw: str, index: int, args: argparse.Namespace, ts: datetime,
                 start_at: float) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from sitegate.sync import protocol as p
        from sitegate.sync.client import uplink_offset

        self.gw, self.epoch = gw, epoch_of(gw)
        texts = cycle_texts(index, args.meters, args.quantities, ts)
        self.total = len(texts)
        self.batches = [(first, min(first + BATCH_ROWS - 1, self.total),
                         p.encode_batch("readings", first, texts[first - 1:first - 1 + BATCH_ROWS],
                                        self.epoch))
                        for first in range(1, self.total + 1, BATCH_ROWS)]
        self.start_at = start_at + uplink_offset(gw, args.spread)
        self.ack_timeout = args.ack_timeout
        self.topic = p.topic(gw, "readings")
        self.next = 0
        self.flights: dict[int, list[float]] = {}  # first -> [sent_at, timeout, tries, t0]
        self.upto = 0
        self.latencies: list[float] = []
        self.resends = 0
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gw, protocol=mqtt.MQTTv5)
        self.c.on_message = self.on_message
        self.c.max_inflight_messages_set(0)
        self.p = p

    def on_message(self, _c, _u, msg) -> None:  # noqa: ANN001
        ack = self.p.decode_ack(msg.payload)
        if ack.epoch != self.epoch:
            return
        now = time.time()
        self.upto = max(self.upto, ack.upto)
        for first in list(self.flights):
            last = min(first + BATCH_ROWS - 1, self.total)
            if last <= self.upto or (first == ack.first and ack.last == last):
                self.latencies.append(now - self.flights.pop(first)[3])

    def done(self) -> bool:
        return self.next == len(self.batches) and not self.flights

    def tick(self, now: float) -> None:
        if now < self.start_at:
            return
        for first, f in list(self.flights.items()):
            if now - f[0] > f[1]:
                f[0], f[1], f[2] = now, f[1] * 2, f[2] + 1
                self.resends += 1
                self.c.publish(self.topic, self.batches[(first - 1) // BATCH_ROWS][2], qos=1)
        while self.next < len(self.batches) and len(self.flights) < IN_FLIGHT:
            first, _last, payload = self.batches[self.next]
            self.next += 1
            timeout = self.ack_timeout * (1 + len(self.flights) / IN_FLIGHT)
            self.flights[first] = [now, timeout, 0, now]
            self.c.publish(self.topic, payload, qos=1)


def worker(args: argparse.Namespace) -> None:
    from sitegate.sync import protocol as p

    first, count = args.worker
    ts = datetime.fromtimestamp(args.ts, UTC)
    gws = [Gateway(f"gw-{i:05d}", i, args, ts, args.start_at)
           for i in range(first, first + count)]
    sel = selectors.DefaultSelector()
    for g in gws:
        g.c.connect("127.0.0.1", args.port, keepalive=300)
        g.c.subscribe(p.topic(g.gw, "ack"), qos=1)
        sel.register(g.c.socket(), selectors.EVENT_READ, g)
    last_misc = 0.0
    while not all(g.done() for g in gws):
        now = time.time()
        for g in gws:
            g.tick(now)
            if g.c.want_write():
                g.c.loop_write()
        for key, _ in sel.select(0.005):
            key.data.c.loop_read()
        if now - last_misc > 1:
            last_misc = now
            for g in gws:
                g.c.loop_misc()
    for g in gws:
        g.c.disconnect()
    print(json.dumps({"latencies": [round(x, 4) for g in gws for x in g.latencies],
                      "resends": sum(g.resends for g in gws),
                      "first_publish": min(g.start_at for g in gws),
                      "rows": sum(g.total for g in gws)}))


# -- the run ------------------------------------------------------------------------------


def backends(engine, db: str) -> list[int]:  # noqa: ANN001
    from sqlalchemy import text

    with engine.connect() as conn:
        return [r[0] for r in conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> "
                 "pg_backend_pid()"), {"d": db})]


def bare_copy(url: str, args: argparse.Namespace, ts: datetime) -> dict:
    """The same rows COPYed into the same table (``reading_rows``, under other gateway
    ids, their epoch and unit ids made first, untimed), a gateway's cycle per transaction,
    one connection: rows/s and its backend's CPU per reading."""
    from sitegate.cloud.store.db import make_engine
    from sitegate.cloud.store.ingest_rows import COLUMNS, Labels
    from sitegate.cloud.store.tables import NO_FLAGS, QUALITY_IDS
    from sitegate.sync import protocol as p

    engine = make_engine(url)
    labels = Labels(engine)
    now = datetime.now(UTC)
    cycles = []
    for i in range(args.gateways):
        gw = f"bare-{i:05d}"
        epoch = labels.epoch(gw, epoch_of(f"gw-{i:05d}"))
        rows = []
        for seq, item in enumerate(cycle_texts(i, args.meters, args.quantities, ts), 1):
            d = json.loads(item)
            rows.append((ts, seq, ts, now, epoch, labels.unit(d["unit"]), NO_FLAGS,
                         QUALITY_IDS[d.get("quality", p.GOOD)], gw, d["meter_id"],
                         d["quantity"], d["value"]))
        cycles.append(rows)
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        cpu0 = cpu_s(pid)
        dbapi = conn.connection.dbapi_connection
        t0 = time.perf_counter()
        for rows in cycles:
            with dbapi.cursor() as cur, cur.copy(
                    f"COPY reading_rows ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            dbapi.commit()
        wall = time.perf_counter() - t0
        db_cpu = cpu_s(pid) - cpu0
    engine.dispose()
    n = sum(len(c) for c in cycles)
    return {"rows": n, "rate": n / wall, "db_us": db_cpu / n * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gateways", type=int, default=100)
    ap.add_argument("--ingest", type=int, default=2, help="ingest processes")
    ap.add_argument("--meters", type=int, default=100)
    ap.add_argument("--quantities", type=int, default=13)
    ap.add_argument("--spread", type=float, default=180.0,
                    help="the gateways' uplink_spread, seconds (0: all at once)")
    ap.add_argument("--ack-timeout", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=4, help="processes simulating gateways")
    ap.add_argument("--db", default=DB, help="PostgreSQL server (a fresh database is made)")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also run the ingest of the checkout in DIR first (e.g. a worktree "
                         "of main: today's ingest), same fleet, its own fresh database")
    ap.add_argument("--worker", type=int, nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ts", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    run(args)


def fleet(args: argparse.Namespace, url: str, port: int, ts: datetime, work: Path,
          code: str | None) -> dict:
    """One fleet run against a fresh database: the ingest processes from ``code`` (a
    checkout's directory, e.g. of main: today's ingest) or from this one."""
    from sqlalchemy import text

    from sitegate.cloud.store.db import make_engine

    env = {**os.environ, **({"PYTHONPATH": code} if code else {})}
    subprocess.run([sys.executable, "-m", "sitegate.cloud.cli", "migrate", "--db", url],
                   check=True, env=env, capture_output=True, cwd=code or None)
    db_name = url.rsplit("/", 1)[1]
    admin = make_engine(url)
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        for k in range(args.ingest):
            log = work / f"ingest-{'base' if code else 'ours'}-{k}.log"
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "sitegate.cloud.cli", "serve", "--db", url,
                 "--broker", f"mqtt://127.0.0.1:{port}"], env=env, cwd=code or None,
                stdout=log.open("wb"), stderr=subprocess.STDOUT))
        deadline = time.time() + 60
        while not all("ingest.connected" in lg.read_text() for lg in logs):
            if time.time() > deadline:
                raise SystemExit("ingest did not connect: " + logs[0].read_text()[-500:])
            time.sleep(0.2)
        ingest_cpu0 = {pr.pid: cpu_s(pr.pid) for pr in procs}
        start_at = time.time() + 5 + args.gateways / 200  # everyone connected by then
        per = -(-args.gateways // args.workers)
        workers = [subprocess.Popen(
            [sys.executable, __file__, "--worker", str(i), str(min(per, args.gateways - i)),
             "--port", str(port), "--ts", str(ts.timestamp()), "--start-at", str(start_at),
             "--meters", str(args.meters), "--quantities", str(args.quantities),
             "--spread", str(args.spread), "--ack-timeout", str(args.ack_timeout)],
            stdout=subprocess.PIPE, text=True)
            for i in range(0, args.gateways, per)]
        while time.time() < start_at - 1:
            time.sleep(0.2)
        # The ingest's connections open with its first transaction: those already there
        # count from now, those opened later from zero.
        db_cpu0 = {pid: cpu_s(pid) for pid in backends(admin, db_name)}
        results = [json.loads(w.communicate()[0]) for w in workers]
        end = time.time()
        ingest_cpu = sum(cpu_s(pid) - c for pid, c in ingest_cpu0.items())
        db_cpu = sum(cpu_s(pid) - db_cpu0.get(pid, 0.0) for pid in backends(admin, db_name))
        for pr in procs:
            pr.terminate()
        for pr in procs:
            try:
                pr.wait(30)
            except subprocess.TimeoutExpired:
                pr.kill()
        with admin.connect() as conn:
            rows, distinct = conn.execute(text(  # the view: today's ingest has no other
                "SELECT count(*), count(DISTINCT (gateway_id, epoch, seq)) FROM readings")
            ).one()
            size = conn.execute(text(  # the rows' table whichever it is, every partition
                "SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i "
                "WHERE i.inhparent = coalesce(to_regclass('reading_rows'), "
                "to_regclass('readings'))")).scalar_one()
            marks = conn.execute(text(
                "SELECT count(*) FROM acks WHERE stream = 'readings' AND upto = :n"),
                {"n": args.meters * args.quantities}).scalar_one()
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
        admin.dispose()
    sent = sum(r["rows"] for r in results)
    first = min(r["first_publish"] for r in results)
    lat = sorted(x for r in results for x in r["latencies"])
    return {"sent": sent, "wall": end - first, "rate": sent / (end - first),
            "ingest_us": ingest_cpu / sent * 1e6, "db_us": db_cpu / sent * 1e6,
            "p50": statistics.median(lat), "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "resends": sum(r["resends"] for r in results),
            "ok": rows == distinct == sent and marks == args.gateways,
            "rows": rows, "distinct": distinct, "marks": marks, "bytes": size / max(rows, 1)}


def run(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_billing_store import store

    load0 = os.getloadavg()[0]
    quarter = int(time.time()) // 900 * 900
    ts = datetime.fromtimestamp(quarter, UTC)
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    port = free_port()
    (work / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\nset_tcp_nodelay true\nlog_type error\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(work / "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs: list[tuple[str, dict]] = []
    try:
        if args.baseline:
            with store(args.db) as url:
                runs.append((f"today's ingest ({Path(args.baseline).name})",
                             fleet(args, url, port, ts, work, args.baseline)))
        with store(args.db) as url:
            runs.append(("sitegate ingest (this tree)", fleet(args, url, port, ts, work, None)))
            bare = bare_copy(url, args, ts)
    finally:
        broker.terminate()
    print(f"fleet: {args.gateways:,} gateways x {args.meters * args.quantities:,} readings "
          f"({args.meters} meters x {args.quantities}), {BATCH_ROWS}-row batches, {IN_FLIGHT} in "
          f"flight, ack timeout {args.ack_timeout:g} s (adaptive), spread {args.spread:g} s; "
          f"{args.ingest} ingest process(es); PostgreSQL")
    print(f"{'':32} {'readings/s':>10} {'ingest us/rdg':>13} {'db us/rdg':>9} "
          f"{'p50 s':>6} {'p99 s':>6} {'resends':>7}")
    for name, r in runs:
        print(f"{name:32} {r['rate']:>10,.0f} {r['ingest_us']:>13.1f} {r['db_us']:>9.1f} "
              f"{r['p50']:>6.2f} {r['p99']:>6.2f} {r['resends']:>7}")
    print(f"{'bare COPY, same rows':32} {bare['rate']:>10,.0f} {'':>13} {bare['db_us']:>9.1f}")
    for name, r in runs:
        print(f"{name}: {1e6 / r['ingest_us']:,.0f} readings/s per ingest core; wall "
              f"{r['wall']:.1f} s from the first publish; exactly once: {r['rows']:,} rows, "
              f"{r['distinct']:,} distinct (gateway, epoch, seq), {r['sent']:,} sent, "
              f"{r['marks']:,} of {args.gateways:,} marks at the end: "
              f"{'ok' if r['ok'] else 'FAILED'}; {r['bytes']:.0f} bytes a stored row "
              "(pg_total_relation_size of the partitions: rows and indexes)")
    print(f"load average: {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
          f"({os.cpu_count()} cores, shared)")
    if not all(r["ok"] for _, r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
