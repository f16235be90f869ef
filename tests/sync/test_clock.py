"""The clock check agrees with the kernel, asked separately through the raw syscall."""

from __future__ import annotations

import ctypes
import platform

import pytest

from sitegate.gateway.clock import clock_state, clock_synchronized


@pytest.mark.skipif(platform.system() != "Linux", reason="adjtimex is Linux")
def test_clock_state_is_what_the_kernel_says() -> None:
    # SYS_adjtimex through syscall(2) with a zeroed, oversized buffer (modes=0: read only).
    numbers = {"x86_64": 159, "aarch64": 171, "armv7l": 124, "i686": 124}
    nr = numbers.get(platform.machine())
    if nr is None:
        pytest.skip(f"no syscall number for {platform.machine()}")
    buf = ctypes.create_string_buffer(1024)
    rc = ctypes.CDLL(None, use_errno=True).syscall(nr, buf)
    assert rc >= 0
    kernel_says_synced = rc != 5  # TIME_ERROR
    assert clock_synchronized() is kernel_says_synced
    assert clock_state() == ("synchronized" if kernel_says_synced else "unsynchronized")
