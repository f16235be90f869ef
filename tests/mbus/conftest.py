from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # libmbus_compare helper

DATA = Path(__file__).parent.parent / "data" / "libmbus"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals from socat: the M-Bus level converter's cable."""
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
