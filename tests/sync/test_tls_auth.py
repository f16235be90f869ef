"""The uplink over mutual TLS (CA, client certificate and key from config) and with a
username/password, against a Mosquitto that demands them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitegate.gateway.buffer import Buffer
from sitegate.sync.client import SyncClient
from sitegate.sync.config import MqttConfig

# the timeout bounds a hang: ~10 CLI processes, at load 10 ~60 s; one broker, one worker
pytestmark = [pytest.mark.timeout(180), pytest.mark.xdist_group("sync-tls-auth")]


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int) -> None:
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port}")


def _ssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, int]]:
    d = tmp_path_factory.mktemp("tls")
    _ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
         "ca.crt", "-days", "2", "-subj", "/CN=sitegate test CA", cwd=d)
    for name, cn in (("server", "127.0.0.1"), ("client", "gw-tls")):
        _ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        ext = d / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1\n" if name == "server" else
                       "extendedKeyUsage=clientAuth\n")
        _ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", str(ext), cwd=d)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(d / "passwd"), "gw-pw", "s3cret"],
                   check=True, capture_output=True)
    tls_port = free_tcp_port()
    pw_port = free_tcp_port()
    while pw_port == tls_port:
        pw_port = free_tcp_port()
    (d / "m.conf").write_text(
        "per_listener_settings true\n"
        "user root\n"  # keep reading our temp files (mosquitto drops privileges otherwise)
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {d / 'ca.crt'}\ncertfile {d / 'server.crt'}\nkeyfile {d / 'server.key'}\n"
        "require_certificate true\nallow_anonymous true\n"
        f"listener {pw_port} 127.0.0.1\n"
        f"password_file {d / 'passwd'}\nallow_anonymous false\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(d / "m.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port("127.0.0.1", tls_port)
        wait_port("127.0.0.1", pw_port)
        time.sleep(0.1)
        assert proc.poll() is None, "mosquitto did not start (port taken meanwhile?)"
        yield d, tls_port, pw_port
    finally:
        proc.kill()
        proc.wait(10)


async def _connects(cfg: MqttConfig, buffer: Path) -> bool:
    buf = Buffer(buffer)
    client = SyncClient(cfg, f"gw-{uuid.uuid4().hex[:6]}", buf)
    await client.start()
    try:
        for _ in range(200):
            if client.health()["connected"]:
                return True
            await asyncio.sleep(0.05)
        return False
    finally:
        await client.stop()
        buf.close()


def test_mutual_tls(secure_broker, tmp_path: Path) -> None:
    d, tls_port, _ = secure_broker
    cfg = MqttConfig(broker=f"mqtts://127.0.0.1:{tls_port}", ca_file=str(d / "ca.crt"),
                     cert_file=str(d / "client.crt"), key_file=str(d / "client.key"),
                     reconnect_min=0.2, reconnect_max=1.0)
    assert asyncio.run(_connects(cfg, tmp_path / "b.db"))


def test_username_password(secure_broker, tmp_path: Path) -> None:
    _, _, pw_port = secure_broker
    cfg = MqttConfig(broker=f"mqtt://127.0.0.1:{pw_port}", username="gw-pw", password="s3cret",
                     reconnect_min=0.2, reconnect_max=1.0)
    assert asyncio.run(_connects(cfg, tmp_path / "b.db"))


def test_tls_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="go together"):
        MqttConfig(broker="mqtts://h", cert_file="c.crt")
    with pytest.raises(ValueError, match="need an mqtts"):
        MqttConfig(broker="mqtt://h", cert_file="c.crt", key_file="c.key")


def test_cloud_downlink_commands_authenticate_to_the_broker(secure_broker,
                                                            tmp_path: Path) -> None:
    """push-badges / command: user + password from a file or the environment (never argv),
    or a TLS client certificate; refused credentials are one line and exit code 1."""
    import json
    import os
    import sys

    import paho.mqtt.subscribe as subscribe

    from sitegate.common import signing
    from sitegate.sync import protocol as p

    d, tls_port, pw_port = secure_broker
    gw = f"gw-{uuid.uuid4().hex[:6]}"
    badges = tmp_path / "badges.json"
    badges.write_text(json.dumps({"version": 3, "badges": []}))
    keys = tmp_path / "keys"
    pw_file = tmp_path / "pw"
    pw_file.write_text("s3cret\n")
    env = {k: v for k, v in os.environ.items() if k != "SITEGATE_MQTT_PASSWORD"}

    def cloud(*args: str, extra_env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sitegate.cloud.cli", *args, "--keys",
                               str(keys), "--gateway", gw], capture_output=True, text=True,
                              env={**env, **(extra_env or {})}, timeout=60)

    plain = f"mqtt://127.0.0.1:{pw_port}"
    res = cloud("push-badges", "--broker", plain, str(badges))
    assert res.returncode == 1 and "refused" in res.stderr, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = cloud("push-badges", "--broker", plain, "--username", "gw-pw", "--password-file",
                str(pw_file), str(badges))
    assert res.returncode == 0, res.stdout + res.stderr
    msg = subscribe.simple(p.topic(gw, p.LEAF_BADGES), hostname="127.0.0.1", port=pw_port,
                           retained=True, auth={"username": "gw-pw", "password": "s3cret"})
    got = signing.verify(signing.load_public(keys / "downlink.pub"), msg.payload, gw, "badges")
    assert got.ref == 3
    # From the environment; nobody answers the command, so it times out after connecting.
    res = cloud("command", "--broker", plain, "--username", "gw-pw", "--wait", "0.2", "status",
                extra_env={"SITEGATE_MQTT_PASSWORD": "s3cret"})
    assert res.returncode == 1 and "no result within" in res.stderr, res.stderr
    res = cloud("push-badges", "--broker", f"mqtts://127.0.0.1:{tls_port}", "--ca-file",
                str(d / "ca.crt"), "--cert-file", str(d / "client.crt"), "--key-file",
                str(d / "client.key"), str(badges))
    assert res.returncode == 0, res.stdout + res.stderr
