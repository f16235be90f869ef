"""Shared fixtures: a private Mosquitto per test session, a fresh PostgreSQL schema per test."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port}")


class Mosquitto:
    """A mosquitto process on a fixed loopback port; can be stopped and started again."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.host, self.port = "127.0.0.1", port
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.conf.write_text(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            # queued messages for offline persistent sessions (the gateway's downlink)
            "max_queued_messages 10000\n"
            "log_type error\nlog_type warning\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)],
                                         stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.host, self.port)
        # Someone else may have taken the port since we picked it: then we did not start.
        time.sleep(0.1)
        if self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-500:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"), free_tcp_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mosquitto_broker(mosquitto: Mosquitto) -> tuple[str, int]:
    """(host, port) of a Mosquitto started for this test session."""
    return mosquitto.host, mosquitto.port


PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_reachable() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 5432), 0.5):
        return True
    return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for one test; dropped afterwards.

    Skips when nothing listens on 127.0.0.1:5432.
    """
    if not _pg_reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    from sqlalchemy import create_engine, text

    name = f"sitegate_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        pytest.skip(f"cannot create a PostgreSQL database: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def free_port() -> int:
    return free_tcp_port()


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals from socat: a null-modem cable for serial tests."""
    proc = subprocess.Popen(["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
                            stderr=subprocess.PIPE, text=True)
    paths: list[str] = []
    deadline = time.monotonic() + 10
    assert proc.stderr is not None
    while len(paths) < 2 and time.monotonic() < deadline:
        m = re.search(r"PTY is (\S+)", proc.stderr.readline())
        if m:
            paths.append(m.group(1))
    assert len(paths) == 2, "socat did not create two pseudo-terminals"
    # socat ends when the last user of a side closes it; hold both open (never read) so
    # several processes in turn can use the 'cable'.
    keep = [os.open(p, os.O_RDWR | os.O_NOCTTY) for p in paths]
    yield paths[0], paths[1]
    for fd in keep:
        os.close(fd)
    proc.terminate()
    proc.wait(5)
