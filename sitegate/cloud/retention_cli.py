"""``sitegate-cloud partitions`` and ``sitegate-cloud retention``: the readings table by
month on PostgreSQL (see ``sitegate.cloud.store.partitions``).

``partitions`` makes the months ahead (the ingest does it too) and lists them; ``retention
--before 2025-01`` drops the months before January 2025 whole (on SQLite: deletes their
rows), each written to a gzip CSV first with ``--archive DIR``. The current and the previous
month are never dropped (billing reads them).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from sitegate.common.output import emit, table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("partitions", help="readings partitions by month (PostgreSQL): make "
                                          "the months ahead, list them")
    p.add_argument("--ahead", type=int, default=2, help="months after this one (default 2)")
    p.set_defaults(func=_partitions)
    q = sub.add_parser("retention", help="drop the readings of old months (whole partitions "
                                         "on PostgreSQL), optionally archived first")
    q.add_argument("--before", required=True, metavar="YYYY-MM",
                   help="drop every month before this one")
    q.add_argument("--archive", metavar="DIR", help="write each month to DIR/*.csv.gz first")
    q.set_defaults(func=_retention)
    for x in (p, q):
        x.add_argument("--db", required=True, help="database URL or SQLite file path")
        x.add_argument("--json", action="store_true", help="machine-readable output")


def _fail(command: str, message: str) -> int:
    print(f"sitegate-cloud {command}: {message}", file=sys.stderr)
    return 2


def _partitions(args: argparse.Namespace) -> int:
    from sitegate.cloud.store import partitions as P
    from sitegate.cloud.store.db import open_db

    if not 0 <= args.ahead <= 24:
        return _fail("partitions", f"--ahead {args.ahead}: 0 to 24 months")
    engine = open_db(args.db)
    with engine.begin() as conn:
        if not P.partitioned(conn):
            emit({"partitioned": False, "partitions": []}, args.json,
                 "readings is one table here (partitions are PostgreSQL's)")
            return 0
        made = P.ensure(conn, ahead=args.ahead)
        parts = P.partitions(conn)
    rows = [{"name": x.name, "from": x.start, "to": x.end, "made_now": x.name in made}
            for x in parts]
    emit({"partitioned": True, "partitions": rows}, args.json, table(
        [[r["name"], r["from"].date() if r["from"] else "(default)",
          r["to"].date() if r["to"] else "", "made now" if r["made_now"] else ""]
         for r in rows], ["partition", "from", "to", ""]))
    return 0


def _retention(args: argparse.Namespace) -> int:
    from sitegate.cloud.store import partitions as P
    from sitegate.cloud.store.db import open_db

    try:
        before = date.fromisoformat(args.before + "-01")
    except ValueError:
        return _fail("retention", f"--before {args.before!r}: expected YYYY-MM")
    this_month = datetime.now(UTC).date().replace(day=1)
    keep_from = date(this_month.year - (this_month.month == 1),
                     (this_month.month - 2) % 12 + 1, 1)
    if before > keep_from:
        return _fail("retention", f"--before {args.before}: the current and the previous "
                     f"month are kept (at most --before {keep_from:%Y-%m})")
    engine = open_db(args.db)
    with engine.begin() as conn:
        dropped = P.retain(conn, before, Path(args.archive) if args.archive else None)
    rows = [{"what": d.what, "rows": d.rows, "archive": d.archive} for d in dropped]
    emit(rows, args.json, table([[r["what"], r["rows"], r["archive"] or ""] for r in rows],
                                ["dropped", "rows", "archive"])
         if rows else f"nothing before {args.before}")
    return 0
