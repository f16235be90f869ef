"""The daemon on a disk that fills (a real 3 MiB tmpfs) and on a file size limit
(RLIMIT_FSIZE): loss past the memory bound is exact in the log, in ``sitegate status`` and in
the status message the cloud receives; SIGTERM while writes fail spills the pending cycles,
the next start takes them back, and ``sitegate buffer check`` finds each reading once."""

from __future__ import annotations

import functools
import json
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import disk
from tests.helpers.waiting import wait_for

METERS = [1, 2, 3, 4]  # answering units of the simulator fixture


def _site(tmp: Path, buffer: Path, port: int, extra: str = "", gw: str = "gw-disk") -> Path:
    text = (f'gateway_id = "{gw}"\n[storage]\npath = "{buffer}"\npending_max_kb = 64\n'
            f'[health]\nsocket = "{tmp}/sg.sock"\n{extra}'
            f'[[buses]]\nname = "conv"\ntimeout = 0.3\nretries = 0\n'
            f'tcp = {{ host = "127.0.0.1", port = {port}, framing = "rtu-over-tcp" }}\n')
    text += "".join(f'[[meters]]\nid = "m{u}"\nbus = "conv"\nunit = {u}\n'
                    f'profile = "eastron_sdm630"\ninterval = 1\n' for u in METERS)
    cfg = tmp / "site.toml"
    cfg.write_text(text)
    return cfg


class Daemon:
    """``sitegate run`` with its log lines collected from a pipe (a log file could itself
    hit the full disk or the file size limit)."""

    def __init__(self, cfg: Path, fsize: int | None = None) -> None:
        def limit() -> None:
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        self.cfg = cfg
        self.lines: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sitegate.gateway.cli", "run", "-c", str(cfg)],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, preexec_fn=limit)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"event": "text", "text": line})

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in list(self.lines) if e.get("event") == name]

    def status(self) -> dict[str, Any]:
        got = subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "status", "-c",
                              str(self.cfg), "--json"], capture_output=True, text=True,
                             timeout=30)
        return json.loads(got.stdout) if got.returncode == 0 else {}

    def status_text(self) -> str:
        return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "status", "-c",
                               str(self.cfg)], capture_output=True, text=True,
                              timeout=30).stdout

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.lines[-5:]
        self._reader.join(5)
        (stopped,) = self.events("daemon.stopped")
        return stopped

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


_wait_for = functools.partial(wait_for, timeout=40.0, tolerate=(sqlite3.OperationalError,))


def _readings(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [json.loads(p) for (p,) in con.execute(
            "SELECT payload FROM entries WHERE stream='readings' ORDER BY seq")]
    finally:
        con.close()


def _writer(d: Daemon) -> dict[str, Any]:
    return d.status().get("writer") or {}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with disk.small_disk(tmp_path, "3m", "test_sigterm_while_writes_fail_spills_and_the_next_"
                         "start_takes_back covers the failing disk with RLIMIT_FSIZE") as mnt:
        yield mnt




class StatusWatch:
    """The cloud's side of the retained status topic."""

    def __init__(self, host: str, port: int, gw: str) -> None:
        self.got: list[dict[str, Any]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda _c, _u, m: self.got.append(json.loads(m.payload))
        self.client.connect(host, port)
        self.client.subscribe(f"sitegate/v1/{gw}/status", qos=1)
        self.client.loop_start()

    def writer(self) -> list[dict[str, Any]]:
        return [m["buffer_writer"] for m in list(self.got) if m.get("buffer_writer")]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_disk_full_past_the_bound_reports_the_exact_loss_everywhere(
        tmp_path: Path, small_disk: Path, simulator: int, mosquitto: Any) -> None:
    gw = f"gw-disk-{time.monotonic_ns() % 10**6}"
    db = small_disk / "buffer.db"
    cfg = _site(tmp_path, db, simulator, gw=gw,
                extra=f'[mqtt]\nbroker = "{mosquitto.url}"\nreconnect_min = 0.2\n'
                      "reconnect_max = 1.0\npoll_interval = 0.2\n")
    watch = StatusWatch(mosquitto.host, mosquitto.port, gw)
    d = Daemon(cfg)
    try:
        _wait_for(lambda: db.exists() and len(_readings(db)) >= 60)
        filler = disk.fill(small_disk)
        # the memory bound (64 KiB) holds about three cycles: then the oldest go
        _wait_for(lambda: sum(_writer(d).get("lost_rows", {}).values()) >= 60)
        text = d.status_text()
        assert "buffer write: FAILING since" in text and "LOST" in text, text
        failing = _wait_for(lambda: [w for w in watch.writer()
                                     if w["write_failing"] and w["pending_cycles"]])
        assert "full" in failing[-1]["write_error"]
        filler.unlink()
        _wait_for(lambda: not _writer(d).get("write_failing", True))
        lost = _writer(d)["lost_rows"]
        assert "buffer write: ok" in d.status_text()
        # the cloud heard of the recovery, with the same loss
        _wait_for(lambda: watch.writer() and not watch.writer()[-1]["write_failing"])
        assert watch.writer()[-1]["lost_rows"] == lost
        stopped = d.stop()
    finally:
        d.kill()
        watch.close()
    rows = _readings(db)
    # exact: every reading the buses handed over is stored once, or counted as lost
    assert stopped["readings_polled"] - len(rows) == lost["readings"] > 0
    assert stopped["lost_rows"] == lost
    assert d.events("buffer.pending_dropped")[-1]["lost_rows_total"] == lost
    assert len({(r["meter_id"], r["quantity"], r["ts"]) for r in rows}) == len(rows)
    con = sqlite3.connect(db)
    alarms = [json.loads(p) for (p,) in con.execute(
        "SELECT payload FROM entries WHERE stream='events' AND payload LIKE "
        "'%buffer_write_failed%'")]
    con.close()
    assert [a["lost_rows"] for a in alarms] == [lost]


def test_sigterm_while_writes_fail_spills_and_the_next_start_takes_back(
        tmp_path: Path, simulator: int) -> None:
    db = tmp_path / "buffer.db"
    cfg = _site(tmp_path, db, simulator)
    d = Daemon(cfg, fsize=128 * 1024)  # the WAL cannot grow past 128 KiB: writes fail
    try:
        _wait_for(lambda: _writer(d).get("write_failing"))
        _wait_for(lambda: _writer(d).get("pending_cycles", 0) >= 2)
        first = d.stop()
    finally:
        d.kill()
    (spilled,) = d.events("buffer.spilled")
    assert spilled["rows"] > 0 and (tmp_path / "buffer.db.spill").exists()
    lost1 = first["lost_rows"].get("readings", 0)

    d = Daemon(cfg)  # no limit now
    try:
        (back,) = _wait_for(lambda: d.events("buffer.spill_taken_back"))
        assert back["rows"] == spilled["rows"]
        _wait_for(lambda: not (tmp_path / "buffer.db.spill").exists())
        second = d.stop()
    finally:
        d.kill()
    rows = _readings(db)
    assert len(rows) == first["readings_polled"] - lost1 + second["readings_polled"]
    assert second["lost_rows"] == {}
    check = subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "buffer", "check",
                            "--db", str(db), "--json"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    assert json.loads(check.stdout)["streams"]["readings"]["rows"] == len(rows)
