"""Waiting for a daemon in another process: poll until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, *, every: float = 0.2,
             tolerate: tuple[type[Exception], ...] = (),
             what: str = "condition") -> Any:
    """Poll ``pred`` every ``every`` s until it is truthy: its value. An error of
    ``tolerate`` counts as not yet (the daemon has made the buffer file but not its tables).
    The timeout bounds a hung test; it asserts nothing about speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = pred()
        except tolerate:
            got = None
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"{what} not reached in time")
