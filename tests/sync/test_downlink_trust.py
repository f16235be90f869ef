"""Attacks on the downlink, as any client of the broker could make them (issue 12): a forged
ack, forged and replayed commands, a retained command after a restart, a lower-version
config, forged badge lists; and a gateway without the cloud's key accepting nothing.

A real Mosquitto and the gateway's SyncClient in process; the attacker is a plain MQTT
client (``mqtt_client``). Every message the gateway refuses leaves a ``downlink_refused``
event in its buffer and counts in ``health()["downlink"]``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sitegate.common import signing
from sitegate.gateway.buffer import Buffer, reading_row
from sitegate.sync import protocol as p
from sitegate.sync.client import SyncClient
from tests.sync.conftest import quick_cfg as _cfg
from tests.sync.conftest import until

pytestmark = pytest.mark.timeout(240)  # bounds a hang: up to 65 s measured at load 10


def _refused(client: SyncClient) -> int:
    return client.health()["downlink"]["refused"]


def _refusals(buf: Buffer) -> list[dict[str, Any]]:
    return [e.data() for e in buf.pending("events", 1000)
            if e.data()["kind"] == "downlink_refused"]


def test_forged_ack_beyond_what_was_sent_is_ignored(mosquitto, mqtt_client,
                                                    tmp_path: Path) -> None:
    """Nobody acknowledges here: the gateway has 2,500 readings, sends at most two batches
    of 100 and waits. An ack up to 1,000,000 must not make it drop the unsent rows."""
    gw = f"gw-{uuid.uuid4().hex[:8]}"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    async def scenario() -> None:
        buf = Buffer(tmp_path / "buffer.db")
        buf.write([reading_row(p.Reading("m1", t0, "1-0:1.8.0", Decimal(i), "kWh"))
                   for i in range(2500)])
        client = SyncClient(_cfg(mosquitto.url, batch_rows=100, max_inflight=2, drain_rate=None,
                                 ack_timeout=600), gw, buf)
        await client.start()
        await until(lambda: client.health()["in_flight"]["readings"] == 2, "two batches out")
        ack_topic = p.topic(gw, p.LEAF_ACK)
        forged = p.Ack(stream="readings", epoch=buf.epoch, upto=1_000_000)
        mqtt_client.publish(ack_topic, p.encode_ack(forged))
        real = p.Ack(stream="readings", epoch=buf.epoch, upto=100, first=1, last=100)
        mqtt_client.publish(ack_topic, p.encode_ack(real))
        await until(lambda: client.health()["last_ack"]["readings"]["upto"], "an ack taken")
        # Only the real ack counted: 2,400 rows are still waiting to be sent.
        assert buf.acked_upto("readings") == 100
        assert client.health()["backlog"]["readings"] == 2400
        # Forged to look like the answer to the batch in flight (101..200): the mark can
        # move at most to what the gateway has sent, never over unsent rows.
        echo = p.Ack(stream="readings", epoch=buf.epoch, upto=1_000_000, first=101, last=200)
        mqtt_client.publish(ack_topic, p.encode_ack(echo))
        await until(lambda: buf.acked_upto("readings") > 100, "the echoing ack taken")
        assert buf.acked_upto("readings") <= client.health()["sent_upto"]["readings"]
        # Two batches of 100 in flight at most: the unsent rows are all still there.
        assert client.health()["backlog"]["readings"] >= 2500 - 500
        await client.stop()
        buf.close()

    asyncio.run(scenario())


def test_forged_expired_and_replayed_commands_never_run(mosquitto, mqtt_client, downlink,
                                                        tmp_path: Path) -> None:
    gw = f"gw-{uuid.uuid4().hex[:8]}"
    other_key = signing.generate()
    ran: list[str] = []
    mqtt_client.subscribe(p.topic(gw, "cmd/+/result"))

    async def on_command(name: str, args: dict[str, Any]) -> dict[str, Any]:
        ran.append(name)
        return {"done": name}

    def send(cmd_id: str, payload: bytes, retain: bool = False) -> None:
        mqtt_client.publish(p.cmd_topic(gw, cmd_id), payload, retain=retain)

    def result(cmd_id: str) -> dict[str, Any] | None:
        got = mqtt_client.on(p.cmd_result_topic(gw, cmd_id))
        return json.loads(got[-1]) if got else None

    def client_for(buf: Buffer) -> SyncClient:
        return SyncClient(_cfg(mosquitto.url), gw, buf, on_command=on_command,
                          state_dir=downlink.state_dir)

    async def scenario() -> None:
        buf = Buffer(tmp_path / "buffer.db")
        client = client_for(buf)
        await client.start()
        await until(lambda: client.health()["connected"], "connected")
        # The attacks, each as a message a broker client can publish:
        send("c1", p.dumps({"v": 1, "id": "c1", "name": "unlock", "args": {}}))  # unsigned
        send("c2", downlink.command(gw, "c2", "hard_reset", key=other_key))  # another key
        send("c3", downlink.command("gw-other", "c3", "get_configuration"))  # other gateway
        send("c4", downlink.command(gw, "c4", "unlock", expires_in=None))  # no expiry
        send("c5", downlink.command(gw, "c5", "unlock", expires_in=-1))  # expired
        send("c6", downlink.command(gw, "c7", "unlock"))  # signed for another id
        # Then a real command: once its result is back, the attacks before it were handled.
        ok = downlink.command(gw, "c8", "status")
        send("c8", ok)
        await until(lambda: result("c8"), "result of the real command")
        assert ran == ["status"]
        await until(lambda: _refused(client) == 6, "six refusals")
        reasons = {r["id"]: r["reason"] for r in _refusals(buf)}
        assert "unsigned" in reasons["c1"] and "bad signature" in reasons["c2"]
        assert "gw-other" in reasons["c3"] and "without an expiry" in reasons["c4"]
        assert "expired" in reasons["c5"] and "differs from topic" in reasons["c6"]

        send("c8", ok)  # replayed as captured
        send("c10", downlink.command(gw, "c10", "status"))
        await until(lambda: result("c10"), "result of the next real command")
        assert ran == ["status", "status"]
        await until(lambda: _refused(client) == 7, "replay refused")
        assert "already executed" in client.health()["downlink"]["last_refused"]["reason"]

        # Retained: it reaches the gateway again at every (re)start; it must run once.
        send("c9", downlink.command(gw, "c9", "reboot"), retain=True)
        await until(lambda: result("c9"), "result of the retained command")
        await client.stop()
        again = client_for(buf)
        await again.start()
        await until(lambda: again.health()["connected"], "connected again")
        send("c11", downlink.command(gw, "c11", "status"))  # after the retained one
        await until(lambda: result("c11"), "result after the restart")
        assert ran == ["status", "status", "reboot", "status"]  # reboot ran once
        await until(lambda: _refused(again) == 1, "the retained command refused after restart")
        assert "already executed" in again.health()["downlink"]["last_refused"]["reason"]
        await again.stop()
        buf.close()

    try:
        asyncio.run(scenario())
    finally:
        mqtt_client.publish(p.cmd_topic(gw, "c9"), b"", retain=True)
    record = json.loads((downlink.state_dir / "downlink-state.json").read_text())
    assert set(record["commands"]) == {"c8", "c9", "c10", "c11"}


def test_lower_version_and_forged_configs_are_refused(mosquitto, mqtt_client, downlink,
                                                      tmp_path: Path) -> None:
    gw = f"gw-{uuid.uuid4().hex[:8]}"
    applied: list[int] = []
    topic = p.topic(gw, p.LEAF_CONFIG)

    def on_config(desired: dict[str, Any]) -> str | None:
        if desired["config"] == "reject me":
            return "refused by the gateway's checks"
        applied.append(desired["version"])
        return None

    def signed(version: int, gateway: str = gw, key: Any = None) -> bytes:
        body = {"v": 1, "version": version, "config": {"meters": ["evil"]}}
        return downlink.sign(gateway, "config", version, body, key=key)

    async def scenario() -> None:
        buf = Buffer(tmp_path / "buffer.db")
        # The gateway runs v5 (persisted by the daemon, passed in as it does).
        client = SyncClient(_cfg(mosquitto.url), gw, buf, on_config=on_config,
                            applied_config_version=5, state_dir=downlink.state_dir)
        await client.start()
        await until(lambda: client.health()["connected"], "connected")
        mqtt_client.publish(topic, signed(4), retain=True)  # older than the one in force
        mqtt_client.publish(topic, p.dumps({"v": 1, "version": 9, "config": {}}))  # unsigned
        mqtt_client.publish(topic, signed(9, key=signing.generate()))  # another key
        mqtt_client.publish(topic, signed(9, gateway="gw-other"))  # for another gateway
        mqtt_client.publish(topic, downlink.sign(gw, "config", 8, {
            "v": 1, "version": 8, "config": "reject me"}))
        await until(lambda: (client.health()["config_rejected"] or {}).get("version") == 8,
                    "v8 rejected by the gateway")
        # v7 was signed once (superseded by v8): replayed, it must not run either.
        mqtt_client.publish(topic, signed(7))
        mqtt_client.publish(topic, signed(10), retain=True)
        await until(lambda: 10 in applied, "v10 applied")
        assert applied == [10] and client.health()["applied_config_version"] == 10
        await until(lambda: _refused(client) == 5, "five refusals")
        reasons = [r["reason"] for r in _refusals(buf)]
        assert "not greater than the one in force (5)" in str(reasons)
        assert "not greater than the one in force (8)" in str(reasons)
        await client.stop()
        buf.close()

    try:
        asyncio.run(scenario())
    finally:
        mqtt_client.publish(topic, b"", retain=True)


def test_forged_and_older_badge_lists_are_refused(mosquitto, mqtt_client, downlink,
                                                  tmp_path: Path) -> None:
    gw = f"gw-{uuid.uuid4().hex[:8]}"
    lists: list[dict[str, Any]] = []
    topic = p.topic(gw, p.LEAF_BADGES)

    def badges(version: int, card: str) -> dict[str, Any]:
        return {"version": version, "badges": [
            {"id": card, "status": "accepted", "expires": None, "account": "tenant-1"}]}

    def client_for(buf: Buffer) -> SyncClient:
        return SyncClient(_cfg(mosquitto.url), gw, buf, on_badges=lists.append,
                          state_dir=downlink.state_dir)

    async def scenario() -> None:
        buf = Buffer(tmp_path / "buffer.db")
        client = client_for(buf)
        await client.start()
        await until(lambda: client.health()["connected"], "connected")
        mqtt_client.publish(topic, p.dumps(badges(99, "A77AC4ED")))  # unsigned
        mqtt_client.publish(topic, downlink.sign(gw, "badges", 99, badges(99, "A77AC4ED"),
                                                 key=signing.generate()))
        mqtt_client.publish(topic, downlink.sign(gw, "badges", 3, badges(3, "04A1B2C3")),
                            retain=True)
        await until(lambda: client.health()["badges_version"] == 3, "v3 loaded")
        assert [b["badges"][0]["id"] for b in lists] == ["04A1B2C3"]
        mqtt_client.publish(topic, downlink.sign(gw, "badges", 2, badges(2, "A77AC4ED")))
        await until(lambda: _refused(client) == 3, "two forged lists and the older v2 refused")
        assert [b["badges"][0]["id"] for b in lists] == ["04A1B2C3"]
        await client.stop()
        # After a restart the retained v3 is loaded again (the list lives in memory).
        again = client_for(buf)
        await again.start()
        await until(lambda: again.health()["badges_version"] == 3, "v3 loaded after restart")
        await again.stop()
        assert [b["version"] for b in lists] == [3, 3]
        buf.close()

    try:
        asyncio.run(scenario())
    finally:
        mqtt_client.publish(topic, b"", retain=True)


def test_without_the_cloud_key_no_downlink_is_accepted(mosquitto, mqtt_client, capsys,
                                                       new_downlink, tmp_path: Path) -> None:
    gw = f"gw-{uuid.uuid4().hex[:8]}"
    cloud = new_downlink(tmp_path / "cloud")  # a real, validly signing cloud...
    state = tmp_path / "gateway-state"  # ...but this gateway was never given its key
    ran: list[Any] = []

    async def on_command(name: str, args: dict[str, Any]) -> dict[str, Any]:
        ran.append(name)
        return {}

    async def scenario() -> None:
        buf = Buffer(tmp_path / "buffer.db")
        client = SyncClient(_cfg(mosquitto.url), gw, buf, on_config=ran.append,
                            on_badges=ran.append, on_command=on_command, state_dir=state)
        await client.start()
        await until(lambda: client.health()["connected"], "connected")
        mqtt_client.publish(p.topic(gw, p.LEAF_CONFIG), cloud.sign(
            gw, "config", 1, {"v": 1, "version": 1, "config": {}}))
        mqtt_client.publish(p.cmd_topic(gw, "c1"), cloud.command(gw, "c1", "status"))
        mqtt_client.publish(p.topic(gw, p.LEAF_BADGES), cloud.sign(
            gw, "badges", 1, {"version": 1, "badges": []}))
        await until(lambda: _refused(client) == 3, "all three refused")
        assert ran == [] and client.health()["downlink"]["key"] is None
        await client.stop()
        buf.close()

    asyncio.run(scenario())
    out = capsys.readouterr().out
    assert out.count("sync.no_downlink_key") == 1, out  # said once, at start


def test_push_config_refuses_a_file_with_credentials(tmp_path: Path) -> None:
    import subprocess
    import sys

    gw = "gw-secret"
    site = tmp_path / "site.toml"
    site.write_text(f'gateway_id = "{gw}"\n[storage]\npath = "{tmp_path}/b.db"\n'
                    '[mqtt]\nbroker = "mqtt://127.0.0.1:1"\nusername = "gw"\n'
                    'password = "hunter2"\n')
    run = [sys.executable, "-m", "sitegate.cloud.cli", "push-config", "--broker",
           "mqtt://127.0.0.1:1", "--gateway", gw, "--version", "1", "--keys",
           str(tmp_path / "keys")]
    res = subprocess.run([*run, str(site)], capture_output=True, text=True)
    assert res.returncode == 2 and "mqtt.password" in res.stdout, res.stdout + res.stderr
    assert "hunter2" not in res.stdout + res.stderr
    as_json = tmp_path / "site.json"
    as_json.write_text(json.dumps({"gateway_id": gw, "ocpp": {"charge_points": [
        {"id": "cp-1", "password": "abc"}]}}))
    res = subprocess.run([*run, str(as_json)], capture_output=True, text=True)
    assert res.returncode == 2 and "ocpp.charge_points[0].password" in res.stdout, res.stdout


def test_sequence_squatting_never_drops_unsent_rows(sqlite_site, mqtt_client) -> None:
    """A forged batch under the gateway's id and epoch takes sequence numbers far ahead of
    what it has sent; the real cloud stores it and acknowledges up to its end. The gateway
    side: no row leaves the buffer before the gateway has published it. (Keeping the forged
    batch out of the cloud is the broker ACL's job: tests/trust/test_broker_acl.py.)"""
    site = sqlite_site
    site.cloud()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = 1000
    uplink = p.topic(site.gateway_id, "readings")
    mqtt_client.subscribe(uplink)

    forged: list[bytes] = []

    def published() -> set[int]:
        """Sequence numbers the gateway itself published (not the forged batch)."""
        seqs: set[int] = set()
        for payload in mqtt_client.on(uplink):
            if payload in forged:
                continue
            b = p.decode_batch(payload)
            seqs |= set(range(b.first, b.last + 1))
        return seqs

    async def scenario() -> None:
        buf = Buffer(site.buffer)
        buf.write([reading_row(p.Reading("m1", t0, "1-0:1.8.0", Decimal(i), "kWh"))
                   for i in range(rows)])
        client = SyncClient(_cfg(site.broker_url, batch_rows=50, drain_rate=200), site.gateway_id,
                            buf)
        await client.start()
        await until(lambda: buf.acked_upto("readings") >= 100, "the first real rows acked")
        item = json.dumps(p.Reading("m1", t0, "1-0:1.8.0", Decimal(999_999), "kWh").to_dict())
        forged.append(p.encode_batch("readings", 1, [item] * 2000, buf.epoch))
        mqtt_client.publish(uplink, forged[0])
        await until(lambda: buf.acked_upto("readings") == rows, "every row acked", 60)
        await client.stop()
        buf.close()

    asyncio.run(scenario())
    assert set(range(1, rows + 1)) <= published()  # each one was sent before it was dropped
