"""Bytes a stored reading takes in PostgreSQL: the readings table as it was (ingest_0004:
texts on every row) next to the compact rows (ingest_0005), the same readings in both.

    .venv/bin/python bench/bench_row_size.py [--gateways 20] [--cycles 4] [--db URL]

A fresh database at ingest_0004 gets G gateways x C quarter-hour cycles of 100 meters x 13
quantities, as the fleet sends them (a gateway's 28-character epoch, values in kWh with
3 decimals, read_at set, no flags), a cycle of all gateways per transaction; its size is
measured (``pg_total_relation_size`` over every partition: rows, TOAST and indexes), then
it is migrated (ingest_0005) and measured again; a second fresh database at the head gets
the same rows through the ingest's own bulk insert (a table grown by inserts, not rebuilt
in one go). Both after a VACUUM, bytes / rows.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

OLD_COLUMNS = ("gateway_id", "epoch", "seq", "meter_id", "ts", "quantity", "value", "unit",
               "quality", "flags", "read_at", "received_at")


def cycles(gateways: int, count: int):  # noqa: ANN201
    """Per cycle: (gateway, epoch, seq, meter, ts, quantity, value) of every gateway."""
    start = datetime(2026, 11, 2, tzinfo=UTC)
    for c in range(count):
        ts = start + timedelta(minutes=15 * c)
        rows = []
        for g in range(gateways):
            gw = f"gw-{g:05d}"
            epoch = "20261130000000-" + uuid.uuid5(uuid.NAMESPACE_DNS, gw).hex[:12]
            seq = c * 1300
            for m in range(100):
                for q in range(13):
                    seq += 1
                    value = Decimal(100_000 + g * 7 + m * 13 + q + c * 250) / 1000
                    rows.append((gw, epoch, seq, f"m{m:03d}", ts, f"1-0:{q + 1}.8.0",
                                 str(value)))
        yield rows


def size(conn, table: str) -> tuple[int, int, int]:  # noqa: ANN001
    """(bytes of the table's partitions with their indexes and TOAST, of their indexes,
    rows)."""
    from sqlalchemy import text

    conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    total, indexes = conn.execute(text(
        "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0), "
        "coalesce(sum(pg_indexes_size(inhrelid)), 0) FROM pg_inherits "
        "WHERE inhparent = CAST(:t AS regclass)"), {"t": table}).one()
    rows = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    return int(total), int(indexes), int(rows)


def main() -> None:
    from alembic import command
    from bench_billing_store import store

    from sitegate.cloud.store.db import alembic_config, make_engine, upgrade
    from sitegate.cloud.store.ingest_rows import COLUMNS, Labels, insert_readings

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gateways", type=int, default=20)
    ap.add_argument("--cycles", type=int, default=4)
    ap.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    recv = datetime(2026, 11, 30, tzinfo=UTC)
    out = {}
    with store(args.db) as url:
        command.upgrade(alembic_config(url), "ingest_0004")
        engine = make_engine(url)
        for rows in cycles(args.gateways, args.cycles):
            with engine.begin() as conn:
                dbapi = conn.connection.dbapi_connection
                with dbapi.cursor() as cur, cur.copy(
                        f"COPY readings ({', '.join(OLD_COLUMNS)}) FROM STDIN") as cp:
                    for gw, epoch, seq, mid, ts, qty, value in rows:
                        cp.write_row((gw, epoch, seq, mid, ts, qty, value, "kWh", "good", "[]",
                                      ts + timedelta(seconds=2), recv))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            out["readings as texts (ingest_0004)"] = size(conn, "readings")
        engine.dispose()
        upgrade(url)
        engine = make_engine(url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            out["compact rows, migrated (ingest_0005)"] = size(conn, "reading_rows")
        engine.dispose()
    with store(args.db) as url:
        upgrade(url)
        engine = make_engine(url)
        labels = Labels(engine)
        assert COLUMNS[:8] == ("ts", "seq", "read_at", "received_at", "epoch_id", "unit_id",
                               "flags_id", "quality_id")
        kwh = labels.unit("kWh")
        for rows in cycles(args.gateways, args.cycles):
            with engine.begin() as conn:
                insert_readings(conn, [(ts, seq, ts + timedelta(seconds=2), recv,
                                        labels.epoch(gw, epoch), kwh, 0, 0, gw, mid, qty, value)
                                       for gw, epoch, seq, mid, ts, qty, value in rows])
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            out["compact rows, ingested (head)"] = size(conn, "reading_rows")
        engine.dispose()
    print(f"{args.gateways} gateways x {args.cycles} cycles x 1,300 readings; PostgreSQL, "
          "pg_total_relation_size (heap, TOAST, indexes) over the partitions")
    print(f"{'':40} {'rows':>9} {'MB':>8} {'bytes/row':>9} {'of which indexes':>16}")
    for name, (total, indexes, rows) in out.items():
        print(f"{name:40} {rows:>9,} {total / 2**20:>8.1f} {total / rows:>9.1f} "
              f"{indexes / rows:>16.1f}")


if __name__ == "__main__":
    main()
