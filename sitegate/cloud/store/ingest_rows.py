"""Bulk insert of the ingest's reading rows into ``reading_rows``: COPY on PostgreSQL, one
``executemany`` on SQLite, both through the DBAPI connection of the caller's transaction (no
SQLAlchemy parameter processing per row); and the ids of epochs and units (``Labels``).

The caller hands only rows it knows are new (above the stream's locked mark and outside
its committed ranges), so no conflict handling is needed: should a row exist after all,
the statement fails and the caller's transaction with it (nothing half written).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from sitegate.cloud.store import tables as t

COLUMNS = tuple(c.name for c in t.reading_rows.columns)
_TIMES = (COLUMNS.index("ts"), COLUMNS.index("read_at"), COLUMNS.index("received_at"))
# copy_text and the writer build rows in this order (PostgreSQL's storage order).
assert COLUMNS == ("ts", "seq", "read_at", "received_at", "epoch_id", "unit_id", "flags_id",
                   "quality_id", "gateway_id", "meter_id", "quantity", "value"), COLUMNS


class Labels:
    """Epoch, unit and flag-list texts -> their ids in ``reading_epochs``,
    ``reading_units`` and ``reading_flags``, cached
    for the process. A text not seen yet is added in a transaction of its own, committed
    before any row uses its id (so a rolled-back batch never leaves a row whose id names
    nothing, and the next one finds it); two processes adding the same text get one id."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.epochs: dict[tuple[str, str], int] = {}
        self.units: dict[str, int] = {}
        self.flag_lists: dict[str, int] = {"[]": t.NO_FLAGS}

    def epoch(self, gateway_id: str, epoch: str) -> int:
        """The id of a gateway's buffer epoch (one per gateway and epoch)."""
        key = (gateway_id, epoch)
        got = self.epochs.get(key)
        return got if got is not None else self._add(
            t.reading_epochs, {"gateway_id": gateway_id, "epoch": epoch}, self.epochs, key)

    def learn_epochs(self, keys: Iterable[tuple[str, str]]) -> None:
        """Look up (and add) the ids of many (gateway, epoch) at once: one transaction for
        a group of messages, not one per gateway seen for the first time."""
        missing = sorted(set(keys) - self.epochs.keys())
        if not missing:
            return
        e = t.reading_epochs.c
        with self.engine.begin() as conn:
            ins = (postgresql.insert(t.reading_epochs) if conn.dialect.name == "postgresql"
                   else sqlite.insert(t.reading_epochs))
            for i in range(0, len(missing), 500):
                part = missing[i:i + 500]
                conn.execute(ins.on_conflict_do_nothing(),
                             [{"gateway_id": g, "epoch": x} for g, x in part])
                self.epochs.update(((g, x), int(k)) for k, g, x in conn.execute(
                    select(e.id, e.gateway_id, e.epoch).where(
                        tuple_(e.gateway_id, e.epoch).in_(part))))

    def unit(self, text: str) -> int:
        got = self.units.get(text)
        return got if got is not None else self._add(t.reading_units, {"unit": text},
                                                     self.units, text)

    def flags(self, text: str) -> int:
        """``text``: the list as JSON (``json.dumps``, as the view shows it)."""
        got = self.flag_lists.get(text)
        return got if got is not None else self._add(t.reading_flags, {"flags": text},
                                                     self.flag_lists, text)

    def _add(self, table: Table, values: dict[str, str], cache: dict[Any, int],
             key: Any) -> int:
        where = and_(*(table.c[k] == v for k, v in values.items()))
        with self.engine.begin() as conn:
            got = conn.execute(select(table.c.id).where(where)).scalar()
            if got is None:
                ins = (postgresql.insert(table) if conn.dialect.name == "postgresql"
                       else sqlite.insert(table))
                conn.execute(ins.values(values).on_conflict_do_nothing())
                got = conn.execute(select(table.c.id).where(where)).scalar_one()
        cache[key] = int(got)
        return cache[key]


def insert_readings(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """``rows``: tuples in COLUMNS order, times as aware UTC datetimes."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cols = ", ".join(COLUMNS)
    if conn.dialect.name == "postgresql":
        with dbapi.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
                f"COPY {t.reading_rows.name} ({cols}) FROM STDIN") as copy:
            copy.write(copy_text(rows))
        return
    # SQLite keeps times as SQLAlchemy's DateTime text (UTC, naive): its own processor.
    ts = t.reading_rows.c.ts.type
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
            f"INSERT INTO {t.reading_rows.name} ({cols}) VALUES ({', '.join('?' * len(COLUMNS))})",
            [(text(r[i]), r[1], text(r[j]), text(r[k]), *r[4:]) for r in rows])
    finally:
        cur.close()


# COPY's text format: a backslash and the control characters it names are escaped.
_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                         "\b": "\\b", "\f": "\\f", "\v": "\\v"})


class _Texts(dict):
    """Text -> its COPY form, escaped once per distinct text: a batch repeats its gateway,
    meters and quantities."""

    def __missing__(self, v: Any) -> str:
        text = "\\N" if v is None else str(v).translate(_ESCAPE)
        self[v] = text
        return text


class _Stamps(dict):
    """Time -> its COPY text, once per distinct time (a cycle's rows share theirs)."""

    def __missing__(self, v: datetime | None) -> str:
        text = "\\N" if v is None else v.isoformat()
        self[v] = text
        return text


def copy_text(rows: Sequence[tuple[Any, ...]]) -> bytes:
    """The rows (COLUMNS order) as COPY text: one f-string a row, times and texts from
    the caches above, ids as they are, the value as its text (a plain decimal: nothing to
    escape)."""
    t, e = _Stamps(), _Texts()
    return "".join([f"{t[r[0]]}\t{r[1]}\t{t[r[2]]}\t{t[r[3]]}\t{r[4]}\t{r[5]}\t{r[6]}\t{r[7]}\t"
                    f"{e[r[8]]}\t{e[r[9]]}\t{e[r[10]]}\t{r[11]}\n" for r in rows]).encode()
