"""``sitegate buffer check``: readings stored twice, repeated payloads, sequence gaps; and the
daemon's check at start, in its log and in ``sitegate status``."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sitegate.gateway.buffer import Buffer, encode, reading_row
from sitegate.sync.protocol import Reading

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _sitegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", *args],
                          capture_output=True, text=True, timeout=60)


def _faulty(db: Path) -> None:
    """Seqs 1-4: a cycle of two meters x two quantities; 5-8: the same cycle again (as
    issue 11's daemon stored it); 9-12 a new one, of which seq 10 is then removed. Events:
    one payload twice. The cloud acknowledged readings up to 2."""
    buf = Buffer(db)
    cycle = [Reading(m, T0, q, Decimal(1), "kWh") for m in ("m1", "m2")
             for q in ("1-0:1.8.0", "1-0:2.8.0")]
    buf.write([reading_row(r) for r in cycle])
    buf.write([reading_row(r) for r in cycle])
    later = [Reading(r.meter_id, T0.replace(minute=15), r.quantity, Decimal(2), "kWh")
             for r in cycle]
    buf.write([reading_row(r) for r in later])
    event = {"ts": T0.isoformat(), "kind": "meter_fault", "meter_id": "m1"}
    buf.write([("events", T0.isoformat(), encode(event))] * 2)
    buf.ack("readings", 2)
    buf.close()
    con = sqlite3.connect(db)
    con.execute("DELETE FROM entries WHERE stream='readings' AND seq=10")
    con.commit()
    con.close()


def test_check_finds_readings_twice_repeated_payloads_and_gaps(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    _faulty(db)
    got = _sitegate("buffer", "check", "--db", str(db), "--json")
    assert got.returncode == 2, got.stderr
    result = json.loads(got.stdout)
    readings, events = result["streams"]["readings"], result["streams"]["events"]
    assert not result["ok"]
    assert readings["duplicates"] == 4 and readings["duplicate_rows"] == 4
    assert readings["duplicate_examples"][0] == {"key": f"m1 1-0:1.8.0 {T0.isoformat()}",
                                                 "seqs": [1, 5]}
    assert readings["gaps"] == [[10, 10]] and readings["missing"] == 1
    assert events["duplicate_rows"] == 1 and events["missing"] == 0
    assert result["streams"]["sessions"]["rows"] == 0
    text = _sitegate("buffer", "check", "--db", str(db))
    assert text.returncode == 2
    assert "PROBLEMS FOUND" in text.stdout and "readings: no rows for seq 10" in text.stdout
    assert f"stored 2 times (seq 1, 5): m1 1-0:1.8.0 {T0.isoformat()}" in text.stdout


def test_acknowledged_rows_removed_by_the_cap_are_no_gap(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    buf = Buffer(db)
    buf.write([reading_row(Reading("m1", T0.replace(minute=i), "1-0:1.8.0", Decimal(i), "kWh"))
               for i in range(6)])
    buf.ack("readings", 4)
    buf.close()
    con = sqlite3.connect(db)
    con.execute("DELETE FROM entries WHERE seq IN (1, 3)")  # as the size cap does
    con.commit()
    con.close()
    got = _sitegate("buffer", "check", "--db", str(db))
    assert got.returncode == 0 and "ok, no duplicates, no gaps" in got.stdout


def test_check_without_a_buffer_is_one_line(tmp_path: Path) -> None:
    got = _sitegate("buffer", "check", "--db", str(tmp_path / "none.db"))
    assert got.returncode == 1 and got.stdout == ""
    assert got.stderr.strip() == f"sitegate: no buffer database at {tmp_path / 'none.db'}"


def test_daemon_checks_at_start(tmp_path: Path, simulator: int) -> None:
    db = tmp_path / "buffer.db"
    _faulty(db)
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'gateway_id = "gw-chk"\n[storage]\npath = "{db}"\n'
                   f'[health]\nsocket = "{tmp_path}/sg.sock"\n'
                   f'[[buses]]\nname = "conv"\ntimeout = 0.3\nretries = 0\n'
                   f'tcp = {{ host = "127.0.0.1", port = {simulator}, '
                   f'framing = "rtu-over-tcp" }}\n'
                   f'[[meters]]\nid = "m1"\nbus = "conv"\nunit = 1\n'
                   f'profile = "eastron_sdm630"\ninterval = 60\n')
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c",
                                 str(cfg)], stderr=out, stdout=out)
    try:
        for _ in range(150):
            got = _sitegate("status", "-c", str(cfg), "--json")
            if got.returncode == 0 and json.loads(got.stdout).get("buffer_check"):
                break
            time.sleep(0.2)
        assert json.loads(got.stdout)["buffer_check"]["readings"] == {
            "duplicate_rows": 4, "missing": 1}
        text = _sitegate("status", "-c", str(cfg)).stdout
        assert "buffer check at start: readings: 4 stored twice, 1 seqs missing" in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (found,) = [json.loads(line) for line in log.read_text().splitlines()
                if '"buffer.check"' in line]
    assert found["ok"] is False and found["found"]["events"]["duplicate_rows"] == 1
