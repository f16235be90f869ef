"""The one buffer writer against real SQLite files: order, exactly once, retries, a soak with
slow writes, and a real full file system (a small tmpfs) for the memory bound and the spill."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing

from sitegate.gateway.buffer import Buffer
from sitegate.gateway.writer import BufferView, Writer, spill_path
from sitegate.sync.protocol import Reading
from tests.helpers import disk

T0 = datetime(2026, 3, 1, tzinfo=UTC)
QUANTITIES = ["1-0:1.8.0", "1-0:2.8.0", "1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0"]


def _cycle(bus: int, k: int, meters: int = 3) -> list[Reading]:
    """Bus ``bus``'s poll cycle of second ``k``: every meter, every quantity."""
    ts = T0 + timedelta(seconds=k)
    return [Reading(f"b{bus}m{m}", ts, q, Decimal(k) + Decimal(m) / 100, "kWh",
                    read_at=ts + timedelta(milliseconds=40 * m))
            for m in range(meters) for q in QUANTITIES]


def _stored(db: Path, stream: str = "readings") -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT seq, payload FROM entries WHERE stream=? ORDER BY seq",
                           (stream,)).fetchall()
    finally:
        con.close()
    assert [s for s, _ in rows] == list(range(1, len(rows) + 1))  # no gap in sequences
    return [json.loads(p) for _, p in rows]


async def _until(pred: Any, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


class SlowBuffer(Buffer):
    """A buffer whose writes take a random while (a slow SD card), on a real file."""

    def __init__(self, *a: Any, rng: random.Random, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.rng = rng
        self.transactions = 0

    def write(self, rows: Any, mark: str | None = None) -> Any:
        if self.rng.random() < 0.3:
            threading.Event().wait(self.rng.uniform(0.05, 0.4))
        self.transactions += 1
        return super().write(rows, mark)


class CommitThenFail(Buffer):
    """A write whose commit happens but which then reports an I/O error (as an fsync that
    fails after the data reached the file would)."""

    fail_next = 0

    def write(self, rows: Any, mark: str | None = None) -> Any:
        got = super().write(rows, mark)
        if self.fail_next:
            self.fail_next -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return got


def test_soak_several_buses_slow_writes_each_reading_once(tmp_path: Path) -> None:
    """Five buses at 1 s polling (compressed: 0.02 s a second), 200 seconds each, plus
    session reports from another thread, against writes that are slow at random."""
    db = tmp_path / "b.db"
    buf = SlowBuffer(db, rng=random.Random(11))
    handed: list[tuple[int, int]] = []

    async def bus(writer: Writer, n: int) -> None:
        rng = random.Random(n)
        for k in range(200):
            await asyncio.sleep(0.02 + rng.uniform(-0.005, 0.005))  # cycles end together
            handed.append((n, k))
            writer.submit_cycle(_cycle(n, k), [{"ts": T0.isoformat(), "kind": "tick",
                                                "bus": n, "k": k}])

    def charger(view: BufferView) -> None:
        for i in range(40):
            view.append("sessions", [{"ts": T0.isoformat(), "session_id": f"s{i}"}])

    async def main() -> None:
        writer = Writer(buf, max_pending_bytes=64 * 2**20, spill=spill_path(db))
        writer.start()
        view = BufferView(buf, writer)
        sessions = asyncio.to_thread(charger, view)
        await asyncio.gather(*(bus(writer, n) for n in range(5)), sessions)
        await writer.close()
        assert writer.lost_cycles == 0 and writer.pending_rows == 0

    asyncio.run(main())
    buf.close()
    rows = _stored(db)
    twice = [k for k, n in Counter((r["meter_id"], r["quantity"], r["ts"]) for r in rows).items()
             if n > 1]
    assert twice == []
    assert len(rows) == 5 * 200 * 3 * len(QUANTITIES)  # every reading handed over is there
    # in hand-over order: each bus's cycles one after another, as handed over
    events = _stored(db, "events")
    assert [(e["bus"], e["k"]) for e in events] == handed
    assert sorted(e["session_id"] for e in _stored(db, "sessions")) == sorted(
        f"s{i}" for i in range(40))
    assert buf.transactions < len(handed)  # a backlog goes in fewer transactions


def test_a_write_that_failed_after_its_commit_is_not_written_again(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    buf = CommitThenFail(db)
    buf.fail_next = 2

    async def main() -> Writer:
        writer = Writer(buf, max_pending_bytes=2**20, spill=spill_path(db))
        writer.start()
        for k in range(4):
            writer.submit_cycle(_cycle(0, k), [])
            await asyncio.sleep(0.05)  # one transaction each: two of them raise
        await _until(lambda: writer.pending_rows == 0)
        await writer.close()
        return writer

    with structlog.testing.capture_logs() as logged:
        writer = asyncio.run(main())
    rows = _stored(db)
    assert len(rows) == 4 * 3 * len(QUANTITIES)
    assert len({(r["meter_id"], r["quantity"], r["ts"]) for r in rows}) == len(rows)
    assert writer.lost_cycles == 0
    # the mark settled it at once: logged, not retried, not taken for a failing disk
    after = [e for e in logged if e["event"] == "buffer.write_error_after_commit"]
    assert len(after) == 2 and all("disk I/O error" in e["error"] for e in after)
    assert not [e for e in logged if e["event"] == "buffer.write_failed"]


class FailAndHideMark(Buffer):
    """A write that does not commit and whose outcome cannot be read back either (the
    mark read fails too): the writer must ask again before the retry."""

    fail_next = 0

    def write(self, rows: Any, mark: str | None = None) -> Any:
        if self.fail_next:
            self.fail_next -= 1
            super().write(rows, mark)  # it did commit, but ...
            self.hide_mark = True
            raise sqlite3.OperationalError("disk I/O error")
        return super().write(rows, mark)

    hide_mark = False

    def written_mark(self) -> str | None:
        if self.hide_mark:
            self.hide_mark = False  # ... nobody can tell, until the next attempt
            raise sqlite3.OperationalError("disk I/O error")
        return super().written_mark()


def test_an_unclear_write_is_settled_by_the_mark_before_the_retry(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    buf = FailAndHideMark(db)
    buf.fail_next = 1

    async def main() -> Writer:
        writer = Writer(buf, max_pending_bytes=2**20, spill=spill_path(db))
        writer.start()
        for k in range(3):
            writer.submit_cycle(_cycle(0, k), [])
        await _until(lambda: writer.pending_rows == 0)
        await writer.close()
        return writer

    writer = asyncio.run(main())
    rows = _stored(db)
    assert len(rows) == 3 * 3 * len(QUANTITIES)
    assert len({(r["meter_id"], r["quantity"], r["ts"]) for r in rows}) == len(rows)
    assert writer.lost_cycles == 0
    # that one was a failure as far as anyone could tell: reported, and its alarm went in
    (alarm,) = [e for e in _stored(db, "events") if e["kind"] == "buffer_write_failed"]
    assert alarm["lost_rows"] == {}


# -- a real full disk: a small tmpfs ----------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for this test (needs the right to mount; skipped otherwise)."""
    with disk.small_disk(tmp_path, "1m", "the RLIMIT_FSIZE test covers the full disk") as mnt:
        yield mnt




def test_disk_full_then_freed_loses_nothing(small_disk: Path) -> None:
    db = small_disk / "buffer.db"
    buf = Buffer(db)

    async def main() -> Writer:
        writer = Writer(buf, max_pending_bytes=4 * 2**20, spill=spill_path(db))
        writer.start()
        writer.submit_cycle(_cycle(0, 0), [])
        await _until(lambda: writer.pending_rows == 0)
        filler = disk.fill(small_disk)
        k = 1
        while not writer.failing_since:  # the WAL may have room for a few cycles yet
            writer.submit_cycle(_cycle(0, k), [])
            k += 1
            await asyncio.sleep(0.05)
        for _ in range(5):  # more cycles while it fails: they wait in memory
            writer.submit_cycle(_cycle(0, k), [])
            k += 1
        assert writer.health()["write_failing"] and writer.health()["pending_cycles"] >= 5
        filler.unlink()
        await _until(lambda: writer.pending_rows == 0 and not writer.failing_since)
        await writer.close()
        writer.handed = k  # type: ignore[attr-defined]
        return writer

    writer = asyncio.run(main())
    buf.close()
    rows = _stored(db)
    assert len(rows) == writer.handed * 3 * len(QUANTITIES)  # type: ignore[attr-defined]
    assert len({(r["meter_id"], r["quantity"], r["ts"]) for r in rows}) == len(rows)
    assert writer.lost_rows == {} and writer.lost_cycles == 0
    (alarm,) = [e for e in _stored(db, "events") if e["kind"] == "buffer_write_failed"]
    assert alarm["lost_rows"] == {} and "full" in alarm["error"]


def test_full_past_the_memory_bound_drops_oldest_and_counts_exactly(small_disk: Path) -> None:
    db = small_disk / "buffer.db"
    buf = Buffer(db)
    async def main() -> tuple[Writer, int]:
        writer = Writer(buf, max_pending_bytes=32 * 1024, spill=spill_path(db))
        writer.start()
        filler = disk.fill(small_disk)
        k = 0
        while not writer.failing_since:
            writer.submit_cycle(_cycle(0, k), [])
            k += 1
            await asyncio.sleep(0.05)
        for _ in range(40):  # ~ 4 KB a cycle: far past 32 KB
            writer.submit_cycle(_cycle(0, k), [])
            k += 1
        assert writer.lost_cycles > 0
        filler.unlink()
        await _until(lambda: writer.pending_rows == 0 and not writer.failing_since)
        await writer.close()
        return writer, k

    with structlog.testing.capture_logs() as logged:
        writer, handed = asyncio.run(main())
    buf.close()
    rows = _stored(db)
    stored = {(r["meter_id"], r["ts"]) for r in rows}
    missing = handed * 3 * len(QUANTITIES) - len(rows)
    assert missing > 0 and writer.lost_rows == {"readings": missing}  # exact, by the count
    # what was dropped are the oldest waiting cycles: the missing seconds are one run
    have = {int((datetime.fromisoformat(ts) - T0).total_seconds()) for _, ts in stored}
    gone = set(range(handed)) - have
    assert gone == set(range(min(gone), max(gone) + 1)) and max(gone) < handed - 1
    # the log says it, with the running total, and the alarm event after recovery
    drops = [e for e in logged if e["event"] == "buffer.pending_dropped"]
    assert drops and drops[-1]["lost_rows_total"] == {"readings": missing}
    (alarm,) = [e for e in _stored(db, "events") if e["kind"] == "buffer_write_failed"]
    assert alarm["severity"] == "alarm" and alarm["lost_rows"] == {"readings": missing}


def test_stop_while_full_counts_what_cannot_be_spilled(small_disk: Path) -> None:
    db = small_disk / "buffer.db"
    buf = Buffer(db)

    async def main() -> Writer:
        writer = Writer(buf, max_pending_bytes=4 * 2**20, spill=spill_path(db))
        writer.start()
        disk.fill(small_disk)
        k = 0
        while not writer.failing_since:
            writer.submit_cycle(_cycle(0, k), [])
            k += 1
            await asyncio.sleep(0.05)
        writer.submit_cycle(_cycle(0, k), [])
        pending = writer.pending_rows
        await writer.close()  # the last write fails, and so does the spill file
        assert writer.lost_rows == {"readings": pending}
        return writer

    writer = asyncio.run(main())
    assert not spill_path(db).exists() and writer.lost_cycles >= 1
