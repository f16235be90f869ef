"""The cloud triggers an update with a signed command (update.apply: url + sha256): the
daemon fetches the bundle over HTTP, checks it and leaves the request for the privileged
unit, or answers why not (tampered, wrong digest); the unit's `sitegate update apply
--request` takes the request, and the outcome reaches the buffer's events stream (for the
cloud) once, at the daemon's next start. Real broker, real daemon, real HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitegate.cloud.ingest import downlink
from sitegate.cloud.keys import downlink_key, keys_dir
from sitegate.cloud.release_cli import release_key
from sitegate.common import signing
from tests.update.test_refused import bundle, rewrite

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def events(db: Path) -> list[dict]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT payload FROM entries WHERE stream='events' ORDER BY seq")
        return [json.loads(p) for (p,) in rows.fetchall()]


def wait_for(pred, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := pred():
                return value
        except (sqlite3.OperationalError, OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_cloud_command_fetches_checks_and_requests_then_outcome_reported(
        tmp_path: Path, http_dir: tuple[Path, str], mosquitto) -> None:  # type: ignore[no-untyped-def]
    served, base = http_dir
    keys = keys_dir(str(tmp_path / "cloud-keys"))
    key = downlink_key(keys)
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "release.pub").write_bytes(signing.public_pem(release_key(keys)))
    state = tmp_path / "state"
    (state / "identity").mkdir(parents=True)
    (state / "identity" / "downlink.pub").write_bytes((keys / "downlink.pub").read_bytes())
    opt = tmp_path / "opt"
    opt.mkdir()
    (opt / "current").symlink_to(sys.prefix)
    env = {**os.environ, "SITEGATE_INSTALL_ROOT": str(opt), "SITEGATE_RELEASE_KEYS": str(trusted)}
    gw = f"gw-upd-{os.getpid()}"
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'gateway_id = "{gw}"\n[storage]\npath = "{state}/buffer.db"\n'
                   f'[health]\nsocket = "{tmp_path}/sg.sock"\n'
                   f'[mqtt]\nbroker = "{mosquitto.url}"\nreconnect_min = 0.2\n'
                   'reconnect_max = 1.0\npoll_interval = 0.2\n')
    # Signed with the release key (sitegate-cloud release sign's), served over HTTP.
    good = bundle(served, "0.2.0", key=release_key(keys))
    sha = hashlib.sha256(good.read_bytes()).hexdigest()

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c",
                                 str(cfg)], env=env, cwd=tmp_path, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def command(args: dict) -> dict:
        res = downlink.send_command(mosquitto.url, gw, "update.apply", args, key, wait=60)
        assert res is not None, "no result"
        return res.model_dump(mode="json")

    def connected() -> bool:
        res = subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "status", "-c",
                              str(cfg), "--json"], capture_output=True, text=True)
        return json.loads(res.stdout)["services"]["SyncClient"]["connected"]

    proc = start()
    try:
        wait_for(connected, "uplink connected")
        # A wrong digest, then a tampered bundle: refused, nothing requested.
        res = command({"url": f"{base}/{good.name}", "sha256": "0" * 64})
        assert not res["ok"] and "is not the one asked for" in res["error"]
        evil = served / "evil.tar"
        evil.write_bytes(good.read_bytes())
        rewrite(evil, {"wheels/pyserial-3.5-py2.py3-none-any.whl": b"PK evil"})
        res = command({"url": f"{base}/evil.tar",
                       "sha256": hashlib.sha256(evil.read_bytes()).hexdigest()})
        assert not res["ok"] and "does not match the signed manifest" in res["error"]
        assert not (state / "updates" / "request.json").exists()
        # The good one: fetched, checked, requested.
        res = command({"url": f"{base}/{good.name}", "sha256": sha})
        assert res["ok"], res
        assert res["result"]["accepted"] and res["result"]["version"] == "0.2.0"
        request = state / "updates" / "request.json"
        assert json.loads(request.read_text())["version"] == "0.2.0"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    # The privileged unit's run: this bundle's wheels are not real, so the install fails
    # after every check passed; nothing is switched, and the outcome is kept.
    res = subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "update", "apply",
                          "--request", str(request), "-c", str(cfg), "--root", str(opt),
                          "--trusted-keys", str(trusted), "--restart", "true"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 2 and "cannot install the wheels" in res.stderr, res.stderr
    assert not request.exists()
    assert os.readlink(opt / "current") == sys.prefix

    # The next start reports it once, as an event for the cloud.
    proc = start()
    try:
        got = wait_for(lambda: [e for e in events(state / "buffer.db")
                                if e["kind"] == "update"], "the update event")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert len(got) == 1 and got[0]["outcome"] == "refused" and got[0]["severity"] == "warning"
    assert "cannot install the wheels" in got[0]["reason"]
    proc = start()
    try:
        wait_for(connected, "the daemon again")  # it reports before it serves status
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert len([e for e in events(state / "buffer.db") if e["kind"] == "update"]) == 1
