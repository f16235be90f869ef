"""SyncClient in process against a real Mosquitto: signed desired config (applied /
rejected, in status), badge list, commands with results and expiry, and live data
overtaking a backlog. The attacks on the downlink are in test_downlink_trust.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sitegate.common import signing
from sitegate.gateway.buffer import Buffer, reading_row
from sitegate.sync import protocol as p
from sitegate.sync.client import SyncClient
from tests.sync.conftest import quick_cfg as _cfg
from tests.sync.conftest import until

pytestmark = pytest.mark.timeout(240)  # bounds a hang: up to 65 s measured at load 10


def test_config_badges_and_commands(mosquitto, mqtt_client, downlink, tmp_path: Path) -> None:
    gw = f"gw-{uuid.uuid4().hex[:8]}"
    status_topic = p.topic(gw, "status")
    mqtt_client.subscribe(status_topic)
    mqtt_client.subscribe(p.topic(gw, "cmd/+/result"))
    applied: list[dict[str, Any]] = []
    badge_lists: list[dict[str, Any]] = []
    ran: list[tuple[str, dict[str, Any]]] = []

    def on_config(desired: dict[str, Any]) -> str | None:
        if desired["config"].get("meters") == "broken":
            return "meters: expected a list"
        applied.append(desired)
        return None

    async def on_command(name: str, args: dict[str, Any]) -> dict[str, Any]:
        ran.append((name, args))
        if name == "buffer_stats":
            return {"rows": 0}
        raise LookupError(f"unknown command {name!r}")

    def statuses() -> list[dict[str, Any]]:
        return [json.loads(m) for m in mqtt_client.on(status_topic) if m]

    def result(cmd_id: str) -> dict[str, Any] | None:
        got = mqtt_client.on(p.cmd_result_topic(gw, cmd_id))
        return json.loads(got[-1]) if got else None

    def command(cmd_id: str, name: str, expiry: int = 60) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = expiry
        mqtt_client.publish(p.cmd_topic(gw, cmd_id),
                            downlink.command(gw, cmd_id, name, {"x": 1}, expiry),
                            properties=props)

    def config(version: int, body: dict[str, Any]) -> None:
        mqtt_client.publish(p.topic(gw, "config"), downlink.sign(
            gw, "config", version, {"v": 1, "version": version, "config": body}), retain=True)

    async def scenario() -> None:
        buf = Buffer(tmp_path / "buffer.db")
        # Retained before the gateway exists: it must pick the desired config up on connect.
        config(1, {"meters": []})
        client = SyncClient(_cfg(mosquitto.url), gw, buf, on_config=on_config,
                            on_badges=badge_lists.append, on_command=on_command,
                            state_dir=downlink.state_dir)
        await client.start()
        await until(lambda: any(s.get("applied_config_version") == 1 for s in statuses()),
                    "config 1 applied and reported")
        assert applied == [{"version": 1, "config": {"meters": []}}]

        config(2, {"meters": "broken"})
        rejected = await until(lambda: [s for s in statuses() if s.get("config_rejected")],
                               "config 2 rejected and reported")
        assert rejected[-1]["config_rejected"] == {"version": 2,
                                                   "error": "meters: expected a list"}
        assert rejected[-1]["applied_config_version"] == 1  # the old one still runs
        mqtt_client.publish(p.topic(gw, "config"), b"{not json", retain=True)
        await until(lambda: client.health()["downlink"]["refused"] == 1, "garbage refused")
        assert "unsigned" in client.health()["downlink"]["last_refused"]["reason"]
        # Signed, but not a desired config: reported as the cloud's mistake.
        mqtt_client.publish(p.topic(gw, "config"), downlink.sign(
            gw, "config", 3, {"v": 1, "version": 3, "config": 5}), retain=True)
        await until(lambda: "unreadable" in str(statuses()[-1].get("config_rejected")),
                    "unreadable config reported")

        badge_list = {"version": 7, "badges": [
            {"id": "04A1B2C3", "status": "accepted", "expires": None, "account": "t-1"},
            {"id": "DEADBEEF", "status": "blocked", "expires": "2027-01-01T00:00:00Z",
             "account": None}]}
        mqtt_client.publish(p.topic(gw, "badges"),
                            downlink.sign(gw, "badges", 7, badge_list), retain=True)
        await until(lambda: any(s.get("badges_version") == 7 for s in statuses()),
                    "badge list 7 reported")
        assert badge_lists[-1]["badges"][0] == badge_list["badges"][0]
        assert badge_lists[-1]["badges"][1]["expires"].startswith("2027-01-01T00:00:00")

        command("c1", "buffer_stats")
        command("c2", "frobnicate")
        command("c1", "buffer_stats")  # the same id again: must not run twice
        command("c3", "buffer_stats")
        assert (await until(lambda: result("c1"), "result c1"))["result"] == {"rows": 0}
        r2 = await until(lambda: result("c2"), "result c2")
        assert r2["ok"] is False and "unknown command 'frobnicate'" in r2["error"]
        await until(lambda: result("c3"), "result c3")
        assert [n for n, _ in ran] == ["buffer_stats", "frobnicate", "buffer_stats"]

        # Offline, the broker keeps our session: a command that expires meanwhile never runs.
        await client.stop()
        # stop() waited for the broker's PUBACK; the test client gets its copy a moment later.
        await until(lambda: statuses()[-1]["state"] == "offline", "offline status")
        command("c4", "stale", expiry=1)
        command("c5", "buffer_stats", expiry=600)
        await asyncio.sleep(2.5)  # let c4's expiry pass (the broker drops it)
        again = SyncClient(_cfg(mosquitto.url), gw, buf, on_config=on_config,
                           on_badges=badge_lists.append, on_command=on_command,
                           state_dir=downlink.state_dir)
        await again.start()
        await until(lambda: result("c5"), "result c5 after reconnect")
        assert result("c4") is None and "stale" not in [n for n, _ in ran]
        await again.stop()
        kinds = [e.data()["kind"] for e in buf.pending("events", 100)]
        assert kinds[:2] == ["config_applied", "config_rejected"]
        buf.close()

    asyncio.run(scenario())
    mqtt_client.publish(p.topic(gw, "config"), b"", retain=True)  # clear retained state
    mqtt_client.publish(p.topic(gw, "badges"), b"", retain=True)


def test_live_rows_overtake_a_throttled_backlog(sqlite_site, tmp_path: Path) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from sitegate.sync.protocol import Reading

    site = sqlite_site
    site.cloud()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    async def scenario() -> None:
        buf = Buffer(site.buffer)
        buf.write([reading_row(Reading("m1", t0, "1-0:1.8.0", Decimal(i), "kWh"))
                   for i in range(3000)])
        client = SyncClient(_cfg(site.broker_url, drain_rate=100, batch_rows=50), site.gateway_id,
                            buf)
        await client.start()
        await until(lambda: client.health()["connected"], "connected")
        await until(lambda: site.cloud_count() > 0, "backlog draining")
        buf.write([reading_row(Reading("m1", t0, "1-0:1.8.0", Decimal("0.5"), "kWh"))])
        client.wake()
        await until(lambda: site.sql("SELECT seq FROM readings WHERE gateway_id=:g AND "
                                     "seq=3001"), "the live reading in the cloud")
        backlog_in_cloud = site.cloud_count() - 1
        # 100 rows/s: the live row arrived while most of the backlog still waits its turn.
        assert backlog_in_cloud < 1500
        health = client.health()
        assert health["backlog"]["readings"] > 0
        await client.stop()
        buf.close()

    asyncio.run(scenario())


def test_cloud_side_push_config_and_command(mosquitto, downlink, tmp_path: Path) -> None:
    from sitegate.cloud.ingest.downlink import push_badges, push_config, send_command

    gw = f"gw-{uuid.uuid4().hex[:8]}"
    applied: list[dict[str, Any]] = []
    badge_lists: list[dict[str, Any]] = []

    async def on_command(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"echo": name, "args": args}

    async def scenario() -> None:
        buf = Buffer(tmp_path / "buffer.db")
        client = SyncClient(_cfg(mosquitto.url), gw, buf, on_config=lambda d: applied.append(d),
                            on_badges=badge_lists.append, on_command=on_command,
                            state_dir=downlink.state_dir)
        await client.start()
        await until(lambda: client.health()["connected"], "connected")
        key = downlink.key
        await asyncio.to_thread(push_config, mosquitto.url, gw, 4, {"meters": ["a"]}, key)
        await asyncio.to_thread(push_badges, mosquitto.url, gw, {"version": 2, "badges": []},
                                key)
        result = await asyncio.to_thread(send_command, mosquitto.url, gw, "status", {"v": 1},
                                         key)
        assert result is not None and result.ok and result.result == {
            "echo": "status", "args": {"v": 1}}
        await until(lambda: applied and badge_lists, "config and badges delivered")
        assert applied == [{"version": 4, "config": {"meters": ["a"]}}]
        assert client.health()["applied_config_version"] == 4
        await client.stop()
        buf.close()

    asyncio.run(scenario())


def test_push_config_cli_checks_the_site_file_and_sends_it_as_text(
        mosquitto, tmp_path: Path) -> None:
    import subprocess
    import sys
    import threading

    import paho.mqtt.subscribe as subscribe

    gw = f"gw-{uuid.uuid4().hex[:8]}"
    site = tmp_path / "site.toml"
    good = (f'gateway_id = "{gw}"\n[storage]\npath = "{tmp_path}/b.db"\n'
            '[[buses]]\nname = "b"\ntcp = { host = "10.0.0.5" }\n'
            '[[meters]]\nid = "apt-1"\nbus = "b"\nunit = 1\nprofile = "eastron_sdm630"\n')
    keys = tmp_path / "keys"
    run = [sys.executable, "-m", "sitegate.cloud.cli", "push-config", "--broker", mosquitto.url,
           "--gateway", gw, "--version", "7", "--keys", str(keys), str(site)]
    site.write_text(good.replace("unit = 1", "unit = 300"))
    res = subprocess.run(run, capture_output=True, text=True)
    assert res.returncode == 2 and "meters[0].unit" in res.stdout, res.stdout + res.stderr
    site.write_text(good.replace("eastron_sdm630", "eastron_nope"))
    res = subprocess.run(run, capture_output=True, text=True)
    assert res.returncode == 2 and "eastron_nope" in res.stdout, res.stdout + res.stderr
    site.write_text(good)
    res = subprocess.run(run, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(subscribe.simple(
        p.topic(gw, p.LEAF_CONFIG), hostname=mosquitto.host, port=mosquitto.port,
        retained=True)), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert got, "no retained config on the broker"
    # Signed with the key the CLI made in --keys (downlink.key, and downlink.pub to hand out).
    signed = signing.verify(signing.load_public(keys / "downlink.pub"), got[0].payload, gw,
                            "config")
    desired = p.DesiredConfig.model_validate(signed.body)
    assert (desired.version, desired.config, signed.ref) == (7, good, 7)
    assert (keys / "downlink.key").stat().st_mode & 0o777 == 0o600
