"""A simulated RS485-Ethernet converter with ten SDM630 meters for the daemon tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

SIM_UNITS = range(1, 11)
SIM_SILENT = 10  # the simulator leaves this unit unanswered


@pytest.fixture
def simulator(free_port: int) -> Iterator[int]:
    """Port of a Modbus simulator (RTU over TCP) in its own process: units 1-10, 10 silent."""
    args = [sys.executable, "-m", "sitegate.drivers.modbus.simulator", "--tcp", str(free_port),
            "--framing", "rtu-over-tcp", "--silent", str(SIM_SILENT)]
    for u in SIM_UNITS:
        args += ["--meter", f"{u}:eastron_sdm630"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield free_port
    proc.kill()
    proc.wait()
