"""What the benchmarks share: a free port, quiet logs, a process's memory from /proc, a
timer. Light on purpose (a benchmark's measured child process imports it too)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free on loopback now (the OS's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quiet_logs() -> None:
    """Warnings and errors only: a bench's log lines would cost time it measures."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def status_mb(pid: int, field: str, missing: float = float("nan")) -> float:
    """A memory field of /proc/PID/status in MB (VmRSS: resident now, VmHWM: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return missing


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` took (wall clock)."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
