"""The readings table by month (PostgreSQL): partitions made ahead, and retention.

On PostgreSQL ``reading_rows`` (the rows behind the view ``readings``) is range-partitioned
on ``ts``: one partition a month (``reading_rows_y2026m03``, [first of the month, first of
the next) in UTC) and a DEFAULT partition for rows of months without one (late backfill
from long ago). The ingest makes
the current month and AHEAD months after it at start and every few hours, so live rows
always land in their month; an old month is dropped whole (``DROP TABLE`` of its
partition, no row-by-row delete, nothing newer touched), optionally archived first (as the
view shows the rows: epoch, unit and quality as text).

SQLite keeps one table: retention there deletes the rows before the cutoff.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Connection, text

from sitegate.cloud.store import tables as t

ROWS = t.reading_rows.name
AHEAD = 2  # months made ahead of the current one
_LOCK = 0x5174_6761_7465  # advisory lock: one process makes partitions at a time


def month_start(d: date) -> datetime:
    return datetime(d.year, d.month, 1, tzinfo=UTC)


def next_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def name_of(month: date) -> str:
    return f"{ROWS}_y{month.year:04d}m{month.month:02d}"


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    start: datetime | None  # None: the default partition
    end: datetime | None


def partitioned(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql" and conn.execute(text(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = :t AND c.relnamespace = 'public'::regnamespace"),
        {"t": ROWS}).first() is not None


def partitions(conn: Connection) -> list[Partition]:
    """The readings partitions, oldest first, the default one last."""
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname = :t AND p.relnamespace = 'public'::regnamespace"),
        {"t": ROWS}).all()
    out = []
    for name, bound in rows:
        if bound == "DEFAULT":
            out.append(Partition(name, None, None))
            continue
        # FOR VALUES FROM ('2026-03-01 00:00:00+00') TO ('2026-04-01 00:00:00+00')
        lo, hi = (datetime.fromisoformat(x.split("'")[1]).astimezone(UTC)
                  for x in bound.split(" TO "))
        out.append(Partition(name, lo, hi))
    return sorted(out, key=lambda p: (p.start is None, p.start or datetime.min.replace(
        tzinfo=UTC)))


def ensure(conn: Connection, today: date | None = None, ahead: int = AHEAD) -> list[str]:
    """Make the partitions of this month and ``ahead`` months after it where missing;
    returns the names made. Nothing on SQLite or an unpartitioned table."""
    if not partitioned(conn):
        return []
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    have = {p.name for p in partitions(conn)}
    month = (today or datetime.now(UTC).date()).replace(day=1)
    made = []
    for _ in range(ahead + 1):
        name = name_of(month)
        if name not in have:
            create(conn, month)
            made.append(name)
        month = next_month(month)
    return made


def create(conn: Connection, month: date) -> None:
    """One month's partition (its indexes come from the parent's)."""
    lo, hi = month_start(month), month_start(next_month(month))
    conn.execute(text(
        f'CREATE TABLE "{name_of(month)}" PARTITION OF "{ROWS}" '
        f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"))


@dataclass(frozen=True, slots=True)
class Dropped:
    what: str  # a partition's name, or "rows before the cutoff"
    rows: int
    archive: str | None


def retain(conn: Connection, before: date, archive: Path | None = None) -> list[Dropped]:
    """Remove the readings of the months before ``before`` (the first of a month): on
    PostgreSQL each month partition ending by then is detached and dropped, and the rows
    of the default partition before it deleted; on SQLite the rows are deleted. With
    ``archive``, each month's rows are written first to a gzip CSV in that directory."""
    cutoff = month_start(before)
    out = []
    if partitioned(conn):
        for part in partitions(conn):
            if part.end is None or part.end > cutoff:
                continue
            file = _archive(conn, archive, part.name, _readable(conn, part.name))
            n = conn.execute(text(f'SELECT count(*) FROM "{part.name}"')).scalar_one()
            conn.execute(text(f'ALTER TABLE "{ROWS}" DETACH PARTITION "{part.name}"'))
            conn.execute(text(f'DROP TABLE "{part.name}"'))
            out.append(Dropped(part.name, n, file))
        default = next((p.name for p in partitions(conn) if p.start is None), None)
        where, table = "ts < :cut", default
    else:
        where, table = "ts < :cut", ROWS
    if table is not None:
        cut = _bound(conn, cutoff)
        file = _archive(conn, archive, f"{table}-before-{before.isoformat()}",
                        f"{_readable(conn, table)} WHERE r.{where}", {"cut": cut})
        n = conn.execute(text(f'DELETE FROM "{table}" WHERE {where}'), {"cut": cut}).rowcount
        if n:
            out.append(Dropped(f"rows before {before.isoformat()} in {table}", n, file))
        elif file:
            Path(file).unlink()
    return out


def _readable(conn: Connection, source: str) -> str:
    """The rows of ``source`` (``reading_rows`` or one of its partitions) as the view
    ``readings`` shows them."""
    value = "r.value::text" if conn.dialect.name == "postgresql" else "r.value"
    return (f"SELECT r.gateway_id, e.epoch, r.seq, r.meter_id, r.ts, r.quantity, "
            f"{value} AS value, u.unit, q.quality, f.flags, "
            f'r.read_at, r.received_at FROM "{source}" r '
            f"LEFT JOIN {t.reading_epochs.name} e ON e.id = r.epoch_id "
            f"LEFT JOIN {t.reading_units.name} u ON u.id = r.unit_id "
            f"LEFT JOIN {t.reading_qualities.name} q ON q.id = r.quality_id "
            f"LEFT JOIN {t.reading_flags.name} f ON f.id = r.flags_id")


def _bound(conn: Connection, when: datetime) -> object:
    """A time as the dialect stores it (SQLite: SQLAlchemy's text, UTC)."""
    impl = t.reading_rows.c.ts.type.dialect_impl(conn.dialect)
    bind = impl.bind_processor(conn.dialect)
    return bind(when.replace(tzinfo=None) if conn.dialect.name == "sqlite" else when) \
        if bind else when


def _archive(conn: Connection, directory: Path | None, name: str, query: str,
             params: dict | None = None) -> str | None:
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.csv.gz"
    result = conn.execute(text(query), params or {})
    with gzip.open(path, "wt", newline="") as out:
        w = csv.writer(out)
        w.writerow(result.keys())
        while rows := result.fetchmany(10_000):
            w.writerows(rows)
    return str(path)
