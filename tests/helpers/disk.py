"""A real full disk for the tests: a small tmpfs mounted for one test, filled to the
last byte."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(tmp: Path, size: str, otherwise: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``1m``) mounted under ``tmp`` for the block; without the right
    to mount, the test is skipped, saying which test ``otherwise`` covers the case."""
    mnt = tmp / "disk"
    mnt.mkdir()
    got = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({got.stderr.strip() or got.returncode}); "
                    f"{otherwise}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Fill the file system to the last byte; the filler file (delete it to free)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler
