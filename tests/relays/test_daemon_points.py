"""The daemon as a real process with a laundry point: a serial RFID reader on a socat
pseudo-terminal, a Shelly (RPC simulator in its own process, authentication on). A badge
starts a session; ``kill -9`` of the daemon mid-session; after the restart the relay is in
its safe state (off) and the session is closed once, flagged. The CLI shows the point."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sitegate.drivers.relays.shelly import ShellyClient
from tests.helpers import waiting


@pytest.fixture
def shelly() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-m", "sitegate.drivers.relays.shelly_sim",
                             "--password", "pw", "--load", "1800"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[0] == "ready"
    yield int(line[1])
    proc.kill()
    proc.wait()


def relay_on(port: int) -> bool:
    async def ask() -> bool:
        c = ShellyClient("127.0.0.1", port, password="pw", timeout=2)
        try:
            return (await c.status(0)).on
        finally:
            await c.close()

    return asyncio.run(ask())


def config(tmp: Path, port: int, reader: str) -> Path:
    cfg = tmp / "site.toml"
    cfg.write_text(f"""gateway_id = "gw-relays"
[storage]
path = "{tmp}/buffer.db"
[health]
socket = "{tmp}/sg.sock"
[[relays.devices]]
id = "sh1"
type = "shelly"
host = "127.0.0.1"
port = {port}
password = "pw"
timeout = 5  # bounds a hang: a late answer under load would leave the relay state unknown
[[relays.readers]]
id = "r1"
type = "serial"
device = "{reader}"
[[relays.points]]
id = "wash-1"
kind = "laundry"
reader = "r1"
device = "sh1"
poll_interval = 0.2
[[relays.badges]]
id = "04:A2:3B:C1"
account = "anna"
""")
    return cfg


def sitegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", *args],
                          capture_output=True, text=True, timeout=60)


def start(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c",
                             str(cfg)], stderr=subprocess.DEVNULL, text=True)


wait_for = functools.partial(waiting.wait_for, every=0.1,
                             tolerate=(sqlite3.OperationalError, OSError))


def completed(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT payload FROM entries WHERE stream='sessions' "
                           "ORDER BY seq").fetchall()
    finally:
        con.close()
    return [s for (p,) in rows if (s := json.loads(p))["status"] == "completed"]


def events(tmp: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(tmp / "buffer.db")
    try:
        rows = con.execute("SELECT payload FROM entries WHERE stream='events'").fetchall()
    finally:
        con.close()
    return [json.loads(p) for (p,) in rows]


def listed(cfg: Path) -> dict[str, Any] | None:
    r = sitegate("relay", "list", "-c", str(cfg), "--json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def test_kill_9_mid_session(tmp_path: Path, shelly: int, pty_pair: tuple[str, str]) -> None:
    reader, card = pty_pair
    cfg = config(tmp_path, shelly, reader)
    db = tmp_path / "buffer.db"
    proc = start(cfg)
    fd = os.open(card, os.O_RDWR | os.O_NOCTTY)
    try:
        wait_for(lambda: (listed(cfg) or {}).get("readers", [{}])[0].get("state")
                 == "listening")
        os.write(fd, b"\x0204a23bc1\r\n\x03")
        wait_for(lambda: relay_on(shelly))
        running = listed(cfg)
        assert running is not None
        (pt,) = running["points"]
        assert pt["state"] == "session" and pt["session"]["badge"] == "04A23BC1"
        status = json.loads(sitegate("status", "-c", str(cfg), "--json").stdout)
        assert status["relays"]["points"][0]["point"] == "wash-1"
        text = sitegate("status", "-c", str(cfg)).stdout
        assert "wash-1" in text and "RFID relay points" in text

        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert relay_on(shelly)  # the device does not know the daemon died
        assert completed(db) == []

        proc = start(cfg)
        wait_for(lambda: len(completed(db)) == 1)
        assert not relay_on(shelly)  # safe state: off
        (s,) = completed(db)
        assert s["session_id"] == pt["session"]["id"]
        assert (s["stop_reason"], s["flags"], s["account"]) == \
            ("Reboot", ["closed_after_restart"], "anna")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0

        proc = start(cfg)  # a further start finds nothing to close
        wait_for(lambda: listed(cfg) is not None)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert [c["session_id"] for c in completed(db)] == [s["session_id"]]
    finally:
        os.close(fd)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_relay_cli_switches_and_field_conditions(tmp_path: Path, shelly: int) -> None:
    """The reader is unplugged (its device is missing): the daemon runs, says so in
    ``relay list`` and the events stream, and the relay is switched from the CLI."""
    cfg = config(tmp_path, shelly, "/dev/ttyNOPE7")
    r = sitegate("relay", "list", "-c", str(cfg))
    assert r.returncode == 1 and "not running" in r.stderr and "Traceback" not in r.stderr
    proc = start(cfg)
    try:
        wait_for(lambda: (listed(cfg) or {}).get("readers", [{}])[0].get("state")
                 == "unavailable")
        (reader,) = (listed(cfg) or {})["readers"]
        assert "ttyNOPE7" in reader["error"]
        wait_for(lambda: any(e["kind"] == "reader_fault" for e in events(tmp_path)))
        on = sitegate("relay", "on", "wash-1", "-c", str(cfg), "--json")
        assert on.returncode == 0, on.stderr
        assert json.loads(on.stdout) == {"point": "wash-1", "relay": "on", "confirmed": True}
        assert relay_on(shelly)
        off = sitegate("relay", "off", "wash-1", "-c", str(cfg))
        assert off.returncode == 0 and off.stdout.strip() == "wash-1: relay off"
        assert not relay_on(shelly)
        bad = sitegate("relay", "off", "nope", "-c", str(cfg))
        assert bad.returncode == 1 and "unknown point 'nope'" in bad.stderr
        busy = sitegate("rfid", "listen", "-c", str(cfg))  # the daemon holds the readers
        assert busy.returncode == 3 and "stop it first" in busy.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_rfid_listen_shows_uids(pty_pair: tuple[str, str]) -> None:
    reader, card = pty_pair
    proc = subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "rfid", "listen",
                             "--type", "serial", "--device", reader, "--encoding", "decimal",
                             "--count", "1", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    fd = os.open(card, os.O_RDWR | os.O_NOCTTY)
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("listening on cli")  # the port is open
        os.write(fd, b"0077740993\r\n")
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(fd)
    assert json.loads(out) == {"reader": "cli", "raw": "0077740993", "uid": "04A23BC1",
                               "error": None}
    r = sitegate("rfid", "listen", "--type", "serial", "--device", "/dev/ttyNOPE9")
    assert r.returncode == 3 and "ttyNOPE9" in r.stderr and "Traceback" not in r.stderr


def test_modbus_relay_meter_shares_the_bus_with_a_meter(tmp_path: Path, free_port: int,
                                                         pty_pair: tuple[str, str]) -> None:
    """One RS485 line (RTU over a TCP converter, half duplex): an SDM630 polled every
    second and a three-phase relay meter switching an eBike outlet. Ben's badge starts and
    ends a session while the meter keeps being read: the exchanges never interleave."""
    sim = subprocess.Popen([sys.executable, "-m", "sitegate.drivers.relays.modbus_sim",
                            "--tcp", str(free_port), "--framing", "rtu-over-tcp",
                            "--device", "5:relay_meter_3ph", "--meter", "1:eastron_sdm630",
                            "--load", "400"], stdout=subprocess.PIPE, text=True)
    assert sim.stdout is not None and sim.stdout.readline().strip() == "ready"
    reader, card = pty_pair
    cfg = tmp_path / "site.toml"
    cfg.write_text(f"""gateway_id = "gw-bus"
[storage]
path = "{tmp_path}/buffer.db"
[health]
socket = "{tmp_path}/sg.sock"
[[buses]]
name = "rs485"
timeout = 3  # bounds a hang (every device answers): a late answer is not a lost exchange
retries = 0
tcp = {{ host = "127.0.0.1", port = {free_port}, framing = "rtu-over-tcp" }}
[[meters]]
id = "m1"
bus = "rs485"
unit = 1
profile = "eastron_sdm630"
interval = 1
[[relays.devices]]
id = "rm5"
type = "modbus"
bus = "rs485"
unit = 5
profile = "relay_meter_3ph"
[[relays.readers]]
id = "r1"
type = "serial"
device = "{reader}"
debounce = 0  # each write below is one presentation
[[relays.points]]
id = "bike-1"
kind = "ebike"
reader = "r1"
device = "rm5"
channel = 1
poll_interval = 0.2
[[relays.badges]]
id = "0A0B0C0D"
account = "ben"
""")
    db = tmp_path / "buffer.db"
    proc = start(cfg)
    fd = os.open(card, os.O_RDWR | os.O_NOCTTY)

    def point() -> dict[str, Any]:
        got = listed(cfg)
        assert got is not None
        return got["points"][0]

    def readings() -> int:
        con = sqlite3.connect(db)
        try:
            return con.execute("SELECT count(*) FROM entries WHERE stream='readings'"
                               ).fetchone()[0]
        finally:
            con.close()

    try:
        wait_for(lambda: (listed(cfg) or {}).get("readers", [{}])[0].get("state")
                 == "listening")
        os.write(fd, b"0a0b0c0d\r\n")
        wait_for(lambda: point()["relay"] == "on" and point()["session"] is not None)
        before = readings()
        wait_for(lambda: Decimal(point()["power_w"]) == 400 and readings() > before)
        os.write(fd, b"0A0B0C0D\r\n")  # the second presentation
        wait_for(lambda: len(completed(db)) == 1)
        (s,) = completed(db)
        assert (s["kind"], s["account"], s["stop_reason"], s["flags"]) == \
            ("ebike", "ben", "Local", [])
        assert Decimal(s["energy_wh"]) >= 0
        assert point()["relay"] == "off"
        status = json.loads(sitegate("status", "-c", str(cfg), "--json").stdout)
        (bus,) = status["buses"]
        assert bus["meters"][0]["errors"] == {}  # no garbled or lost exchange on the line
    finally:
        os.close(fd)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        sim.kill()
        sim.wait()
