"""The daemon as a real process against a simulated meter bus: readings land in the buffer,
the technician CLI talks to it, SIGTERM stops it cleanly, kill -9 loses nothing committed."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitegate.drivers.modbus.profile import load_profile

UNITS = range(1, 11)
QUANTITIES = len(load_profile("eastron_sdm630").registers)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def simulator() -> Iterator[int]:
    port = _port()
    args = [sys.executable, "-m", "sitegate.drivers.modbus.simulator", "--tcp", str(port),
            "--framing", "rtu-over-tcp", "--silent", "10"]
    for u in UNITS:
        args += ["--meter", f"{u}:eastron_sdm630"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield port
    proc.kill()
    proc.wait()


def _config(tmp: Path, port: int) -> Path:
    meters = "".join(
        f'[[meters]]\nid = "m{u}"\nbus = "conv"\nunit = {u}\nprofile = "eastron_sdm630"\n'
        f"interval = 1\n" for u in UNITS
    )
    cfg = tmp / "site.toml"
    cfg.write_text(
        f'gateway_id = "gw-test"\n[storage]\npath = "{tmp}/buffer.db"\n'
        f'[health]\nsocket = "{tmp}/sg.sock"\n'
        f'[[buses]]\nname = "conv"\ntimeout = 0.3\nretries = 0\n'
        f'tcp = {{ host = "127.0.0.1", port = {port}, framing = "rtu-over-tcp" }}\n' + meters
    )
    return cfg


def _sitegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", *args],
                          capture_output=True, text=True, timeout=60)


def _start(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c", str(cfg)],
                            stderr=subprocess.PIPE, text=True)


def _rows(db: Path) -> list[tuple[int, str]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT seq, payload FROM entries WHERE stream='readings' "
                           "ORDER BY seq").fetchall()
    finally:
        con.close()


def _wait_for(pred, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_daemon_polls_reports_and_stops_cleanly(tmp_path: Path, simulator: int) -> None:
    cfg = _config(tmp_path, simulator)
    proc = _start(cfg)
    try:
        db = tmp_path / "buffer.db"
        _wait_for(lambda: db.exists() and len(_rows(db)) >= 9 * QUANTITIES * 2)
        status = _sitegate("status", "-c", str(cfg), "--json")
        assert status.returncode == 0, status.stderr
        health = json.loads(status.stdout)
        meters = {m["meter_id"]: m for m in health["buses"][0]["meters"]}
        assert meters["m1"]["state"] == "ok" and meters["m10"]["state"] == "failing"
        assert meters["m10"]["errors"]["no_response"] >= 1
        readable = _sitegate("status", "-c", str(cfg))
        assert "m10" in readable.stdout and "failing" in readable.stdout
        read = _sitegate("read", "m3", "-c", str(cfg), "--json")
        assert read.returncode == 0, read.stderr
        assert {r["quantity"] for r in json.loads(read.stdout)["readings"]} >= {"1-0:1.8.0"}
        stats = _sitegate("buffer", "stats", "-c", str(cfg), "--json")
        assert json.loads(stats.stdout)["streams"]["readings"]["unacknowledged"] >= 9 * QUANTITIES
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "daemon.stopped" in err
    assert not (tmp_path / "sg.sock").exists()
    payloads = [json.loads(p) for _, p in _rows(tmp_path / "buffer.db")]
    assert all(p["meter_id"] != "m10" for p in payloads)
    events = sqlite3.connect(tmp_path / "buffer.db").execute(
        "SELECT payload FROM entries WHERE stream='events'").fetchall()
    assert any(json.loads(e)["kind"] == "meter_fault" for (e,) in events)


def test_kill_9_loses_nothing_committed(tmp_path: Path, simulator: int) -> None:
    cfg = _config(tmp_path, simulator)
    db = tmp_path / "buffer.db"
    seen: list[tuple[int, str]] = []
    for round_ in range(4):
        proc = _start(cfg)
        before = len(seen)
        _wait_for(lambda: db.exists() and len(_rows(db)) > before + QUANTITIES * 9)  # noqa: B023
        time.sleep(0.05 * round_)  # land the kill at different points of a cycle
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        rows = _rows(db)
        # everything committed before is still there, unchanged, and nothing is torn
        assert rows[: len(seen)] == seen
        assert [s for s, _ in rows] == list(range(1, len(rows) + 1))
        for _, payload in rows:
            json.loads(payload)
        # whole cycles only: per slot, every healthy meter has all its quantities
        per_slot: dict[tuple[str, str], int] = {}
        for _, payload in rows:
            p = json.loads(payload)
            per_slot[(p["meter_id"], p["ts"])] = per_slot.get((p["meter_id"], p["ts"]), 0) + 1
        assert set(per_slot.values()) == {QUANTITIES}
        seen = rows
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not list(tmp_path.glob("buffer.db.corrupt-*"))
