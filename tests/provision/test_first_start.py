"""From a claim token to a connected gateway through the SD card: the cloud issues the
token, `provision bundle` and `write` put it on a FAT image, the gateway's first start takes
it up, and the daemon enrols with it and connects over mutual TLS; the token is gone from
the image and from the state directory (spent). Real Mosquitto from broker-config, real
cloud, real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.provision.test_bundle import NEEDS, cli, fat_image
from tests.trust.conftest import ROOT, cloud_cli, make_broker, wait_until

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(bool(NEEDS), reason=f"missing {NEEDS}: apt-get install "
                                 "dosfstools mtools (.ci/run does)")]


def test_card_to_connected_gateway(tmp_path: Path) -> None:
    broker = make_broker(tmp_path)
    broker.start()
    db = str(tmp_path / "cloud.db")
    procs: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "cloud.log"
    try:
        with log.open("wb") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "sitegate.cloud.cli", "serve", "--db", db, "--broker",
                 f"mqtts://127.0.0.1:{broker.cloud_port}", "--keys", str(broker.keys)],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT))
        wait_until(lambda: "ingest.connected" in log.read_text() or procs[0].poll() is not None,
                   "cloud connected")
        token = json.loads(cloud_cli("gateways", "claim-token", "--site", "lindenweg",
                                     "--expires", "1h", "--db", db, "--json",
                                     keys=broker.keys).stdout)["token"]
        gw, state = "bldg-card-1", tmp_path / "state"
        site = tmp_path / "lindenweg.toml"
        site.write_text(f'gateway_id = "{gw}"\n[storage]\npath = "{state}/buffer.db"\n'
                        f'[health]\nsocket = "{tmp_path}/sg.sock"\n'
                        f'[mqtt]\nbroker = "mqtts://127.0.0.1:{broker.port}"\n'
                        f'provision_broker = "mqtts://127.0.0.1:{broker.provision_port}"\n'
                        "reconnect_min = 0.2\nreconnect_max = 1.0\n")
        res = cli("provision", "bundle", "--site-config", str(site), "--claim", "-", "--ca",
                  str(broker.keys / "ca.crt"), "--out", str(tmp_path / "bundle"),
                  stdin=token + "\n")
        assert res.returncode == 0, res.stderr
        image = fat_image(tmp_path / "boot.img")
        res = cli("provision", "write", "--bundle", str(tmp_path / "bundle"),
                  "--boot-partition", str(image))
        assert res.returncode == 0, res.stderr

        # First start: take-up (the unit's ExecStartPre), then the daemon.
        config = tmp_path / "etc" / "site.toml"
        res = cli("provision", "take-up", "--boot-partition", str(image), "--config",
                  str(config))
        assert res.returncode == 0, res.stderr
        secret = token.split(".")[0].encode()
        assert secret not in image.read_bytes()
        daemon_log = tmp_path / "daemon.log"
        with daemon_log.open("wb") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run",
                                           "-c", str(config)], stdout=out,
                                          stderr=subprocess.STDOUT, cwd=tmp_path))

        def connected() -> bool:
            res = cli("status", "-c", str(config), "--json")
            return res.returncode == 0 and json.loads(res.stdout)["services"][
                "SyncClient"].get("connected") is True

        wait_until(connected, "enrolled and connected", 120)
        assert (state / "identity" / "device.crt").exists()
        assert not (state / "claim-token").exists()  # spent
        assert f"as {gw} (" in broker.log.read_text()  # mutual TLS, as itself
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)
        broker.stop()
