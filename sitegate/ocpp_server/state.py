"""The central system's own SQLite file: what must survive a gateway restart.

Transactions (open and closed, until their final report reached the buffer), their meter
values, the raw text of non-conformant messages, what we learnt about each charger, and the
cloud's badge list (so authorization works after a restart while the cloud is unreachable).

Idempotency comes from keys, not from remembering message ids: chargers resend after a
reconnect with new message ids. A StartTransaction is the same one when charger, connector,
badge, timestamp and meter start are equal; a meter value when transaction, time, measurand,
phase and context are equal.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,      -- the OCPP 1.6 transactionId
    cp_id TEXT NOT NULL,
    ext_id TEXT,                               -- OCPP 2.0.1 transactionId (charger's)
    connector INTEGER NOT NULL,
    kind TEXT NOT NULL,
    badge TEXT,
    account TEXT,
    start_ts TEXT NOT NULL,
    stop_ts TEXT,
    meter_start TEXT NOT NULL,
    meter_stop TEXT,
    last_meter TEXT,
    last_meter_ts TEXT,
    stop_reason TEXT,
    flags TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL DEFAULT 'running',    -- running | completed
    start_key TEXT NOT NULL UNIQUE,
    reported TEXT                              -- status of the last report given to the sink
);
CREATE UNIQUE INDEX IF NOT EXISTS tx_ext ON transactions (cp_id, ext_id) WHERE ext_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tx_open ON transactions (status, cp_id);
CREATE TABLE IF NOT EXISTS meter_values (
    tx_id INTEGER NOT NULL,
    ts TEXT NOT NULL,
    measurand TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT '',
    context TEXT NOT NULL DEFAULT '',
    value TEXT NOT NULL,
    unit TEXT NOT NULL,
    PRIMARY KEY (tx_id, ts, measurand, phase, context)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen_events (       -- OCPP 2.0.1 TransactionEvent seqNo
    cp_id TEXT NOT NULL, ext_id TEXT NOT NULL, seq_no INTEGER NOT NULL,
    PRIMARY KEY (cp_id, ext_id, seq_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS raw_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    cp_id TEXT NOT NULL,
    action TEXT NOT NULL,
    raw TEXT NOT NULL,
    problems TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chargers (
    cp_id TEXT PRIMARY KEY,
    info TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signed_values (     -- OCMF records exactly as the charger sent them
    tx_id INTEGER NOT NULL,
    ts TEXT NOT NULL,
    context TEXT NOT NULL,
    source TEXT NOT NULL,                      -- MeterValues | StopTransaction | TransactionEvent
    data TEXT NOT NULL,
    encoding TEXT,
    signing_method TEXT,
    public_key TEXT,
    PRIMARY KEY (tx_id, data)                  -- a record resent or in two placements: once
) WITHOUT ROWID;
"""


@dataclass(slots=True)
class Tx:
    id: int
    cp_id: str
    ext_id: str | None
    connector: int
    kind: str
    badge: str | None
    account: str | None
    start_ts: datetime
    stop_ts: datetime | None
    meter_start: Decimal
    meter_stop: Decimal | None
    last_meter: Decimal | None
    last_meter_ts: datetime | None
    stop_reason: str | None
    flags: list[str]
    status: str
    reported: str | None

    @property
    def session_id(self) -> str:
        return f"{self.cp_id}-{self.ext_id if self.ext_id is not None else self.id}"


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def _dec(s: str | None) -> Decimal | None:
    return Decimal(s) if s is not None else None


def _tx(row: sqlite3.Row) -> Tx:
    return Tx(
        id=row["id"], cp_id=row["cp_id"], ext_id=row["ext_id"], connector=row["connector"],
        kind=row["kind"], badge=row["badge"], account=row["account"],
        start_ts=datetime.fromisoformat(row["start_ts"]), stop_ts=_dt(row["stop_ts"]),
        meter_start=Decimal(row["meter_start"]), meter_stop=_dec(row["meter_stop"]),
        last_meter=_dec(row["last_meter"]), last_meter_ts=_dt(row["last_meter_ts"]),
        stop_reason=row["stop_reason"], flags=json.loads(row["flags"]), status=row["status"],
        reported=row["reported"],
    )


class StateStore:
    """One connection, used from the event loop only; every write is committed at once
    (WAL, synchronous=FULL) before the charger gets its acknowledgement."""

    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction (one fsync) for all writes of one message; nests."""
        self._depth += 1
        if self._depth == 1:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._depth == 1:
                self._db.execute("ROLLBACK")
            raise
        else:
            if self._depth == 1:
                self._db.execute("COMMIT")
        finally:
            self._depth -= 1

    # -- chargers and key/value ------------------------------------------------------------

    def charger_info(self, cp_id: str) -> dict[str, Any]:
        row = self._db.execute("SELECT info FROM chargers WHERE cp_id=?", (cp_id,)).fetchone()
        return json.loads(row[0]) if row else {}

    def update_charger(self, cp_id: str, **fields: Any) -> None:
        info = self.charger_info(cp_id) | fields
        self._db.execute(
            "INSERT INTO chargers (cp_id, info) VALUES (?, ?) "
            "ON CONFLICT(cp_id) DO UPDATE SET info=excluded.info",
            (cp_id, json.dumps(info, default=str)),
        )

    def get(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                         (key, json.dumps(value)))

    # -- raw messages ------------------------------------------------------------------------

    def keep_raw(self, cp_id: str, action: str, raw: str, problems: list[str]) -> None:
        self._db.execute(
            "INSERT INTO raw_messages (received_at, cp_id, action, raw, problems) "
            "VALUES (?,?,?,?,?)",
            (datetime.now(UTC).isoformat(), cp_id, action, raw, json.dumps(problems)),
        )

    def raw_messages(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM raw_messages ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) | {"problems": json.loads(r["problems"])} for r in rows]

    # -- transactions ------------------------------------------------------------------------

    def start_tx(self, *, cp_id: str, connector: int, kind: str, badge: str | None,
                 account: str | None, start_ts: datetime, meter_start: Decimal,
                 ext_id: str | None = None, flags: list[str] | None = None) -> tuple[Tx, bool]:
        """Open a transaction; returns (tx, created). A resent start returns the first one."""
        key = ext_id if ext_id is not None else "|".join(
            [str(connector), badge or "", start_ts.isoformat(), str(meter_start)])
        key = f"{cp_id}|{key}"
        cur = self._db.execute(
            "INSERT OR IGNORE INTO transactions (cp_id, ext_id, connector, kind, badge, "
            "account, start_ts, meter_start, last_meter, last_meter_ts, flags, start_key) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (cp_id, ext_id, connector, kind, badge, account, start_ts.isoformat(),
             str(meter_start), str(meter_start), start_ts.isoformat(),
             json.dumps(flags or []), key),
        )
        row = self._db.execute("SELECT * FROM transactions WHERE start_key=?", (key,)).fetchone()
        return _tx(row), cur.rowcount == 1

    def tx(self, tx_id: int) -> Tx | None:
        row = self._db.execute("SELECT * FROM transactions WHERE id=?", (tx_id,)).fetchone()
        return _tx(row) if row else None

    def tx_by_ext(self, cp_id: str, ext_id: str) -> Tx | None:
        row = self._db.execute("SELECT * FROM transactions WHERE cp_id=? AND ext_id=?",
                               (cp_id, ext_id)).fetchone()
        return _tx(row) if row else None

    def open_txs(self, cp_id: str | None = None) -> list[Tx]:
        if cp_id is None:
            rows = self._db.execute(
                "SELECT * FROM transactions WHERE status='running' ORDER BY id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM transactions WHERE status='running' AND cp_id=? ORDER BY id",
                (cp_id,)).fetchall()
        return [_tx(r) for r in rows]

    def add_meter_values(self, tx_id: int, rows: list[tuple[datetime, str, str, str, Decimal,
                                                            str]]) -> int:
        """Rows of (ts, measurand, phase, context, value, unit); duplicates are ignored."""
        cur = self._db.executemany(
            "INSERT OR IGNORE INTO meter_values (tx_id, ts, measurand, phase, context, value, "
            "unit) VALUES (?,?,?,?,?,?,?)",
            [(tx_id, ts.isoformat(), m, p, c, str(v), u) for ts, m, p, c, v, u in rows],
        )
        return cur.rowcount

    def meter_values(self, tx_id: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT ts, measurand, phase, context, value, unit FROM meter_values WHERE tx_id=? "
            "ORDER BY ts, measurand, phase", (tx_id,)).fetchall()
        return [dict(r) for r in rows]

    def add_signed(self, tx_id: int, rows: list[dict[str, Any]], limit: int) -> int:
        """Keep signed values (``data`` as received); at most ``limit`` per transaction.
        Returns how many were refused for the limit (duplicates are not counted)."""
        have = self._db.execute("SELECT count(*) FROM signed_values WHERE tx_id=?",
                                (tx_id,)).fetchone()[0]
        refused = 0
        for r in rows:
            if self._db.execute("SELECT 1 FROM signed_values WHERE tx_id=? AND data=?",
                                (tx_id, r["data"])).fetchone():
                continue
            # the last places are kept for begin and end records: a charger signing every
            # periodic value must not push out the readings a bill is made of
            reserved = 0 if r["context"].startswith("Transaction.") else 4
            if have >= limit - reserved:
                refused += 1
                continue
            self._db.execute(
                "INSERT INTO signed_values (tx_id, ts, context, source, data, encoding, "
                "signing_method, public_key) VALUES (?,?,?,?,?,?,?,?)",
                (tx_id, r["ts"], r["context"], r["source"], r["data"], r.get("encoding"),
                 r.get("signing_method"), r.get("public_key")))
            have += 1
        return refused

    def signed_values(self, tx_id: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT ts, context, source, data, encoding, signing_method, public_key "
            "FROM signed_values WHERE tx_id=? ORDER BY ts, context", (tx_id,)).fetchall()
        return [dict(r) for r in rows]

    def set_last_meter(self, tx_id: int, wh: Decimal, ts: datetime) -> None:
        # Keep the latest reading by time: values resent out of order must not go backwards.
        self._db.execute(
            "UPDATE transactions SET last_meter=?, last_meter_ts=? WHERE id=? AND "
            "(last_meter_ts IS NULL OR last_meter_ts <= ?)",
            (str(wh), ts.isoformat(), tx_id, ts.isoformat()),
        )

    def stop_tx(self, tx_id: int, *, stop_ts: datetime, meter_stop: Decimal,
                reason: str | None, flags: list[str]) -> None:
        self._db.execute(
            "UPDATE transactions SET stop_ts=?, meter_stop=?, stop_reason=?, flags=?, "
            "status='completed', reported=NULL WHERE id=?",
            (stop_ts.isoformat(), str(meter_stop), reason, json.dumps(sorted(set(flags))),
             tx_id),
        )

    def set_flags(self, tx_id: int, flags: list[str]) -> None:
        self._db.execute("UPDATE transactions SET flags=? WHERE id=?",
                         (json.dumps(sorted(set(flags))), tx_id))

    def set_badge(self, tx_id: int, badge: str, account: str | None) -> None:
        self._db.execute("UPDATE transactions SET badge=?, account=? WHERE id=?",
                         (badge, account, tx_id))

    def mark_reported(self, tx_id: int, status: str) -> None:
        self._db.execute("UPDATE transactions SET reported=? WHERE id=?", (status, tx_id))

    def unreported_completed(self) -> list[Tx]:
        rows = self._db.execute(
            "SELECT * FROM transactions WHERE status='completed' AND "
            "(reported IS NULL OR reported != 'completed') ORDER BY id").fetchall()
        return [_tx(r) for r in rows]

    def recent_txs(self, limit: int = 50) -> list[Tx]:
        rows = self._db.execute(
            "SELECT * FROM transactions ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_tx(r) for r in rows]

    def event_seen(self, cp_id: str, ext_id: str, seq_no: int) -> bool:
        """Whether this TransactionEvent (by seqNo) was handled completely already."""
        return self._db.execute(
            "SELECT 1 FROM seen_events WHERE cp_id=? AND ext_id=? AND seq_no=?",
            (cp_id, ext_id, seq_no)).fetchone() is not None

    def mark_event(self, cp_id: str, ext_id: str, seq_no: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO seen_events (cp_id, ext_id, seq_no) VALUES (?,?,?)",
            (cp_id, ext_id, seq_no))
