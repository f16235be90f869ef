"""The installer's and technician's tools against real parts: simulated Modbus meters and an
M-Bus emulator in their own processes, the daemon, the CLIs as processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_tcp_port, wait_port


def cli(*args: str, env: dict[str, str] | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def cloud(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitegate.cloud.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def wait_for(pred: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    """Poll until ``pred`` holds (a bound on a hang, not an assertion on time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"never happened: {what}")


@contextmanager
def modbus_meters(*args: str) -> Iterator[int]:
    """A simulated RS485-Ethernet converter (RTU over TCP) with meters: --meter U:PROFILE,
    --reversed-ct U, --dead-phase U:PHASE ... (sitegate.drivers.modbus.simulator)."""
    port = free_tcp_port()
    proc = subprocess.Popen([sys.executable, "-m", "sitegate.drivers.modbus.simulator",
                             "--tcp", str(port), "--framing", "rtu-over-tcp", *args],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield port
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def mbus_meters(*meters: str) -> Iterator[int]:
    """An M-Bus-to-Ethernet converter with recorded meters: RECORDING:ADDR[:ID] each."""
    port = free_tcp_port()
    args = [sys.executable, "-m", "sitegate.drivers.mbus.emulator", "--tcp", str(port)]
    for m in meters:
        args += ["--meter", m]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        wait_port("127.0.0.1", port, 30)
        yield port
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def daemon(cfg: Path, socket: Path) -> Iterator[subprocess.Popen[str]]:
    log = cfg.with_suffix(".daemon.log")
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c",
                                 str(cfg)], stdout=out, stderr=out, text=True)
    try:
        wait_for(lambda: socket.exists() or proc.poll() is not None, "the control socket")
        assert proc.poll() is None, log.read_text()[-2000:]
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def status(cfg: Path) -> dict[str, Any]:
    got = cli("status", "-c", str(cfg), "--json")
    return json.loads(got.stdout) if got.returncode == 0 else {}


@pytest.fixture
def clock_ok(tmp_path: Path) -> dict[str, str]:
    """$SITEGATE_CLOCK_CMD: a stand-in for timedatectl (no systemd here) saying yes."""
    script = tmp_path / "clock-yes"
    script.write_text("#!/bin/sh\necho NTPSynchronized=yes\n")
    script.chmod(0o755)
    return {"SITEGATE_CLOCK_CMD": str(script)}
