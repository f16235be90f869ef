"""A real Mosquitto started from exactly the files ``sitegate-cloud broker-config`` writes,
and MQTT clients that connect to it with a certificate, or anonymously for enrolment."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
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
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from paho.mqtt.enums import CallbackAPIVersion

from sitegate.cloud.auth.ca import CA
from sitegate.common.provisioning import ENROLMENT_IDENTITY
from sitegate.firmware_tools.identity import Identity

ROOT = Path(__file__).resolve().parents[2]


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int) -> None:
    wait_until(lambda: _listens(host, port), f"something listening on {host}:{port}", 10)


def _listens(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_until(pred: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``pred`` until truthy; the timeout only bounds a hung test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := pred():
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for: {what}")


def cloud_cli(*args: str, keys: Path | None = None,
              check: bool = True) -> subprocess.CompletedProcess[str]:
    more = ["--keys", str(keys)] if keys else []
    return subprocess.run([sys.executable, "-m", "sitegate.cloud.cli", *args, *more],
                          capture_output=True, text=True, timeout=60, check=check, cwd=ROOT)


@dataclass
class Broker:
    dir: Path
    keys: Path
    port: int
    provision_port: int
    cloud_port: int
    proc: subprocess.Popen[bytes] | None = None
    enrolment: subprocess.Popen[bytes] | None = None  # the enrolment broker, its own process
    log: Path = field(init=False)
    enrolment_log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.dir.parent / "mosquitto.log"
        self.enrolment_log = self.dir.parent / "mosquitto-enrolment.log"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.dir / "mosquitto.conf")],
                                         stdout=out, stderr=subprocess.STDOUT)
        wait_port("127.0.0.1", self.port)
        wait_port("127.0.0.1", self.cloud_port)
        bridged = self.log.read_text().count(f"u'{ENROLMENT_IDENTITY}'")
        with self.enrolment_log.open("ab") as out:
            self.enrolment = subprocess.Popen(
                ["mosquitto", "-c", str(self.dir / "enrolment.conf")], stdout=out,
                stderr=subprocess.STDOUT)
        wait_port("127.0.0.1", self.provision_port)
        time.sleep(0.1)
        for proc, log in ((self.proc, self.log), (self.enrolment, self.enrolment_log)):
            if proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {log.read_text()[-800:]}")
        wait_until(lambda: self.log.read_text().count(f"u'{ENROLMENT_IDENTITY}'") > bridged,
                   "the enrolment broker's bridge connected to the cloud listener")

    def reload(self) -> None:
        """SIGHUP, as the operator does after a revocation; waits until it has reloaded."""
        assert self.proc is not None
        before = self.log.read_text().count("Reloading config")
        os.kill(self.proc.pid, signal.SIGHUP)
        wait_until(lambda: self.log.read_text().count("Reloading config") > before,
                   "mosquitto reloaded")

    def stop(self) -> None:
        for proc in (self.enrolment, self.proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)

    # -- identities ----------------------------------------------------------------------------

    def gateway_identity(self, tmp: Path, gateway_id: str) -> tuple[str, str]:
        """(cert, key) files of a gateway signed by the cloud's CA (as enrolment would)."""
        ident = Identity(tmp / f"id-{gateway_id}")
        ca = CA.open(self.keys)
        cert = ca.sign_client(x509.load_pem_x509_csr(ident.csr_pem(gateway_id).encode()),
                              gateway_id)
        ident.cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
        return str(ident.cert_file), str(ident.key_file)

    def cloud_identity(self) -> tuple[str, str]:
        key, cert = CA.open(self.keys).cloud_client()
        return str(cert), str(key)

    def client(self, identity: tuple[str, str] | None, client_id: str | None = None,
               port: int | None = None) -> Probe:
        """A client, connected if the broker lets it: on the gateways' mTLS listener with
        ``identity`` (the cloud's own: on the cloud listener), else anonymous on the
        provisioning listener (or on ``port``)."""
        if port is None:
            port = self.provision_port if identity is None else (
                self.cloud_port if identity == self.cloud_identity() else self.port)
        return Probe(self, identity, client_id, port)


class Probe:
    """An MQTT 5 client over TLS that records what it receives."""

    def __init__(self, broker: Broker, identity: tuple[str, str] | None,
                 client_id: str | None, port: int) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.outcome = threading.Event()
        self.refused: str | None = None
        self.disconnects = 0  # after a successful connect (e.g. taken over by another)
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                             client_id=client_id or uuid.uuid4().hex)
        ctx = ssl.create_default_context(cafile=str(broker.dir / "ca.crt"))
        if identity:
            ctx.load_cert_chain(*identity)
        self.c.tls_set_context(ctx)
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        try:
            self.c.connect("127.0.0.1", port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            self.refused = str(exc)
            self.outcome.set()
            return
        self.c.loop_start()
        self.outcome.wait(30)

    @property
    def connected(self) -> bool:
        return self.refused is None and self.c.is_connected()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            self.refused = str(rc)
        self.outcome.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if self.outcome.is_set() and self.refused is None:
            self.disconnects += 1
        if not self.outcome.is_set():
            self.refused = f"disconnected: {rc}"
            self.outcome.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def topics(self) -> list[str]:
        with self._lock:
            return [t for t, _ in self.messages]

    def subscribe(self, *topics: str) -> None:
        done = threading.Event()
        self.c.on_subscribe = lambda *_a: done.set()
        self.c.subscribe([(t, 1) for t in topics])
        assert done.wait(10), "no SUBACK"

    def publish(self, topic: str, payload: bytes = b"x") -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def make_broker(tmp: Path) -> Broker:
    keys, out = tmp / "keys", tmp / "broker"
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_tcp_port())
    port, pport, cport = sorted(ports)
    # The files the operator gets; only ports, data directory and "user root" (to read the
    # test's temp files: mosquitto drops privileges otherwise) differ from the defaults.
    cloud_cli("broker-config", "--out", str(out), "--port", str(port), "--provision-port",
              str(pport), "--cloud-port", str(cport), "--bind", "127.0.0.1", "--user", "root",
              "--data", str(tmp), keys=keys)
    return Broker(out, keys, port, pport, cport)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = make_broker(tmp_path_factory.mktemp("trust"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
