"""The gateway's Debian package, built once per test session with packaging/build-deb (the
standard tooling: dpkg-buildpackage, debhelper, dh-virtualenv), or skipped saying what is
missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("dpkg-buildpackage", "dh", "dh_virtualenv", "dpkg")


def missing_tools() -> list[str]:
    gone = [t for t in TOOLS if shutil.which(t) is None]
    return gone + ([] if Path("/usr/bin/python3.11").exists() else ["python3.11"])


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    gone = missing_tools()
    if gone:
        pytest.skip(f"Debian packaging tools missing: {', '.join(gone)} (apt-get install "
                    "dpkg-dev debhelper dh-virtualenv python3.11-venv; .ci/run does)")
    # the session's wheelhouse (tests/update's bundle is made from it too): not built twice
    wheels = request.getfixturevalue("gateway_wheelhouse")
    out = tmp_path_factory.mktemp("deb")
    # gzip instead of dpkg-deb's default xz: the same files and scripts, 7 s of CPU instead
    # of 37 s (82 MB of venv), and faster to unpack at each dpkg -i; what is tested is what
    # the package installs and does, not how it is compressed.
    res = subprocess.run([str(ROOT / "packaging" / "build-deb"), str(out)], cwd=ROOT,
                         env={**os.environ, "PYTHON": sys.executable,
                              "WHEELHOUSE": str(wheels), "DPKG_DEB_COMPRESSOR_TYPE": "gzip"},
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    return Path(res.stdout.strip().splitlines()[-1])
