"""The gateway's SQLite buffer: everything the gateway must deliver, until the cloud acks it.

One table of entries keyed by (stream, seq). Sequence numbers come from the ``streams``
table, so a number is never reused even after acknowledged rows were removed. The cloud's
acknowledgement is a contiguous high-water mark per stream (``acked_upto``): a row is
acknowledged when ``seq <= acked_upto``, so acking is one UPDATE, not one per row.

Durability: WAL with ``synchronous=FULL``; each ``append`` is one transaction (one per poll
cycle), so a crash loses nothing committed and never leaves half a cycle.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
import structlog

from sitegate.sync.protocol import (
    LEGACY_EPOCH,
    STREAM_EVENTS,
    STREAM_READINGS,
    STREAMS,
    Reading,
)

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 2

# Each migration takes the database from version N-1 to N. Append, never edit.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS streams (
        stream TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL DEFAULT 0,
        acked_upto INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS entries (
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts TEXT NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (stream, seq)
    ) WITHOUT ROWID;
    """,
    # 2: the buffer's epoch, made once with the file (see protocol.LEGACY_EPOCH). A file
    # that already holds rows keeps the legacy epoch "0": the cloud stored its rows under
    # it. A new file gets "<creation time UTC>-<random>", so a buffer recreated after
    # corruption never collides with the sequences of the one it replaces.
    """
    CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT OR IGNORE INTO meta (key, value)
    SELECT 'epoch', CASE WHEN EXISTS (SELECT 1 FROM streams WHERE last_seq > 0) THEN '0'
        ELSE strftime('%Y%m%d%H%M%S', 'now') || '-' || lower(hex(randomblob(6))) END;
    """,
]


class BufferCorrupt(Exception):
    """The database file failed its integrity check."""


@dataclass(frozen=True, slots=True)
class Entry:
    stream: str
    seq: int
    ts: str
    payload: str  # JSON text, exactly as stored

    def data(self) -> dict[str, Any]:
        return json.loads(self.payload)


def _now() -> str:
    return datetime.now(UTC).isoformat()


@functools.lru_cache(maxsize=4096)
def _quoted(text: str) -> str:
    return json.dumps(text)


def reading_json(r: Reading) -> str:
    """A reading's stored JSON text (``json.dumps(r.to_dict())`` up to spacing), fast."""
    # Meter ids, quantities and units repeat every cycle: their JSON quoting is cached.
    text = (f'{{"meter_id":{_quoted(r.meter_id)},"ts":"{_iso(r.ts)}",'
            f'"quantity":{_quoted(r.quantity)},"value":"{r.value}",'
            f'"unit":{_quoted(r.unit)},"quality":{_quoted(r.quality)}')
    if r.read_at is not None:
        text += f',"read_at":"{_iso(r.read_at)}"'
    if r.flags:
        text += f',"flags":{_encode(list(r.flags))}'
    return text + "}"


def reading_row(r: Reading) -> Row:
    return (STREAM_READINGS, _iso(r.ts), reading_json(r))


@functools.lru_cache(maxsize=64)
def _iso(t: datetime) -> str:
    # A poll cycle's readings share a handful of timestamps; formatting each once counts.
    return t.isoformat()


_encode = json.JSONEncoder(separators=(",", ":")).encode
encode = _encode  # payload dict -> stored JSON text
Row = tuple[str, str, str]  # (stream, ts, payload JSON text): one entry, serialized
CAP_CHECK_BYTES = 256 * 1024  # look at the file size after this much new data


class Buffer:
    """Append-only, acknowledgement-trimmed store of readings, sessions and events.

    Safe to call from several threads (the asyncio loop hands writes to a worker thread so
    an fsync never blocks polling); one connection, serialized by a lock.
    """

    def __init__(
        self, path: str | os.PathLike[str], max_bytes: int | None = None, readonly: bool = False
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._cap_alarm_raised = False
        self._since_cap_check = 0
        if readonly:  # for the CLI beside a running daemon: never migrates or quarantines
            if not self.path.exists():
                raise FileNotFoundError(f"no buffer database at {self.path}")
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                         check_same_thread=False)
            self.db = sqlite_utils.Database(self._conn)
            self.epoch = self._read_epoch()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        quarantined: Path | None = None
        try:
            self._conn = self._open()
        except (sqlite3.DatabaseError, BufferCorrupt) as exc:
            quarantined = self._quarantine()
            log.error("buffer.corrupt", path=str(self.path), moved_to=str(quarantined),
                      error=str(exc))
            self._conn = self._open()
        self.db = sqlite_utils.Database(self._conn)
        self.epoch = self._read_epoch()
        if quarantined is not None:
            log.error("buffer.new_epoch", path=str(self.path), epoch=self.epoch)
            self.append_event("buffer_corrupt", severity="alarm",
                              message="buffer database was corrupt; moved aside, new one started",
                              quarantined=str(quarantined), epoch=self.epoch)

    # -- opening, migrations, quarantine -------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
            row = conn.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise BufferCorrupt(str(row[0]) if row else "quick_check returned nothing")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise BufferCorrupt(
                f"schema version {version} is newer than this software ({len(MIGRATIONS)})"
            )
        for number in range(version, len(MIGRATIONS)):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _read_epoch(self) -> str:
        """This file's epoch; a file from before epochs (read-only open) is the legacy one."""
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        except sqlite3.OperationalError:  # no meta table: not migrated (read-only CLI)
            row = None
        return row[0] if row else LEGACY_EPOCH

    def _quarantine(self) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                shutil.move(src, Path(str(target) + suffix))
        return target

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- writing ---------------------------------------------------------------------------

    def append(
        self, stream: str, payloads: Sequence[dict[str, Any]], ts: Sequence[str] | None = None
    ) -> tuple[int, int] | None:
        """Append payloads to ``stream`` in one transaction; returns the (first, last) seq."""
        ranges = self.append_many({stream: (payloads, ts)})
        return ranges.get(stream)

    def append_many(
        self, batches: dict[str, tuple[Sequence[dict[str, Any]], Sequence[str] | None]]
    ) -> dict[str, tuple[int, int]]:
        """Append to several streams in ONE transaction (direct use: tools and tests; the
        daemon writes through its one writer, sitegate.gateway.writer)."""
        rows: list[Row] = []
        for stream, (payloads, ts) in batches.items():
            if stream not in STREAMS:
                raise ValueError(f"unknown stream {stream!r}")
            stamps = list(ts) if ts is not None else [p.get("ts") or _now() for p in payloads]
            rows.extend(zip(itertools.repeat(stream), stamps, map(_encode, payloads)))
        return self.write(rows)

    def write(self, rows: Sequence[Row], mark: str | None = None) -> dict[str, tuple[int, int]]:
        """Rows (stream, ts, payload JSON text), already serialized, in ONE transaction, each
        stream's rows numbered in the order given. ``mark`` (the writer's hand-over mark) is
        stored in the same transaction, so after an error that leaves it unclear whether the
        commit happened, ``written_mark`` tells. Returns each stream's (first, last) seq.

        Once the commit is done this never raises: the size cap is enforced after it, and
        its failure is logged, not reported as a failed write (which would be retried)."""
        ranges: dict[str, tuple[int, int]] = {}
        if not rows and mark is None:
            return ranges
        per_stream: dict[str, list[tuple[str, str]]] = {}
        for stream, ts, text in rows:
            if stream not in STREAMS:
                raise ValueError(f"unknown stream {stream!r}")
            per_stream.setdefault(stream, []).append((ts, text))
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stream, items in per_stream.items():
                    row = conn.execute(
                        "SELECT last_seq FROM streams WHERE stream=?", (stream,)
                    ).fetchone()
                    first = (row[0] if row else 0) + 1
                    conn.executemany(
                        "INSERT INTO entries (stream, seq, ts, payload) VALUES (?,?,?,?)",
                        ((stream, seq, ts, text)
                         for seq, (ts, text) in zip(itertools.count(first), items)),
                    )
                    last = first + len(items) - 1
                    conn.execute(
                        "INSERT INTO streams (stream, last_seq) VALUES (?, ?) "
                        "ON CONFLICT(stream) DO UPDATE SET last_seq=excluded.last_seq",
                        (stream, last),
                    )
                    ranges[stream] = (first, last)
                if mark is not None:
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('writer_mark', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (mark,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT may already have rolled back
                    conn.execute("ROLLBACK")
                raise
        if self.max_bytes is not None:
            self._since_cap_check += sum(len(text) for _, _, text in rows)
            if self._since_cap_check >= min(CAP_CHECK_BYTES, self.max_bytes // 16):
                self._since_cap_check = 0
                try:
                    self.enforce_cap()
                except Exception:  # noqa: BLE001 - the rows are in; the next check retries
                    log.exception("buffer.cap_check_failed")
        return ranges

    def written_mark(self) -> str | None:
        """The mark of the last ``write`` that carried one (see ``write``)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key='writer_mark'").fetchone()
        return row[0] if row else None

    def append_event(self, kind: str, severity: str = "info", **fields: Any) -> None:
        payload = {"ts": _now(), "kind": kind, "severity": severity, **fields}
        self.append(STREAM_EVENTS, [payload])

    # -- reading and acknowledging -----------------------------------------------------------

    def pending(self, stream: str, limit: int = 500, after: int | None = None) -> list[Entry]:
        """Unacknowledged entries of ``stream`` in sequence order (after ``after`` if given)."""
        with self._lock:
            start = after if after is not None else self.acked_upto(stream)
            rows = self._conn.execute(
                "SELECT seq, ts, payload FROM entries WHERE stream=? AND seq>? "
                "ORDER BY seq LIMIT ?",
                (stream, start, limit),
            ).fetchall()
        return [Entry(stream, seq, ts, payload) for seq, ts, payload in rows]

    def ack(self, stream: str, upto: int) -> int:
        """Record the cloud's high-water mark; it only moves forward. Returns the mark."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO streams (stream, last_seq, acked_upto) VALUES (?, 0, 0) "
                    "ON CONFLICT(stream) DO NOTHING",
                    (stream,),
                )
                # Never beyond what we wrote: an ack for unknown rows is a cloud bug.
                self._conn.execute(
                    "UPDATE streams SET acked_upto = MAX(acked_upto, MIN(?, last_seq)) "
                    "WHERE stream=?",
                    (upto, stream),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return self.acked_upto(stream)

    def acked_upto(self, stream: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT acked_upto FROM streams WHERE stream=?", (stream,)
            ).fetchone()
        return row[0] if row else 0

    def last_seq(self, stream: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT last_seq FROM streams WHERE stream=?", (stream,)
            ).fetchone()
        return row[0] if row else 0

    # -- size cap ------------------------------------------------------------------------------

    def used_bytes(self) -> int:
        with self._lock:
            pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
            free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
            size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def enforce_cap(self) -> int:
        """Remove acknowledged rows, oldest first, until under the cap. Returns rows removed.

        Unacknowledged rows are never removed: when they alone fill the cap, an alarm event
        is raised (once per crossing) and writing goes on.
        """
        if self.max_bytes is None:
            return 0
        removed = 0
        while self.used_bytes() > self.max_bytes:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    cur = self._conn.execute(
                        "DELETE FROM entries WHERE (stream, seq) IN ("
                        " SELECT e.stream, e.seq FROM entries e JOIN streams s"
                        " ON s.stream = e.stream WHERE e.seq <= s.acked_upto"
                        " ORDER BY e.ts LIMIT 1000)"
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            if cur.rowcount <= 0:
                break
            removed += cur.rowcount
        over = self.used_bytes() > self.max_bytes
        if over and not self._cap_alarm_raised:
            self._cap_alarm_raised = True
            log.error("buffer.full_of_unacknowledged", used=self.used_bytes(), cap=self.max_bytes)
            self.append_event(
                "buffer_full", severity="alarm",
                message="unacknowledged data reached the buffer size cap; nothing is dropped",
                used_bytes=self.used_bytes(), cap_bytes=self.max_bytes,
            )
        elif not over:
            self._cap_alarm_raised = False
        return removed

    # -- stats ---------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {"path": str(self.path), "epoch": self.epoch, "streams": {}}
            for stream in STREAMS:
                acked = self.acked_upto(stream)
                count, oldest = self._conn.execute(
                    "SELECT COUNT(*), MIN(ts) FROM entries WHERE stream=? AND seq>?",
                    (stream, acked),
                ).fetchone()
                rows = self._conn.execute(
                    "SELECT COUNT(*) FROM entries WHERE stream=?", (stream,)
                ).fetchone()[0]
                out["streams"][stream] = {
                    "rows": rows,
                    "last_seq": self.last_seq(stream),
                    "acked_upto": acked,
                    "unacknowledged": count,
                    "oldest_unacknowledged": oldest,
                }
        out["used_bytes"] = self.used_bytes()
        out["file_bytes"] = sum(
            Path(str(self.path) + s).stat().st_size
            for s in ("", "-wal") if Path(str(self.path) + s).exists()
        )
        out["cap_bytes"] = self.max_bytes
        return out
