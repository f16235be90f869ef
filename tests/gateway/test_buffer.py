from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from sitegate.gateway.buffer import MIGRATIONS, Buffer, reading_row
from sitegate.sync.protocol import LEGACY_EPOCH, ProtocolError, Reading, check_epoch


def _readings(n: int, start: int = 0) -> list[Reading]:
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    return [Reading("m1", ts, "1-0:1.8.0", Decimal(f"{start + i}.125"), "kWh") for i in range(n)]


def _append(buf: Buffer, readings: list[Reading]) -> tuple[int, int] | None:
    """Readings as the daemon's writer stores them: one transaction, serialized rows."""
    return buf.write([reading_row(r) for r in readings]).get("readings")


def test_sequences_ack_and_pending(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.db")
    assert _append(buf, _readings(3)) == (1, 3)
    assert _append(buf, _readings(2, 3)) == (4, 5)
    assert [e.seq for e in buf.pending("readings")] == [1, 2, 3, 4, 5]
    assert Reading.from_dict(buf.pending("readings")[0].data()).value == Decimal("0.125")
    assert buf.ack("readings", 3) == 3
    assert buf.ack("readings", 2) == 3  # never moves back
    assert buf.ack("readings", 99) == 5  # never beyond what was written
    assert buf.pending("readings") == []
    buf.close()
    # durable across reopen; sequence continues
    buf = Buffer(tmp_path / "b.db")
    assert _append(buf, _readings(1)) == (6, 6)
    assert buf.acked_upto("readings") == 5


def test_one_transaction_for_readings_and_events(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.db")
    ranges = buf.append_many({"readings": ([r.to_dict() for r in _readings(2)], None),
                              "events": ([{"kind": "x"}], None)})
    assert ranges == {"readings": (1, 2), "events": (1, 1)}


def test_cap_removes_only_acknowledged_rows_and_alarms(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.db", max_bytes=400_000)
    for i in range(20):
        _append(buf, _readings(200, i * 200))
    used = buf.used_bytes()
    assert used > 400_000  # nothing acknowledged: nothing may go
    assert buf.stats()["streams"]["readings"]["rows"] == 4000
    alarms = [e.data() for e in buf.pending("events")]
    assert [a["kind"] for a in alarms] == ["buffer_full"]
    buf.ack("readings", 3000)
    buf.enforce_cap()
    stats = buf.stats()["streams"]["readings"]
    assert stats["unacknowledged"] == 1000  # every unacknowledged row is still there
    assert buf.used_bytes() <= 400_000
    remaining = [e.seq for e in buf.pending("readings", limit=5000, after=0)]
    assert remaining[-1000:] == list(range(3001, 4001))
    assert remaining[0] > 1  # the oldest acknowledged went first


def test_corrupt_file_is_quarantined_not_deleted(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    path.write_bytes(b"this is not a database" * 200)
    buf = Buffer(path)
    moved = list(tmp_path.glob("b.db.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes().startswith(b"this is not")
    events = [e.data() for e in buf.pending("events")]
    assert events[0]["kind"] == "buffer_corrupt" and events[0]["severity"] == "alarm"
    assert events[0]["epoch"] == buf.epoch != LEGACY_EPOCH
    assert _append(buf, _readings(1)) == (1, 1)


def test_epoch_is_made_once_with_the_file_and_a_recreated_file_gets_another(
        tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buf = Buffer(path)
    first = buf.epoch
    assert re.fullmatch(r"\d{14}-[0-9a-f]{12}", first)
    assert check_epoch(first) == first
    _append(buf, _readings(3))
    buf.close()
    again = Buffer(path)
    assert again.epoch == first  # reopening keeps it
    assert again.stats()["epoch"] == first
    again.close()
    assert Buffer(path, readonly=True).epoch == first
    # A corrupt file is moved aside: the new one is a new epoch, sequences from 1 again.
    path.write_bytes(b"garbage" * 1000)
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    fresh = Buffer(path)
    assert fresh.epoch not in (first, LEGACY_EPOCH)
    assert _append(fresh, _readings(1)) == (1, 1)
    fresh.close()
    # Deleted and recreated: also a new epoch.
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    assert Buffer(path).epoch not in (first, fresh.epoch)


def test_a_buffer_from_before_epochs_keeps_the_legacy_epoch(tmp_path: Path) -> None:
    """Its rows went to the cloud under the legacy epoch: changing it would make the cloud
    wait for seqs 1.. of a "new" epoch that never come."""
    used, empty = tmp_path / "used.db", tmp_path / "empty.db"
    for path, rows in ((used, 5), (empty, 0)):
        con = sqlite3.connect(path, isolation_level=None)
        con.executescript(MIGRATIONS[0])
        con.execute("PRAGMA user_version=1")
        if rows:
            con.execute("INSERT INTO streams (stream, last_seq, acked_upto) "
                        "VALUES ('readings', ?, 2)", (rows,))
        con.close()
    old = Buffer(used)
    assert old.epoch == LEGACY_EPOCH
    assert (old.last_seq("readings"), old.acked_upto("readings")) == (5, 2)
    assert Buffer(empty).epoch != LEGACY_EPOCH  # nothing sent yet: a real epoch
    with pytest.raises(ProtocolError):
        check_epoch('bad"epoch')


def test_schema_version_recorded(tmp_path: Path) -> None:
    Buffer(tmp_path / "b.db").close()
    con = sqlite3.connect(tmp_path / "b.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 2
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_fast_serialization_equals_to_dict(tmp_path: Path) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    odd = Reading('m"1\\', t, "1-0:1.8.0", Decimal("-0.000100"), "m³", "suspect", t, ("a", "b"))
    buf = Buffer(tmp_path / "b.db")
    _append(buf, [odd, *_readings(1)])
    stored = [e.data() for e in buf.pending("readings")]
    assert stored[0] == odd.to_dict() and Reading.from_dict(stored[0]) == odd
