"""A signed update whose new version fails its health check is rolled back: the daemon
runs the old version again, on the same buffer (same epoch), with nothing lost; the install
root's switch is all that changed. The bundle is real: sitegate-cloud release sign over a
wheelhouse of the pinned dependencies and a 0.1.1 wheel of this checkout whose daemon exits
at start. A supervisor loop stands in for systemd (Restart=on-failure)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(900)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, **kw)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def wait_for(pred, what: str, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := pred():
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def broken_bundle(tmp_path_factory: pytest.TempPathFactory,
                  gateway_wheelhouse: Path) -> tuple[Path, Path]:
    """(bundle, key directory): 0.1.1, whose daemon exits at start, signed."""
    tmp = tmp_path_factory.mktemp("release")
    house = tmp / "wheelhouse"  # the session's (the Debian package's too), with 0.1.1
    shutil.copytree(gateway_wheelhouse, house)
    # This checkout as 0.1.1, broken: its daemon exits before it is ready.
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "packaging", "tests", "bench", "__pycache__", "*.egg-info", "build"))
    py = src / "pyproject.toml"
    py.write_text(py.read_text().replace('version = "0.1.0"', 'version = "0.1.1"', 1))
    daemon = src / "sitegate" / "gateway" / "daemon.py"
    daemon.write_text(daemon.read_text().replace(
        "    async def run(self) -> int:\n",
        "    async def run(self) -> int:\n        raise SystemExit('0.1.1 is broken')\n", 1))
    for old in house.glob("sitegate-*.whl"):
        old.unlink()
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
        str(house), str(src))
    reqs = house / "requirements.txt"
    reqs.write_text(reqs.read_text().replace("sitegate==0.1.0", "sitegate==0.1.1"))
    keys, bundle = tmp / "keys", tmp / "sitegate-0.1.1.tar"
    run(sys.executable, "-m", "sitegate.cloud.cli", "release", "sign", "--wheelhouse",
        str(house), "--out", str(bundle), "--keys", str(keys), "--json")
    return bundle, keys


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict]:
    """A meter, a gateway site file, an install root whose current version is this
    checkout's venv, and a supervisor restarting `<root>/current/bin/python -m ... run`."""
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "sitegate.drivers.modbus.simulator", "--tcp",
                            str(port), "--framing", "rtu-over-tcp", "--meter",
                            "1:eastron_sdm630"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert sim.stdout is not None and sim.stdout.readline().strip() == "ready"
    state = tmp_path / "state"
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'gateway_id = "gw-upd"\n[storage]\npath = "{state}/buffer.db"\n'
                   f'[health]\nsocket = "{tmp_path}/sg.sock"\n'
                   '[[buses]]\nname = "conv"\ntimeout = 0.5\nretries = 1\n'
                   f'tcp = {{ host = "127.0.0.1", port = {port}, framing = "rtu-over-tcp" }}\n'
                   '[[meters]]\nid = "m1"\nbus = "conv"\nunit = 1\n'
                   'profile = "eastron_sdm630"\ninterval = 1\n')
    root = tmp_path / "opt"
    root.mkdir()
    (root / "current").symlink_to(sys.prefix)
    pid, stop, log = tmp_path / "daemon.pid", tmp_path / "stop", tmp_path / "daemon.log"
    supervisor = subprocess.Popen(
        ["bash", "-c", f'export PYTHONUNBUFFERED=1; while [ ! -e "{stop}" ]; do '
         f'"{root}/current/bin/python" -m sitegate.gateway.cli run -c "{cfg}" >>"{log}" 2>&1 '
         f'& echo $! > "{pid}"; wait $!; '
         # not from the checkout: `python -m` would import the checkout's sitegate first
         "sleep 0.3; done"], cwd=tmp_path)
    restart = tmp_path / "restart"
    restart.write_text(f'#!/bin/sh\nkill -TERM "$(cat "{pid}")" 2>/dev/null; exit 0\n')
    restart.chmod(0o755)
    try:
        yield {"cfg": cfg, "root": root, "state": state, "restart": restart, "log": log}
    finally:
        stop.touch()
        subprocess.run([str(restart)])
        try:
            supervisor.wait(30)
        except subprocess.TimeoutExpired:
            supervisor.kill()
        sim.kill()
        sim.wait(10)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", *args],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)


def readings(cfg: Path) -> dict:
    res = cli("buffer", "stats", "-c", str(cfg), "--json")
    return json.loads(res.stdout) if res.returncode == 0 else {}


def status(cfg: Path) -> dict | None:
    res = cli("status", "-c", str(cfg), "--json")
    return json.loads(res.stdout) if res.returncode == 0 else None


def test_unhealthy_update_rolled_back_nothing_lost(broken_bundle: tuple[Path, Path],
                                                   site: dict) -> None:
    bundle, keys = broken_bundle
    cfg, root = site["cfg"], site["root"]
    trusted = root.parent / "trusted"
    trusted.mkdir()
    shutil.copy(keys / "release.pub", trusted / "release.pub")
    # The old version runs and buffers readings.
    wait_for(lambda: (readings(cfg).get("streams", {}).get("readings", {}).get("rows", 0)
                      >= 10), "readings in the buffer")
    before = readings(cfg)
    assert (status(cfg) or {}).get("version") == "0.1.0"
    state_files = {p.name for p in site["state"].iterdir()}

    res = cli("update", "apply", str(bundle), "-c", str(cfg), "--root", str(root),
              "--trusted-keys", str(trusted), "--health-timeout", "20",
              "--restart", str(site["restart"]), "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert (out["outcome"], out["version"], out["previous"], out["running"]) == (
        "rolled_back", "0.1.1", "0.1.0", "0.1.0")
    assert out["reason"].startswith("0.1.1 not healthy within 20 s: ")
    assert json.loads((root / "last-update.json").read_text()) == out
    # The new version was installed beside the old one and really ran (and failed) ...
    assert (root / "releases/0.1.1/bin/python").exists()
    assert "0.1.1 is broken" in site["log"].read_text(), (out, site["log"].read_text())
    # ... and the old one runs again, healthy, on the same buffer.
    assert Path(os.readlink(root / "current")) == Path(sys.prefix)
    now = status(cfg)
    assert now is not None and now["version"] == "0.1.0"
    after = wait_for(lambda: (r := readings(cfg)) and r["streams"]["readings"]["rows"]
                     > before["streams"]["readings"]["rows"] and r, "new readings")
    assert after["epoch"] == before["epoch"]
    assert {p.name for p in site["state"].iterdir()} >= state_files
    # Nothing lost, nothing twice: no gaps in the sequence numbers, no duplicates.
    check = cli("buffer", "check", "-c", str(cfg), "--json")
    assert check.returncode == 0, check.stdout
    assert re.search(r'"ok": true', check.stdout)
