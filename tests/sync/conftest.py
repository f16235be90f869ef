"""Helpers for the sync tests: cloud and gateway processes, a test MQTT client, checks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, text

from sitegate.cloud.store.db import normalize_url
from sitegate.sync.config import MqttConfig

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_PROC = Path(__file__).with_name("gateway_proc.py")


def wait_until(pred: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """Poll ``pred`` until truthy. The timeout only bounds a hung test; it asserts nothing
    about speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for: {what}")


async def until(pred: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``wait_until`` inside the event loop (the in-process SyncClient's tests)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if value := pred():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for: {what}")


def quick_cfg(url: str, **kw: Any) -> MqttConfig:
    """A client config that reconnects and polls fast (the tests' time is short)."""
    return MqttConfig(broker=url, reconnect_min=0.2, reconnect_max=1.0, poll_interval=0.2,
                      keepalive=5, **kw)


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path

    def kill9(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Site:
    """One fault-test world: a cloud database URL, a gateway buffer file, processes."""

    tmp: Path
    db: str
    broker_url: str
    gateway_id: str = field(default_factory=lambda: f"gw-{uuid.uuid4().hex[:8]}")
    procs: list[Proc] = field(default_factory=list)

    @property
    def buffer(self) -> Path:
        return self.tmp / f"{self.gateway_id}.db"

    def _spawn(self, args: list[str], name: str, env: dict[str, str] | None = None) -> Proc:
        log = self.tmp / f"{name}-{len(self.procs)}.log"
        out = log.open("wb")
        popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        out.close()
        proc = Proc(popen, log)
        self.procs.append(proc)
        return proc

    def cloud(self, env: dict[str, str] | None = None, extra: list[str] | None = None) -> Proc:
        proc = self._spawn([sys.executable, "-m", "sitegate.cloud.cli", "serve", "--db", self.db,
                            "--broker", self.broker_url, *(extra or [])], "cloud", env)
        wait_until(lambda: "ingest.connected" in proc.text() or proc.popen.poll() is not None,
                   "ingest connected")
        assert proc.popen.poll() is None, proc.text()
        return proc

    def gateway(self, rows: int, rate: int = 1000, *extra: str) -> Proc:
        proc = self._spawn([sys.executable, str(GATEWAY_PROC), "--buffer", str(self.buffer),
                            "--broker", self.broker_url, "--gateway", self.gateway_id,
                            "--rows", str(rows), "--rate", str(rate), *extra], "gateway")
        wait_until(lambda: "ready" in proc.text() or proc.popen.poll() is not None,
                   "gateway ready")
        assert proc.popen.poll() is None, proc.text()
        return proc

    # -- looking at both ends ----------------------------------------------------------------

    def cloud_count(self) -> int:
        return self.sql("SELECT COUNT(*) FROM readings WHERE gateway_id = :g")[0][0]

    def sql(self, query: str, **params: Any) -> list[Any]:
        engine = create_engine(normalize_url(self.db))
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(query), {"g": self.gateway_id, **params}).all())
        finally:
            engine.dispose()

    def buffer_marks(self) -> tuple[int, int]:
        """(last_seq, acked_upto) of the readings stream in the gateway buffer."""
        if not self.buffer.exists():
            return 0, 0
        with sqlite3.connect(f"file:{self.buffer}?mode=ro", uri=True) as conn:
            row = conn.execute(
                "SELECT last_seq, acked_upto FROM streams WHERE stream='readings'").fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def wait_all_acked(self, rows: int) -> None:
        wait_until(lambda: self.buffer_marks() == (rows, rows), f"all {rows} rows acknowledged")

    def assert_exactly_once(self, rows: int, buffer: Path | None = None) -> None:
        """Every reading of the buffer file (by default the current one) is in the cloud
        exactly once, under the buffer's epoch, equal to what was buffered."""
        buffer = buffer or self.buffer
        with sqlite3.connect(f"file:{buffer}?mode=ro", uri=True) as conn:
            marks = conn.execute(
                "SELECT last_seq, acked_upto FROM streams WHERE stream='readings'").fetchone()
            epoch = conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
            buffered = conn.execute(
                "SELECT seq, payload FROM entries WHERE stream='readings' ORDER BY seq").fetchall()
        assert marks == (rows, rows)
        cloud = self.sql("SELECT seq, meter_id, value, unit, quality, flags FROM readings "
                         "WHERE gateway_id = :g AND epoch = :e ORDER BY seq", e=epoch)
        assert [r[0] for r in cloud] == list(range(1, rows + 1))
        assert len(buffered) == rows
        for (seq, meter, value, unit, quality, flags), (bseq, payload) in zip(
                cloud, buffered, strict=True):
            d = json.loads(payload)
            assert (seq, meter, value, unit, quality) == (
                bseq, d["meter_id"], d["value"], d["unit"], d["quality"])
            assert json.loads(flags) == d.get("flags", [])

    def close(self) -> None:
        for proc in self.procs:
            proc.kill9()


@pytest.fixture
def sqlite_site(tmp_path: Path, mosquitto: Any) -> Iterator[Site]:
    site = Site(tmp_path, str(tmp_path / "cloud.db"), mosquitto.url)
    subprocess.run([sys.executable, "-m", "sitegate.cloud.cli", "migrate", "--db", site.db],
                   check=True, cwd=ROOT, capture_output=True)
    yield site
    site.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path: Path, mosquitto: Any) -> Iterator[Site]:
    """A site against SQLite, and once more against PostgreSQL where it runs."""
    if request.param == "sqlite":
        db = str(tmp_path / "cloud.db")
    else:
        db = request.getfixturevalue("postgres_url")
    s = Site(tmp_path, db, mosquitto.url)
    subprocess.run([sys.executable, "-m", "sitegate.cloud.cli", "migrate", "--db", s.db],
                   check=True, cwd=ROOT, capture_output=True)
    yield s
    s.close()


class Probe:
    """A plain MQTT 5 client for tests: publish, and collect messages of subscribed topics."""

    def __init__(self, host: str, port: int, client_id: str | None = None) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        wait_until(self.client.is_connected, "test client connected", 10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(msg)

    def subscribe(self, topic: str) -> None:
        info = self.client.subscribe(topic, qos=1)
        assert info[0] == mqtt.MQTT_ERR_SUCCESS

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [bytes(m.payload) for m in self.messages if m.topic == topic]

    def publish(self, topic: str, payload: bytes, retain: bool = False,
                properties: Any = None) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain,
                            properties=properties).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_client(mosquitto: Any) -> Iterator[Probe]:
    c = Probe(mosquitto.host, mosquitto.port)
    yield c
    c.close()


@pytest.fixture
def wait() -> Callable[..., Any]:
    return wait_until


@dataclass
class Downlink:
    """The cloud's downlink key and a gateway state dir that trusts it (identity/downlink.pub
    written as enrolment would)."""

    keys: Path  # the cloud's key directory (downlink.key, downlink.pub)
    state_dir: Path

    @property
    def key(self) -> Any:
        from sitegate.cloud.keys import downlink_key

        return downlink_key(self.keys)

    def sign(self, gateway_id: str, kind: str, ref: int | str, body: dict[str, Any],
             expires_in: float | None = None, key: Any = None) -> bytes:
        from datetime import UTC, datetime, timedelta

        from sitegate.common import signing

        expires = (datetime.now(UTC) + timedelta(seconds=expires_in)
                   if expires_in is not None else None)
        return signing.sign(key or self.key, gateway_id, kind, ref, body, expires=expires)

    def command(self, gateway_id: str, cmd_id: str, name: str, args: dict[str, Any] | None = None,
                expires_in: float | None = 60, key: Any = None) -> bytes:
        body = {"v": 1, "id": cmd_id, "name": name, "args": args or {}}
        return self.sign(gateway_id, "cmd", cmd_id, body, expires_in, key)


def make_downlink(tmp: Path) -> Downlink:
    from sitegate.cloud.keys import downlink_key

    keys = tmp / "cloud-keys"
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    downlink_key(keys)
    state = tmp / "state"
    (state / "identity").mkdir(parents=True, exist_ok=True)
    (state / "identity" / "downlink.pub").write_bytes((keys / "downlink.pub").read_bytes())
    return Downlink(keys, state)


@pytest.fixture
def downlink(tmp_path: Path) -> Downlink:
    return make_downlink(tmp_path)


@pytest.fixture
def new_downlink() -> Callable[[Path], Downlink]:
    """make_downlink, for a test that needs a second cloud or state dir."""
    return make_downlink
