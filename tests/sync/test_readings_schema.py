"""The readings table that grows: migrated with its rows to a unique key holding the time
(and on PostgreSQL to monthly partitions and 64-bit sequences), then to compact rows behind
the view ``readings`` (numbers as numbers, ids for epoch, unit, quality and flags),
partitions made ahead, and retention that drops old months whole without touching newer
rows."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, insert, select, text

from sitegate.cloud.ingest.writer import Writer
from sitegate.cloud.store import partitions as P
from sitegate.cloud.store import tables as t
from sitegate.cloud.store.db import alembic_config, make_engine, upgrade
from sitegate.sync import protocol as p

pytestmark = pytest.mark.timeout(120)

GW = "gw-schema"
NOW = datetime.now(UTC).replace(microsecond=0)
THIS_MONTH = NOW.date().replace(day=1)
def _add(m: date, k: int) -> date:
    i = m.year * 12 + m.month - 1 + k
    return date(i // 12, i % 12 + 1, 1)


# Rows of four months: five years ago (older than the partitions made: the default
# partition), two months ago, last month, this month.
STAMPS = [datetime(THIS_MONTH.year - 5, THIS_MONTH.month, 3, tzinfo=UTC),
          datetime.combine(_add(THIS_MONTH, -2), datetime.min.time(), UTC) + timedelta(days=4),
          datetime.combine(_add(THIS_MONTH, -1), datetime.min.time(), UTC) + timedelta(days=9),
          datetime.combine(THIS_MONTH, datetime.min.time(), UTC) + timedelta(minutes=15)]


def _old_schema_with_rows(url: str) -> None:
    """The schema of ingest_0003 (today's before this change) with a reading per stamp."""
    command.upgrade(alembic_config(url), "ingest_0003")
    engine = make_engine(url)
    with engine.begin() as conn:  # as the ingest wrote them (SQLAlchemy's time format)
        conn.execute(insert(t.readings), [
            {"gateway_id": GW, "epoch": "0", "seq": seq, "meter_id": "m1", "ts": ts,
             "quantity": "1-0:1.8.0", "value": f"{seq}000.125", "unit": "kWh",
             "quality": "good", "flags": "[]", "received_at": NOW}
            for seq, ts in enumerate(STAMPS, 1)])
        conn.execute(text("INSERT INTO acks (gateway_id, stream, epoch, upto, updated_at) "
                          "VALUES (:g, 'readings', '0', 4, :now)"), {"g": GW, "now": NOW})
    engine.dispose()


def _rows(engine: Engine) -> list[tuple]:
    r = t.readings.c
    with engine.connect() as conn:
        return [tuple(x) for x in conn.execute(
            select(r.seq, r.value, r.ts).where(r.gateway_id == GW).order_by(r.seq))]


def _utc(ts: object) -> datetime:
    assert isinstance(ts, datetime)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _migrated(url: str) -> Engine:
    _old_schema_with_rows(url)
    upgrade(url)
    engine = make_engine(url)
    rows = _rows(engine)
    assert [(s, v) for s, v, _ in rows] == [(n, f"{n}000.125") for n in (1, 2, 3, 4)]
    assert [_utc(ts) for _, _, ts in rows] == STAMPS
    # The ingest goes on where it was: the mark continues, a resend changes nothing.
    w = Writer(engine)
    item = json.dumps({"meter_id": "m1", "ts": NOW.isoformat(), "quantity": "1-0:1.8.0",
                       "value": "5000.125", "unit": "kWh"})
    topic = p.topic(GW, "readings")
    assert p.decode_ack(w.handle(topic, p.encode_batch("readings", 5, [item]))[0].payload
                        ).upto == 5
    assert p.decode_ack(w.handle(topic, p.encode_batch("readings", 4, [item, item]))[0]
                        .payload).upto == 5
    assert len(_rows(engine)) == 5
    return engine


def test_sqlite_migration_keeps_every_row_and_keys_them_with_their_time(tmp_path: Path) -> None:
    engine = _migrated(str(tmp_path / "c.db"))
    with engine.connect() as conn:
        ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'reading_rows'")
                           ).scalar_one()
        indexes = {r[0] for r in conn.execute(text(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'reading_rows' AND type = 'index'"))}
    assert "uq_reading_rows_epoch_seq_ts" in ddl  # the epoch id is the gateway's own
    assert "UNIQUE (epoch_id, seq, ts)" in ddl.replace('"', "")
    assert "ix_reading_rows_load" in indexes  # billing's covering index survived the rebuild
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_migration_partitions_by_month_with_every_row(postgres_url: str) -> None:
    engine = _migrated(postgres_url)
    with engine.connect() as conn:
        assert P.partitioned(conn)
        parts = P.partitions(conn)
        where = dict(conn.execute(text(
            "SELECT seq, tableoid::regclass::text FROM reading_rows WHERE gateway_id = :g"),
            {"g": GW}).all())
        seq_type = conn.execute(text(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'acks' "
            "AND column_name = 'upto'")).scalar_one()
    names = [x.name for x in parts]
    # From the oldest month within 36 to two months ahead, then the default partition.
    assert names[0] == P.name_of(_add(THIS_MONTH, -2)) == f"reading_rows_y{names[0][-7:]}"
    assert names[-2] == P.name_of(_add(THIS_MONTH, 2)) and names[-1] == "reading_rows_default"
    assert where == {1: "reading_rows_default", 2: P.name_of(_add(THIS_MONTH, -2)),
                     3: P.name_of(_add(THIS_MONTH, -1)), 4: P.name_of(THIS_MONTH),
                     5: P.name_of(THIS_MONTH)}
    assert seq_type == "bigint"
    # Made ahead again in three months: the missing ones appear, nothing else changes.
    with engine.begin() as conn:
        made = P.ensure(conn, _add(THIS_MONTH, 3))
    assert made == [P.name_of(_add(THIS_MONTH, k)) for k in (3, 4, 5)]
    engine.dispose()


# -- ingest_0005: compact rows behind the view ``readings`` ----------------------------------

E1, E2 = "20261130000000-aaaaaaaaaaaa", "20261201000000-bbbbbbbbbbbb"
# (epoch, seq, month stamp, value as stored before, unit, quality, flags) -> value shown after
ODD = [("0", 1, 0, "4.5E+3", "kWh", "good", "[]", "4500"),
       ("0", 2, 1, "007.50", "Wh", "suspect", '["clock_unsynced"]', "7.50"),
       (E1, 1, 2, "-0.000", "kWh", "invalid", "[]", "0.000"),
       (E1, 2, 3, "1_000.5", "m³", "good", "[]", "1000.5"),
       (E2, 1, 3, "-12.345678901", "kWh", "good", '["meter_reset", "clock_unsynced"]',
        "-12.345678901"),
       (E2, 2, 3, "999999999999.5", "kWh", "good", "[]", "999999999999.5")]


def _at_0004_with_odd_rows(url: str) -> None:
    """The schema of ingest_0004 (text values as sent, epoch and unit text on every row)
    with rows in every odd form a value could have been stored in, over four months."""
    command.upgrade(alembic_config(url), "ingest_0004")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(t.readings), [
            {"gateway_id": GW, "epoch": e, "seq": seq, "meter_id": "m1", "ts": STAMPS[k],
             "quantity": "1-0:1.8.0", "value": v, "unit": u, "quality": q, "flags": f,
             "read_at": STAMPS[k] + timedelta(seconds=2), "received_at": NOW}
            for e, seq, k, v, u, q, f, _ in ODD])
    engine.dispose()


def _compact_migration(url: str, at_0004: bool = False) -> Engine:
    if not at_0004:
        _at_0004_with_odd_rows(url)
    upgrade(url)
    engine = make_engine(url)
    r = t.readings.c
    with engine.connect() as conn:
        shown = [tuple(x) for x in conn.execute(
            select(r.epoch, r.seq, r.ts, r.value, r.unit, r.quality, r.flags, r.read_at)
            .order_by(r.epoch, r.seq))]
        stored = conn.execute(text(
            "SELECT value, flags_id, epoch_id, unit_id, quality_id FROM reading_rows "
            "ORDER BY epoch_id, seq")).all()
        epochs = dict(conn.execute(text("SELECT epoch, id FROM reading_epochs")).all())
        units = dict(conn.execute(text("SELECT unit, id FROM reading_units")).all())
        flags = dict(conn.execute(text("SELECT flags, id FROM reading_flags")).all())
    assert [(e, s, _utc(ts), v, u, q, f, _utc(ra)) for e, s, ts, v, u, q, f, ra in shown] == [
        (e, s, STAMPS[k], plain, u, q, f, STAMPS[k] + timedelta(seconds=2))
        for e, s, k, _, u, q, f, plain in sorted(ODD, key=lambda x: (x[0], x[1]))]
    assert sorted(epochs) == ["0", E1, E2] and sorted(units) == ["Wh", "kWh", "m³"]
    assert flags["[]"] == 0 and len(flags) == 3  # no flags: id 0, on most rows
    qualities = {"good": 0, "suspect": 1, "invalid": 2}
    assert [(f, e, u, q) for _, f, e, u, q in stored] == [
        (flags[f], epochs[e], units[u], qualities[q])
        for e, _, _, _, u, q, f, _ in sorted(ODD, key=lambda x: (epochs[x[0]], x[1]))]
    return engine


def test_sqlite_compact_migration_keeps_every_row_as_plain_numbers(tmp_path: Path) -> None:
    url = str(tmp_path / "c.db")
    engine = _compact_migration(url)
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT DISTINCT typeof(value) FROM reading_rows")).all()
    assert kinds == [("text",)]  # exact: the plain decimal text (see tables.reading_rows)
    # The ingest writes on (ids of a new epoch and unit), readers see the same columns.
    w = Writer(engine)
    items = [json.dumps({"meter_id": "m2", "ts": NOW.isoformat(), "quantity": q,
                         "value": v, "unit": "kvarh", "flags": ["clock_unsynced"]})
             for q, v in (("1-0:3.8.0", "0012.5"), ("1-0:4.8.0", "4.5E+3"))]
    ack = w.handle(p.topic(GW, "readings"), p.encode_batch("readings", 1, items, epoch="E3"))
    assert p.decode_ack(ack[0].payload).upto == 2
    with engine.connect() as conn:
        assert conn.execute(text("SELECT epoch, value, unit, quality, flags FROM readings "
                                 "WHERE meter_id = 'm2' ORDER BY seq")).all() == [
            ("E3", "12.5", "kvarh", "good", '["clock_unsynced"]'),
            ("E3", "4500", "kvarh", "good", '["clock_unsynced"]')]
    engine.dispose()
    # And back: one table of texts again, every row in it.
    command.downgrade(alembic_config(url), "ingest_0004")
    engine = make_engine(url)
    with engine.connect() as conn:
        kind = conn.execute(text("SELECT type FROM sqlite_master WHERE name = 'readings'")
                            ).scalar_one()
        back = conn.execute(text(
            "SELECT count(*), count(DISTINCT seq || epoch) FROM readings")).one()
    assert kind == "table" and back == (len(ODD) + 2, len(ODD) + 2)
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_compact_migration_keeps_rows_and_partitions(postgres_url: str) -> None:
    _at_0004_with_odd_rows(postgres_url)
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT epoch, seq, tableoid::regclass::text FROM readings "
                                   "ORDER BY epoch, seq")).all()
        months = sorted(r[0] for r in conn.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings'")))
    engine.dispose()
    assert {n for *_, n in before} >= {"readings_default", f"readings_y{THIS_MONTH:%Ym%m}"}
    engine = _compact_migration(postgres_url, at_0004=True)
    with engine.connect() as conn:
        kind = conn.execute(text(
            "SELECT data_type FROM information_schema.columns WHERE table_name = "
            "'reading_rows' AND column_name = 'value'")).scalar_one()
        after = conn.execute(text(
            "SELECT e.epoch, r.seq, r.tableoid::regclass::text FROM reading_rows r "
            "JOIN reading_epochs e ON e.id = r.epoch_id ORDER BY e.epoch, r.seq")).all()
        names = [x.name for x in P.partitions(conn)]
    assert kind == "numeric"
    # Every row in the same month's partition as before, every partition kept.
    assert after == [(e, n, "reading_rows" + part.removeprefix("readings"))
                     for e, n, part in before]
    assert sorted(names) == ["reading_rows" + m.removeprefix("readings") for m in months]
    engine.dispose()
    command.downgrade(alembic_config(postgres_url), "ingest_0004")
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        back = conn.execute(text("SELECT count(*) FROM readings")).scalar_one()
        parts = conn.execute(text(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = 'readings'")).scalar_one()
    assert back == len(ODD) and parts == len(names)
    engine.dispose()


@pytest.mark.postgres
def test_retention_drops_old_months_whole_and_archives_them(postgres_url: str,
                                                            tmp_path: Path) -> None:
    engine = _migrated(postgres_url)
    cutoff = _add(THIS_MONTH, -1)  # drop everything before last month
    before = _rows(engine)
    with engine.begin() as conn:
        dropped = P.retain(conn, cutoff, tmp_path / "archive")
        names = [x.name for x in P.partitions(conn)]
    assert [(d.what, d.rows) for d in dropped] == [
        (P.name_of(_add(THIS_MONTH, -2)), 1),
        (f"rows before {cutoff} in reading_rows_default", 1)]
    assert P.name_of(_add(THIS_MONTH, -2)) not in names
    assert P.name_of(_add(THIS_MONTH, -1)) in names  # newer months untouched
    assert _rows(engine) == [r for r in before if _utc(r[2]) >= P.month_start(cutoff)]
    archived = []
    for d in dropped:
        with gzip.open(d.archive, "rt") as f:
            archived += [(int(r["seq"]), r["value"]) for r in csv.DictReader(f)]
    assert sorted(archived) == [(1, "1000.125"), (2, "2000.125")]
    engine.dispose()


def test_retention_on_sqlite_deletes_rows_before_the_cutoff_only(tmp_path: Path) -> None:
    engine = _migrated(str(tmp_path / "c.db"))
    with engine.begin() as conn:
        dropped = P.retain(conn, _add(THIS_MONTH, -1))
    assert [d.rows for d in dropped] == [2]
    assert [s for s, _, _ in _rows(engine)] == [3, 4, 5]
    engine.dispose()


def test_retention_cli_keeps_the_current_and_previous_month(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    upgrade(db)
    last = _add(THIS_MONTH, -1)
    run = subprocess.run([sys.executable, "-m", "sitegate.cloud.cli", "retention", "--db", db,
                          "--before", f"{THIS_MONTH:%Y-%m}"], capture_output=True, text=True)
    assert run.returncode == 2 and "previous month are kept" in run.stderr
    assert "Traceback" not in run.stderr
    ok = subprocess.run([sys.executable, "-m", "sitegate.cloud.cli", "retention", "--db", db,
                         "--before", f"{last:%Y-%m}", "--json"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout) == []
