from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals from socat: a null-modem cable for serial tests."""
    proc = subprocess.Popen(
        ["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
        stderr=subprocess.PIPE, text=True,
    )
    paths: list[str] = []
    deadline = time.monotonic() + 10
    assert proc.stderr is not None
    while len(paths) < 2 and time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"PTY is (\S+)", line)
        if m:
            paths.append(m.group(1))
    assert len(paths) == 2, "socat did not create two pseudo-terminals"
    yield paths[0], paths[1]
    proc.terminate()
    proc.wait(5)
