"""The daemon's write path end to end: several buses whose cycles end at the same instant,
while the buffer write is slow (another connection holds SQLite's write lock), must land
every poll cycle exactly once."""

from __future__ import annotations

import functools
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_for

BUSES = {"a": [1, 2, 3, 4], "b": [5, 6, 7, 8]}  # meters on two RS485-Ethernet converters


@pytest.fixture
def converters() -> Iterator[list[int]]:
    """Two simulated converters (Modbus RTU over TCP), each a process of its own."""
    procs, ports = [], []
    try:
        for _ in BUSES:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            args = [sys.executable, "-m", "sitegate.drivers.modbus.simulator", "--tcp",
                    str(port), "--framing", "rtu-over-tcp"]
            for u in range(1, 9):
                args += ["--meter", f"{u}:eastron_sdm630"]
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            ports.append(port)
        yield ports
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _two_bus_config(tmp: Path, ports: list[int]) -> Path:
    text = (f'gateway_id = "gw-wp"\n[storage]\npath = "{tmp}/buffer.db"\n'
            f'[health]\nsocket = "{tmp}/sg.sock"\n')
    for (bus, units), port in zip(BUSES.items(), ports, strict=True):
        text += (f'[[buses]]\nname = "{bus}"\ntimeout = 0.3\nretries = 0\n'
                 f'tcp = {{ host = "127.0.0.1", port = {port}, framing = "rtu-over-tcp" }}\n')
        text += "".join(f'[[meters]]\nid = "m{u}"\nbus = "{bus}"\nunit = {u}\n'
                        f'profile = "eastron_sdm630"\ninterval = 1\n' for u in units)
    cfg = tmp / "site.toml"
    cfg.write_text(text)
    return cfg


# the buffer file exists but not yet its tables: not yet
_wait_for = functools.partial(wait_for, tolerate=(sqlite3.OperationalError,))


def _readings(db: Path) -> list[dict]:
    con = sqlite3.connect(db)
    try:
        return [json.loads(p) for (p,) in con.execute(
            "SELECT payload FROM entries WHERE stream='readings' ORDER BY seq")]
    finally:
        con.close()


def _hold_write_lock(db: Path, seconds: float) -> None:
    """A real slow write: another connection holds the database's write lock; the daemon's
    transaction waits for it (busy_timeout), as it would behind a slow SD card."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        time.sleep(seconds)
        con.execute("COMMIT")
    finally:
        con.close()


def test_two_buses_with_a_slow_write_store_each_cycle_once(tmp_path: Path,
                                                           converters: list[int]) -> None:
    cfg = _two_bus_config(tmp_path, converters)
    db = tmp_path / "buffer.db"
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c",
                                 str(cfg)], stderr=out, stdout=out, text=True)
    try:
        _wait_for(lambda: db.exists() and {r["meter_id"] for r in _readings(db)}
                  >= {f"m{u}" for units in BUSES.values() for u in units})
        for _ in range(3):  # both buses finish cycles while the write waits, three times
            _hold_write_lock(db, 2.0)
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rows = _readings(db)
    twice = Counter((r["meter_id"], r["quantity"], r["ts"]) for r in rows)
    dup = {k: n for k, n in twice.items() if n > 1}
    assert not dup, f"{len(dup)} (meter, quantity, ts) stored more than once, e.g. " \
                    f"{next(iter(dup.items()))}"
    # and every slot of a meter has all its quantities: whole cycles, nothing torn
    per_slot = Counter((r["meter_id"], r["ts"]) for r in rows)
    assert len(set(per_slot.values())) == 1
    assert len({ts for _, ts in per_slot}) >= 6  # the buses kept polling meanwhile
