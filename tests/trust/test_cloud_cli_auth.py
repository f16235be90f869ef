"""The cloud's CLIs authenticate to the broker as the cloud (its listener, 8885): from the
key directory of the cloud host, or from a directory holding only the cloud's certificate,
key and the downlink key (the CA keys need not be on every host that runs a CLI)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sitegate.cloud.keys import downlink_key
from sitegate.common import signing
from tests.trust.conftest import Broker, cloud_cli, wait_until

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.xdist_group("trust-cloud-cli-auth")]  # one broker, one worker

GW = "gw-cli"


def _config(tmp_path: Path) -> Path:
    f = tmp_path / "desired.json"
    f.write_text(json.dumps({"gateway_id": GW, "meters": []}))
    return f


def test_push_config_and_badges_as_the_cloud_from_a_copied_identity(secure_broker: Broker,
                                                                    tmp_path: Path) -> None:
    downlink_key(secure_broker.keys)
    secure_broker.cloud_identity()  # cloud.crt/cloud.key exist on the cloud host
    elsewhere = tmp_path / "keys"
    elsewhere.mkdir(mode=0o700)
    for name in ("cloud.crt", "cloud.key", "ca.crt", "downlink.key", "downlink.pub"):
        shutil.copy2(secure_broker.keys / name, elsewhere / name)
    watcher = secure_broker.client(secure_broker.cloud_identity())
    assert watcher.connected, watcher.refused
    watcher.subscribe(f"sitegate/v1/{GW}/config", f"sitegate/v1/{GW}/badges")
    url = f"mqtts://127.0.0.1:{secure_broker.cloud_port}"

    res = cloud_cli("push-config", "--broker", url, "--gateway", GW, "--version", "3",
                    str(_config(tmp_path)), "--json", keys=elsewhere, check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"sent": True, "gateway_id": GW, "version": 3,
                                      "retained": True}
    badges = tmp_path / "badges.json"
    badges.write_text(json.dumps({"version": 9, "badges": []}))
    res = cloud_cli("push-badges", "--broker", url, "--gateway", GW, str(badges), "--json",
                    keys=elsewhere, check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["version"] == 9
    wait_until(lambda: len(watcher.messages) >= 2, "both retained messages")
    got = dict(watcher.messages)
    pub = signing.load_public(secure_broker.keys / "downlink.pub")
    signing.verify(pub, got[f"sitegate/v1/{GW}/config"], GW, signing.KIND_CONFIG)
    signing.verify(pub, got[f"sitegate/v1/{GW}/badges"], GW, signing.KIND_BADGES)
    assert not (elsewhere / "ca.key").exists()  # no CA was made where there was none
    watcher.close()


def test_no_identity_is_one_line_naming_what_is_missing(secure_broker: Broker,
                                                        tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    res = cloud_cli("push-config", "--broker", f"mqtts://127.0.0.1:{secure_broker.cloud_port}",
                    "--gateway", GW, "--version", "1", str(_config(tmp_path)), keys=empty,
                    check=False)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "no cloud identity in" in res.stderr
    assert "Traceback" not in res.stderr


def test_push_config_json_names_the_refused_credentials(tmp_path: Path) -> None:
    f = tmp_path / "desired.json"
    f.write_text(json.dumps({"mqtt": {"password": "hunter2"}}))
    res = cloud_cli("push-config", "--broker", "mqtts://127.0.0.1:1", "--gateway", GW,
                    "--version", "1", str(f), "--json", keys=tmp_path / "k", check=False)
    assert res.returncode == 2
    out = json.loads(res.stdout)
    assert out["sent"] is False and out["problems"][0].startswith("mqtt.password:")
