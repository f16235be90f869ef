"""The daemon as a real process against a simulated meter bus: readings land in the buffer,
the technician CLI talks to it, SIGTERM stops it cleanly, kill -9 loses nothing committed."""

from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sitegate.drivers.modbus.profile import load_profile
from tests.helpers.waiting import wait_for

UNITS = range(1, 11)  # the units of the simulator fixture (conftest.py)
QUANTITIES = len(load_profile("eastron_sdm630").registers)


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


# the daemon has created the buffer file but not yet its tables: not yet
_wait_for = functools.partial(wait_for, tolerate=(sqlite3.OperationalError,))


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
        # the clock, where a technician looks (issue 17): as the kernel reports it
        from sitegate.gateway.clock import clock_state

        assert health["clock"] == clock_state()
        clock = next(ln for ln in readable.stdout.splitlines() if ln.startswith("clock: "))
        assert ("clock_unsynced" in clock) == (health["clock"] != "synchronized")
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


# -- the cloud's desired config, applied live -----------------------------------------------


def _site_text(tmp: Path, port: int, broker: str, gw: str, units: list[int],
               keepalive: int = 10) -> str:
    meters = "".join(
        f'[[meters]]\nid = "m{u}"\nbus = "conv"\nunit = {u}\nprofile = "eastron_sdm630"\n'
        f"interval = 1\n" for u in units)
    return (f'gateway_id = "{gw}"\n[storage]\npath = "{tmp}/buffer.db"\n'
            f'[health]\nsocket = "{tmp}/sg.sock"\n'
            f'[mqtt]\nbroker = "{broker}"\nreconnect_min = 0.2\nreconnect_max = 1.0\n'
            f"keepalive = {keepalive}\npoll_interval = 0.2\n"
            f'[[buses]]\nname = "conv"\ntimeout = 0.3\nretries = 0\n'
            f'tcp = {{ host = "127.0.0.1", port = {port}, framing = "rtu-over-tcp" }}\n'
            + meters)


def _meters_read(db: Path) -> set[str]:
    return {json.loads(p)["meter_id"] for _, p in _rows(db)} if db.exists() else set()


def test_remote_config_applied_live_rejected_whole_and_kept_over_a_restart(
        tmp_path: Path, simulator: int, mosquitto) -> None:  # type: ignore[no-untyped-def]
    import tomllib

    from sitegate.cloud.ingest import downlink
    from sitegate.cloud.keys import downlink_key, keys_dir

    # The cloud's signing key; its public half where enrolment puts it in the state dir
    # (the buffer's directory).
    key = downlink_key(keys_dir(str(tmp_path / "cloud-keys")))
    (tmp_path / "identity").mkdir()
    (tmp_path / "identity" / "downlink.pub").write_bytes(
        (tmp_path / "cloud-keys" / "downlink.pub").read_bytes())

    def push_config(url: str, gw: str, version: int, config: str | dict) -> None:
        downlink.push_config(url, gw, version, config, key)

    gw = f"gw-cfg-{os.getpid()}-{time.monotonic_ns() % 100000}"
    cfg = tmp_path / "site.toml"
    cfg.write_text(_site_text(tmp_path, simulator, mosquitto.url, gw, [1, 2]))
    db = tmp_path / "buffer.db"
    logs = [tmp_path / "daemon-1.log", tmp_path / "daemon-2.log"]

    def start(log: Path) -> subprocess.Popen[str]:
        with log.open("w") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "sitegate.gateway.cli", "run", "-c", str(cfg)],
                stderr=out, stdout=out, text=True)

    def health() -> dict:
        got = _sitegate("status", "-c", str(cfg), "--json")
        return json.loads(got.stdout) if got.returncode == 0 else {}

    def uplink() -> dict:
        return health().get("services", {}).get("SyncClient", {})

    def configured_meters() -> set[str]:
        return {m["meter_id"] for b in health()["buses"] for m in b["meters"]}

    proc = start(logs[0])
    try:
        _wait_for(lambda: uplink().get("connected"))
        _wait_for(lambda: {"m1", "m2"} <= _meters_read(db))
        assert "m3" not in _meters_read(db)
        # v1: the site file's TOML with one more meter, as the cloud sends it.
        push_config(mosquitto.url, gw, 1, _site_text(tmp_path, simulator, mosquitto.url, gw,
                                                     [1, 2, 3]))
        _wait_for(lambda: uplink().get("applied_config_version") == 1)
        _wait_for(lambda: "m3" in _meters_read(db))  # the new meter is read
        assert configured_meters() == {"m1", "m2", "m3"}
        h = health()
        assert h["config"]["source"] == "remote" and h["config"]["version"] == 1
        text = _sitegate("status", "-c", str(cfg)).stdout
        assert "uplink: connected since" in text and "remote config: v1 applied" in text
        assert "the cloud's v1" in text

        # v2 as JSON: one meter with an impossible unit id, and a fourth meter.
        bad = tomllib.loads(_site_text(tmp_path, simulator, mosquitto.url, gw, [1, 2, 3, 4]))
        bad["meters"][2]["unit"] = 300
        push_config(mosquitto.url, gw, 2, bad)
        _wait_for(lambda: (uplink().get("config_rejected") or {}).get("version") == 2)
        error = uplink()["config_rejected"]["error"]
        assert "meters[2].unit" in error and "247" in error
        assert uplink()["applied_config_version"] == 1  # v1 still runs, nothing changed
        assert configured_meters() == {"m1", "m2", "m3"}
        assert "REJECTED" in _sitegate("status", "-c", str(cfg)).stdout

        # v3: valid, but changes the uplink itself, which cannot change live.
        push_config(mosquitto.url, gw, 3, _site_text(tmp_path, simulator, mosquitto.url, gw,
                                                     [1, 2, 3, 4], keepalive=20))
        _wait_for(lambda: (uplink().get("config_rejected") or {}).get("version") == 3)
        error = uplink()["config_rejected"]["error"]
        assert "mqtt" in error and "cannot be applied live" in error
        assert configured_meters() == {"m1", "m2", "m3"}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, logs[0].read_text()
    persisted = json.loads((tmp_path / "buffer.db.applied-config.json").read_text())
    assert persisted["version"] == 1 and 'id = "m3"' in persisted["config"]

    # Restarted with the unchanged site file (m1, m2): it runs the applied v1, says so.
    read_before = len(_rows(db))
    proc = start(logs[1])
    try:
        _wait_for(lambda: uplink().get("connected"))
        running = health()["config"]
        assert {k: running[k] for k in ("source", "version", "applied_at")} == {
            "source": "remote", "version": 1, "applied_at": persisted["applied_at"]}
        assert running["site_file_not_in_effect"] == ["meters"]  # the site file has no m3
        assert uplink()["applied_config_version"] == 1
        assert configured_meters() == {"m1", "m2", "m3"}
        _wait_for(lambda: any(json.loads(p)["meter_id"] == "m3"
                              for _, p in _rows(db)[read_before:]))
        # The retained desired config is still v3: refused again, v1 still runs.
        _wait_for(lambda: (uplink().get("config_rejected") or {}).get("version") == 3)
        assert uplink()["applied_config_version"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        # No retained config left behind on the session's broker.
        subprocess.run(["mosquitto_pub", "-h", mosquitto.host, "-p", str(mosquitto.port),
                        "-t", f"sitegate/v1/{gw}/config", "-r", "-n"], check=True, timeout=10)
    said = [json.loads(line) for line in logs[1].read_text().splitlines()
            if line.startswith("{") and '"daemon.config"' in line]
    assert said and said[0]["source"] == "remote" and said[0]["version"] == 1
