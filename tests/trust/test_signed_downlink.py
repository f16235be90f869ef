"""Signed downlink through the shipped broker configuration: the cloud's commands connect as
the cloud's identity (from the key directory, as serve does), sign with its downlink key,
and an enrolled gateway (mutual TLS) acts on them; the ACL and the signature together."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from sitegate.cloud.keys import downlink_key
from sitegate.gateway.buffer import Buffer
from sitegate.sync.client import SyncClient
from sitegate.sync.config import MqttConfig
from tests.trust.conftest import Broker, cloud_cli

pytestmark = pytest.mark.timeout(120)


def test_push_badges_and_command_reach_an_enrolled_gateway(secure_broker: Broker,
                                                           tmp_path: Path) -> None:
    gw = "gw-downlink"
    cert, key = secure_broker.gateway_identity(tmp_path, gw)
    downlink_key(secure_broker.keys)  # the pair enrolment hands out (made on first use)
    state = tmp_path / "state"
    (state / "identity").mkdir(parents=True)
    (state / "identity" / "downlink.pub").write_bytes(
        (secure_broker.keys / "downlink.pub").read_bytes())
    url = f"mqtts://127.0.0.1:{secure_broker.port}"
    cloud_url = f"mqtts://127.0.0.1:{secure_broker.cloud_port}"  # the cloud's own listener
    cfg = MqttConfig(broker=url, ca_file=str(secure_broker.dir / "ca.crt"), cert_file=cert,
                     key_file=key, reconnect_min=0.2, reconnect_max=1.0, keepalive=5)
    badges = tmp_path / "badges.json"
    badges.write_text(json.dumps({"version": 4, "badges": [
        {"id": "04A1B2C3", "status": "accepted", "account": "t-1"}]}))
    lists: list[dict[str, Any]] = []

    async def on_command(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"ran": name}

    async def scenario() -> None:
        buf = Buffer(tmp_path / "buffer.db")
        client = SyncClient(cfg, gw, buf, on_badges=lists.append, on_command=on_command,
                            state_dir=state)
        await client.start()
        try:
            for _ in range(600):
                if client.health()["connected"]:
                    break
                await asyncio.sleep(0.05)
            assert client.health()["connected"]
            res = await asyncio.to_thread(
                cloud_cli, "command", "--broker", cloud_url, "--gateway", gw, "--wait", "30",
                "--json", "status", keys=secure_broker.keys, check=False)
            assert res.returncode == 0, res.stdout + res.stderr
            assert json.loads(res.stdout)["result"] == {"ran": "status"}
            res = await asyncio.to_thread(
                cloud_cli, "push-badges", "--broker", cloud_url, "--gateway", gw, str(badges),
                keys=secure_broker.keys, check=False)
            assert res.returncode == 0, res.stdout + res.stderr
            for _ in range(600):
                if client.health()["badges_version"] == 4:
                    break
                await asyncio.sleep(0.05)
            assert [b["badges"][0]["id"] for b in lists] == ["04A1B2C3"]
            assert client.health()["downlink"]["refused"] == 0
        finally:
            await client.stop()
            buf.close()

    asyncio.run(scenario())
