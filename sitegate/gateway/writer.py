"""The one buffer writer: poll cycles from every bus, OCPP session reports and events reach
the buffer through one ordered queue, consumed by one task that writes in a thread of its own.

Why one: with a write per bus task, two cycles ending together while a write was slow were
both written by both tasks (issue 11). Here a hand-over is serialized once, queued in hand-
over order and written exactly once; queued cycles go into one transaction together (each
cycle whole). Every transaction stores a mark (this run's id, the last hand-over number in
it): after a write that raised, the mark says whether its commit happened anyway, so a retry
never stores a cycle twice.

Disk full or failing: cycles wait in memory, up to ``max_pending_bytes`` (their serialized
size); past it the oldest waiting cycle is dropped, and the loss is counted, logged and
reported (status, the cloud's status message, an alarm event once writing works again). At
stop the daemon makes a last write; what still cannot be written goes to a spill file beside
the buffer (``<buffer>.spill``), taken back at the next start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import os
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from sitegate.gateway.buffer import Buffer, Row, encode, reading_row
from sitegate.sync.protocol import STREAM_EVENTS, STREAMS, Reading

log = structlog.get_logger(__name__)

ROW_OVERHEAD = 120  # bytes a queued row costs beyond its text: CPython tuple, str header
BATCH_BYTES = 1024 * 1024  # at most this much in one transaction when a backlog is written
RETRY_MIN, RETRY_MAX = 0.2, 5.0  # seconds between attempts while writing fails
SPILL_VERSION = 1


def spill_path(buffer_path: str | os.PathLike[str]) -> Path:
    p = Path(buffer_path)
    return p.with_name(p.name + ".spill")


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(slots=True)
class Cycle:
    """One hand-over, serialized: written whole, in one transaction."""

    origin: str  # the run (or spill file) that numbered it
    n: int  # its hand-over number within origin
    rows: list[Row]
    nbytes: int
    done: concurrent.futures.Future[None] | None = None  # a hand-over that waits for it


def _size(rows: Sequence[Row]) -> int:
    return sum(len(ts) + len(text) + ROW_OVERHEAD for _, ts, text in rows)


class Writer:
    def __init__(self, buffer: Buffer, *, max_pending_bytes: int, spill: Path,
                 on_written: Callable[[], None] | None = None,
                 on_state: Callable[[], None] | None = None) -> None:
        self.buffer = buffer
        self.max_pending_bytes = max_pending_bytes
        self.spill = spill
        self.on_written = on_written  # new rows are in (the uplink sends now)
        self.on_state = on_state  # writing failed or recovered (the status is published)
        self.run_id = uuid.uuid4().hex[:12]
        self._n = 0
        self._queue: deque[Cycle] = deque()
        self._inflight = 0  # cycles at the head of the queue being written now
        self.pending_bytes = 0
        self.pending_rows = 0
        self.written_rows: Counter[str] = Counter()
        self.lost_rows: Counter[str] = Counter()
        self.lost_cycles = 0
        self.failing_since: str | None = None
        self.last_error: str | None = None
        self.failed_attempts = 0
        self._lost_at_onset: Counter[str] = Counter()
        self._unclear = False  # the last attempt raised: its commit may have happened
        self._spill_origin: str | None = None  # the taken-back spill file, until all in
        self._spill_left = 0
        self._wake = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._closing = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "buffer-writer")

    # -- hand-over -------------------------------------------------------------------------

    def submit_cycle(self, readings: Sequence[Reading], events: Sequence[dict[str, Any]]) -> None:
        """A poll cycle (from the event loop): serialized here, once."""
        rows = [reading_row(r) for r in readings]
        rows += [(STREAM_EVENTS, e.get("ts") or _now(), encode(e)) for e in events]
        self.submit(rows)

    def submit(self, rows: list[Row],
               done: concurrent.futures.Future[None] | None = None) -> None:
        """Queue rows to be written together (call in the event loop)."""
        if not rows:
            if done is not None:
                done.set_result(None)
            return
        if self._closed:  # nothing should come after close; if it does, it is not silent
            self._lose(Cycle("late", 0, rows, _size(rows), done), "handed over after stop")
            return
        self._n += 1
        cycle = Cycle(self.run_id, self._n, rows, _size(rows), done)
        self._queue.append(cycle)
        self.pending_bytes += cycle.nbytes
        self.pending_rows += len(rows)
        self._bound()
        self._wake.set()

    def submit_threadsafe(self, rows: list[Row], wait: float | None = None) -> None:
        """Queue rows from another thread; with ``wait``, return once they are written, or
        after ``wait`` seconds (they stay queued: written, spilled or counted as lost)."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self.submit(rows)
            return
        done: concurrent.futures.Future[None] | None = (
            concurrent.futures.Future() if wait else None)
        loop.call_soon_threadsafe(self.submit, rows, done)
        if done is not None:
            try:
                done.result(timeout=wait)
            except concurrent.futures.TimeoutError:
                pass

    def _bound(self) -> None:
        """Past the memory bound, drop the oldest cycle not being written, never silently."""
        while self.pending_bytes > self.max_pending_bytes and len(self._queue) > self._inflight:
            victim = self._queue[self._inflight]
            del self._queue[self._inflight]
            self._forget(victim)
            self._lose(victim, "pending cycles over the memory bound (storage.pending_max_kb)")

    def _forget(self, c: Cycle) -> None:
        self.pending_bytes -= c.nbytes
        self.pending_rows -= len(c.rows)
        if c.origin == self._spill_origin:
            self._spill_done(1)

    def _lose(self, c: Cycle, why: str) -> None:
        counts = Counter(stream for stream, _, _ in c.rows)
        self.lost_rows.update(counts)
        self.lost_cycles += 1
        if c.done is not None and not c.done.done():
            c.done.set_result(None)
        log.error("buffer.pending_dropped", why=why, rows=dict(counts),
                  lost_rows_total=dict(self.lost_rows), lost_cycles_total=self.lost_cycles,
                  pending_cycles=len(self._queue), pending_bytes=self.pending_bytes,
                  max_pending_bytes=self.max_pending_bytes)

    # -- the writing task ----------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._task = asyncio.create_task(self._run(), name="buffer-writer")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:  # a bug: never silent
            self.last_error = f"writer stopped: {task.exception()!r}"
            self.failing_since = self.failing_since or _now()
            log.error("buffer.writer_crashed", error=repr(task.exception()),
                      pending_cycles=len(self._queue))
            self._state_changed()

    async def _run(self) -> None:
        assert self._loop is not None
        delay = RETRY_MIN
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._take()
            self._inflight = len(batch)
            try:
                await self._loop.run_in_executor(self._thread, self._write, batch)
            except Exception as exc:  # noqa: BLE001 - disk full, I/O error: kept, retried
                self._inflight = 0
                self._failed(exc)
                self._bound()  # cycles handed over during the attempt count now
                if self._closing:
                    return  # that was the last write; close() spills the rest
                self._retry_now.clear()
                try:
                    await asyncio.wait_for(self._retry_now.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, RETRY_MAX)
                continue
            self._inflight = 0
            delay = RETRY_MIN
            self._written(batch)

    def _take(self) -> list[Cycle]:
        """The head cycles of one origin, up to BATCH_BYTES (at least one)."""
        head = self._queue[0]
        batch, size = [head], head.nbytes
        for c in itertools.islice(self._queue, 1, None):
            if c.origin != head.origin or size + c.nbytes > BATCH_BYTES:
                break
            batch.append(c)
            size += c.nbytes
        return batch

    def _write(self, batch: list[Cycle]) -> None:
        """In the writer thread: one transaction for the batch, minus what an earlier
        attempt that raised did commit (its mark says so)."""
        if self._unclear:
            done = _marked_upto(self.buffer.written_mark(), batch[0].origin)
            batch = [c for c in batch if c.n > done]
            if not batch:
                self._unclear = False
                return
        mark = f"{batch[-1].origin}:{batch[-1].n}"
        try:
            self.buffer.write([row for c in batch for row in c.rows], mark=mark)
        except Exception as exc:
            # Settle it now (reading works on a full disk): committed after all, or not at
            # all. Only then may the memory bound drop these cycles, and the count be exact.
            try:
                committed = self.buffer.written_mark() == mark
            except Exception:  # noqa: BLE001 - unknown: the next attempt asks again
                self._unclear = True
                raise exc from None
            self._unclear = False
            if not committed:
                raise
            log.error("buffer.write_error_after_commit", error=f"{type(exc).__name__}: {exc}",
                      cycles=len(batch), note="the rows are in the buffer; not written again")
            return
        self._unclear = False

    def _written(self, batch: list[Cycle]) -> None:
        for c in batch:
            assert self._queue[0] is c
            self._queue.popleft()
            self.pending_bytes -= c.nbytes
            self.pending_rows -= len(c.rows)
            self.written_rows.update(stream for stream, _, _ in c.rows)
            if c.done is not None and not c.done.done():
                c.done.set_result(None)
        spilled = sum(1 for c in batch if c.origin == self._spill_origin)
        if spilled:
            self._spill_done(spilled)
        if self.failing_since is not None:
            self._recovered()
        if self.on_written is not None:
            self.on_written()

    def _failed(self, exc: BaseException) -> None:
        self.failed_attempts += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.failing_since is None:
            self.failing_since = _now()
            self._lost_at_onset = Counter(self.lost_rows)
            log.error("buffer.write_failed", error=self.last_error,
                      pending_cycles=len(self._queue), pending_bytes=self.pending_bytes,
                      note="cycles wait in memory and are retried")
            self._state_changed()
        elif self.failed_attempts % 60 == 0:  # ~ every 5 minutes at the longest retry delay
            log.error("buffer.write_still_failing", error=self.last_error,
                      since=self.failing_since, attempts=self.failed_attempts,
                      pending_cycles=len(self._queue), pending_bytes=self.pending_bytes,
                      lost_rows_total=dict(self.lost_rows))

    def _recovered(self) -> None:
        lost = dict(self.lost_rows - self._lost_at_onset)
        log.warning("buffer.write_recovered", failed_since=self.failing_since,
                    attempts=self.failed_attempts, lost_rows=lost,
                    lost_rows_total=dict(self.lost_rows))
        # The alarm could not be written while the disk failed; now it goes in, in order.
        self.submit([(STREAM_EVENTS, self.failing_since or _now(), encode({
            "ts": self.failing_since, "kind": "buffer_write_failed",
            "severity": "alarm" if lost else "warning", "until": _now(),
            "error": self.last_error, "attempts": self.failed_attempts,
            "lost_rows": lost, "lost_rows_total": dict(self.lost_rows),
            "message": "writing the buffer failed; cycles waited in memory"
                       + (" and some were dropped" if lost else ", none lost")}))])
        self.failing_since = None
        self.last_error = None
        self.failed_attempts = 0
        self._state_changed()

    def _state_changed(self) -> None:
        if self.on_state is not None:
            try:
                self.on_state()
            except Exception:  # noqa: BLE001 - a status publish must not stop the writer
                log.exception("buffer.state_callback_failed")

    # -- stop, spill, take back ----------------------------------------------------------

    async def close(self) -> None:
        """A last write of what is queued; what still cannot be written goes to the spill
        file (or, if that fails too, is counted and logged as lost)."""
        self._closing = True
        self._wake.set()
        self._retry_now.set()
        if self._task is not None:
            try:
                await self._task
            except Exception:  # noqa: BLE001 - logged by _ended; what is queued is spilled
                pass
        self._closed = True
        if self._queue:
            assert self._loop is not None
            await self._loop.run_in_executor(self._thread, self._spill_all)
        self._thread.shutdown(wait=True)

    def _spill_all(self) -> None:
        cycles = list(self._queue)
        rows = sum(len(c.rows) for c in cycles)
        sid = f"spill-{self.run_id}"
        tmp = self.spill.with_name(self.spill.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps({"spill": sid, "version": SPILL_VERSION,
                                    "cycles": len(cycles), "rows": rows}) + "\n")
                for i, c in enumerate(cycles, 1):
                    f.write(json.dumps({"n": i, "rows": c.rows}, separators=(",", ":")) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.spill)
            _fsync_dir(self.spill.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            # A spill file taken back at this start is still there: its cycles are not lost.
            gone = [c for c in cycles if c.origin != self._spill_origin]
            for c in gone:
                self.lost_rows.update(stream for stream, _, _ in c.rows)
            self.lost_cycles += len(gone)
            log.error("buffer.spill_failed", path=str(self.spill), error=str(exc),
                      lost_cycles=len(gone), lost_rows=sum(len(c.rows) for c in gone),
                      lost_rows_total=dict(self.lost_rows))
            return
        self._queue.clear()
        log.warning("buffer.spilled", path=str(self.spill), cycles=len(cycles), rows=rows,
                    note="taken back into the buffer at the next start")

    def take_back(self) -> int:
        """At start, before anything is handed over: queue a spill file's cycles first.
        The file stays until they are all written (a crash meanwhile loses nothing; the
        buffer's writer mark keeps them from being written twice). Returns rows queued."""
        if not self.spill.exists():
            return 0
        try:
            sid, cycles = _read_spill(self.spill, limit=2 * self.max_pending_bytes + 2**20)
        except (OSError, ValueError) as exc:
            aside = self.spill.with_name(
                f"{self.spill.name}.bad-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
            os.replace(self.spill, aside)
            log.error("buffer.spill_unreadable", path=str(self.spill), moved_to=str(aside),
                      error=str(exc))
            return 0
        done = _marked_upto(self.buffer.written_mark(), sid)
        todo = [c for c in cycles if c.n > done]
        self._spill_origin, self._spill_left = sid, len(todo)
        for c in reversed(todo):
            self._queue.appendleft(c)
            self.pending_bytes += c.nbytes
            self.pending_rows += len(c.rows)
        rows = sum(len(c.rows) for c in todo)
        log.warning("buffer.spill_taken_back", path=str(self.spill), cycles=len(todo),
                    rows=rows, already_written=len(cycles) - len(todo))
        if not todo:
            self._spill_done(0)
        self._wake.set()
        return rows

    def _spill_done(self, n: int) -> None:
        self._spill_left -= n
        if self._spill_left <= 0 and self._spill_origin is not None:
            self._spill_origin = None
            try:
                self.spill.unlink(missing_ok=True)
            except OSError as exc:
                log.error("buffer.spill_remove_failed", path=str(self.spill), error=str(exc))

    # -- reporting -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "write_failing": self.failing_since is not None,
            "failing_since": self.failing_since,
            "write_error": self.last_error,
            "failed_attempts": self.failed_attempts,
            "pending_cycles": len(self._queue),
            "pending_rows": self.pending_rows,
            "pending_bytes": self.pending_bytes,
            "max_pending_bytes": self.max_pending_bytes,
            "lost_rows": dict(self.lost_rows),
            "lost_cycles": self.lost_cycles,
            "written_rows": dict(self.written_rows),
            "spill_pending": self._spill_left if self._spill_origin else 0,
        }

    def status(self) -> dict[str, Any]:
        """The part of ``health`` the cloud gets in the retained status message."""
        h = self.health()
        return {k: h[k] for k in ("write_failing", "failing_since", "write_error",
                                  "pending_cycles", "pending_rows", "lost_rows",
                                  "lost_cycles")}


class BufferView:
    """The buffer as the daemon's services (OCPP, uplink) see it: reads go to the buffer,
    appends to the one writer. A session report waits (bounded) until it is written."""

    SESSION_WAIT = 5.0

    def __init__(self, buffer: Buffer, writer: Writer) -> None:
        self._buffer = buffer
        self._writer = writer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._buffer, name)

    def append(self, stream: str, payloads: Sequence[dict[str, Any]],
               ts: Sequence[str] | None = None) -> None:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}")
        stamps = list(ts) if ts is not None else [p.get("ts") or _now() for p in payloads]
        self._writer.submit_threadsafe(
            [(stream, t, encode(p)) for t, p in zip(stamps, payloads, strict=True)],
            wait=self.SESSION_WAIT)

    def append_event(self, kind: str, severity: str = "info", **fields: Any) -> None:
        payload = {"ts": _now(), "kind": kind, "severity": severity, **fields}
        self._writer.submit_threadsafe([(STREAM_EVENTS, payload["ts"], encode(payload))])


def _marked_upto(mark: str | None, origin: str) -> int:
    """The last hand-over number of ``origin`` the buffer has (0: none)."""
    if not mark:
        return 0
    got, _, n = mark.rpartition(":")
    return int(n) if got == origin and n.isdigit() else 0


def _read_spill(path: Path, limit: int) -> tuple[str, list[Cycle]]:
    """A spill file, checked: bounded in size, every row a known stream and JSON text."""
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"{size} bytes, more than the {limit} a spill file can hold")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError("empty")
    head = json.loads(lines[0])
    if not isinstance(head, dict) or head.get("version") != SPILL_VERSION \
            or not isinstance(head.get("spill"), str):
        raise ValueError("not a spill file of this version")
    sid = head["spill"]
    cycles: list[Cycle] = []
    for number, line in enumerate(lines[1:], 1):
        item = json.loads(line)
        rows = item.get("rows") if isinstance(item, dict) else None
        if item.get("n") != number or not isinstance(rows, list):
            raise ValueError(f"line {number + 1}: not a spilled cycle")
        for row in rows:
            if not (isinstance(row, list) and len(row) == 3 and row[0] in STREAMS
                    and all(isinstance(x, str) for x in row)
                    and isinstance(json.loads(row[2]), dict)):
                raise ValueError(f"line {number + 1}: not a buffer row")
        good = [(s, t, p) for s, t, p in rows]
        cycles.append(Cycle(sid, number, good, _size(good)))
    if len(cycles) != head.get("cycles"):
        raise ValueError(f"{len(cycles)} cycles, the header says {head.get('cycles')}")
    return sid, cycles


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
