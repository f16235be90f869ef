"""Bulk insert of the ingest's reading rows: COPY on PostgreSQL, one ``executemany`` on
SQLite, both through the DBAPI connection of the caller's transaction (no SQLAlchemy
parameter processing per row).

The caller hands only rows it knows are new (above the stream's locked mark and outside
its committed ranges), so no conflict handling is needed: should a row exist after all,
the statement fails and the caller's transaction with it (nothing half written).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from sitegate.cloud.store import tables as t

COLUMNS = ("gateway_id", "epoch", "seq", "meter_id", "ts", "quantity", "value", "unit",
           "quality", "flags", "read_at", "received_at")
_TIMES = (COLUMNS.index("ts"), COLUMNS.index("read_at"), COLUMNS.index("received_at"))


def insert_readings(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """``rows``: tuples in COLUMNS order, times as aware UTC datetimes."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cols = ", ".join(COLUMNS)
    if conn.dialect.name == "postgresql":
        with dbapi.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
                f"COPY {t.readings.name} ({cols}) FROM STDIN") as copy:
            copy.write(copy_text(rows))
        return
    # SQLite keeps times as SQLAlchemy's DateTime text (UTC, naive): its own processor.
    ts = t.readings.c.ts.type
    bind = ts.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    assert bind is not None
    stamps: dict[Any, Any] = {None: None}

    def text(d: Any) -> Any:
        got = stamps.get(d)
        if got is None and d is not None:
            got = stamps[d] = bind(d.replace(tzinfo=None))
        return got

    i, j, k = _TIMES
    cur = dbapi.cursor()
    try:
        cur.executemany(
            f"INSERT INTO {t.readings.name} ({cols}) VALUES ({', '.join('?' * len(COLUMNS))})",
            [(*r[:i], text(r[i]), *r[i + 1:j], text(r[j]), text(r[k])) for r in rows])
    finally:
        cur.close()


# COPY's text format: a backslash and the control characters it names are escaped.
_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                         "\b": "\\b", "\f": "\\f", "\v": "\\v"})


class _Texts(dict):
    """Value -> its COPY text, made once per distinct value: a batch repeats its gateway,
    epoch, meters, quantities, units, qualities and times."""

    def __missing__(self, v: Any) -> str:
        if v is None:
            text = "\\N"
        elif isinstance(v, datetime):
            text = v.isoformat()
        else:
            text = str(v).translate(_ESCAPE)
        self[v] = text
        return text


def copy_text(rows: Sequence[tuple[Any, ...]]) -> bytes:
    """The rows as COPY text (tab-separated lines), built at C speed where it can be."""
    texts = _Texts()
    return "".join(["\t".join([texts[v] for v in r]) + "\n" for r in rows]).encode()
