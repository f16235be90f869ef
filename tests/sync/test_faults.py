"""Fault tests: Mosquitto, the cloud ingest and the gateway as separate processes, thousands
of readings in flight. After each, the cloud holds every reading exactly once and the
gateway buffer shows all of them acknowledged."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from sitegate.sync import protocol as p

pytestmark = pytest.mark.timeout(300)  # bounds a hang: up to 90 s measured at load 10

ROWS = 3000


def test_broker_restarted_mid_stream(sqlite_site, mosquitto, wait) -> None:
    site = sqlite_site
    site.cloud()
    site.gateway(ROWS)
    wait(lambda: site.cloud_count() >= ROWS // 3, "a third of the readings in the cloud")
    mosquitto.stop()
    mosquitto.start()
    site.wait_all_acked(ROWS)
    site.assert_exactly_once(ROWS)


def test_broker_down_for_a_while(sqlite_site, mosquitto, wait) -> None:
    site = sqlite_site
    site.cloud()
    site.gateway(ROWS)
    wait(lambda: site.cloud_count() >= 500, "first readings in the cloud")
    mosquitto.stop()
    try:
        # Down while the gateway keeps buffering: wait until it buffered 1000 more rows.
        last_seq_at_stop = site.buffer_marks()[0]
        wait(lambda: site.buffer_marks()[0] >= min(ROWS, last_seq_at_stop + 1000),
             "the gateway buffering while the broker is down")
        stuck = site.buffer_marks()
        assert stuck[1] < stuck[0]  # nothing can be acknowledged with the broker down
    finally:
        mosquitto.start()
    site.wait_all_acked(ROWS)
    site.assert_exactly_once(ROWS)


def test_gateway_killed_mid_batch_and_restarted(site, wait) -> None:
    site.cloud()
    gw = site.gateway(ROWS, 1000, "--ack-timeout", "30")
    wait(lambda: site.cloud_count() >= ROWS // 3, "a third of the readings in the cloud")
    gw.kill9()
    acked_before = site.buffer_marks()[1]
    assert acked_before < ROWS
    site.gateway(ROWS)  # the same buffer file: continues from its acknowledged mark
    site.wait_all_acked(ROWS)
    site.assert_exactly_once(ROWS)


def test_cloud_killed_between_commit_and_ack(site, wait) -> None:
    dying = site.cloud(env={"SITEGATE_INGEST_KILL_AFTER_COMMITS": "5"})
    site.gateway(ROWS)
    assert dying.popen.wait(60) == -9  # killed itself right after its 5th commit
    committed = site.cloud_count()
    assert committed > 0
    # The rows of that last batch are committed, but its ack never left.
    assert site.buffer_marks()[1] < committed
    site.cloud()
    site.wait_all_acked(ROWS)
    site.assert_exactly_once(ROWS)


def test_same_batch_delivered_twice(site, mqtt_client, wait) -> None:
    readings_topic = p.topic(site.gateway_id, "readings")
    ack_topic = p.topic(site.gateway_id, "ack")
    mqtt_client.subscribe(readings_topic)
    mqtt_client.subscribe(ack_topic)
    site.cloud()
    site.gateway(ROWS)
    site.wait_all_acked(ROWS)
    batch = mqtt_client.on(readings_topic)[3]
    first = p.decode_batch(batch).first

    def acks_for_first() -> int:
        return sum(1 for a in mqtt_client.on(ack_topic) if p.decode_ack(a).first == first)

    before = acks_for_first()
    mqtt_client.publish(readings_topic, batch)
    mqtt_client.publish(readings_topic, batch)
    wait(lambda: acks_for_first() >= before + 2, "both copies acknowledged")
    last_ack = p.decode_ack(mqtt_client.on(ack_topic)[-1])
    assert last_ack.upto == ROWS
    site.assert_exactly_once(ROWS)


def test_malformed_and_oversized_messages_in_the_stream(sqlite_site, mqtt_client, wait) -> None:
    site = sqlite_site
    readings_topic = p.topic(site.gateway_id, "readings")
    cloud = site.cloud()
    site.gateway(ROWS)
    wait(lambda: site.cloud_count() >= 500, "first readings in the cloud")
    mqtt_client.publish(readings_topic, b'{"v":1,"stream":"readings","first":')  # cut off
    mqtt_client.publish(readings_topic, b"\xff\x00 not json")
    mqtt_client.publish(readings_topic, b"x" * (1024 * 1024 + 1))  # over the 1 MiB limit
    # A batch with one bad item, from another gateway: good items are kept, the bad one
    # goes to the dead letters, and the whole range is acknowledged (no resend forever).
    other = f"gw-{uuid.uuid4().hex[:8]}"
    mqtt_client.subscribe(p.topic(other, "ack"))
    good = {"meter_id": "m", "ts": "2026-01-01T00:00:00+00:00", "quantity": "1-0:1.8.0",
            "value": "1.5", "unit": "kWh", "quality": "good"}
    items = [json.dumps(good), json.dumps({**good, "value": "1,5"}), json.dumps(good)]
    mqtt_client.publish(p.topic(other, "readings"), p.encode_batch("readings", 1, items))
    site.wait_all_acked(ROWS)
    site.assert_exactly_once(ROWS)
    reasons = wait(lambda: [r[0] for r in site.sql("SELECT reason FROM dead_letters")]
                   if len(site.sql("SELECT id FROM dead_letters")) == 4 else None,
                   "four dead letters")
    assert sum("not JSON" in r for r in reasons) == 2
    assert sum("oversized" in r for r in reasons) == 1
    assert sum(r.startswith("seq 2:") and "decimal" in r for r in reasons) == 1
    assert site.sql("SELECT seq, value FROM readings WHERE gateway_id=:o ORDER BY seq",
                    o=other) == [(1, "1.5"), (3, "1.5")]
    wait(lambda: mqtt_client.on(p.topic(other, "ack")), "ack for the other gateway")
    assert p.decode_ack(mqtt_client.on(p.topic(other, "ack"))[-1]).upto == 3
    assert cloud.popen.poll() is None  # ingest never stopped


def test_two_ingest_processes_on_a_shared_subscription(site) -> None:
    a = site.cloud()
    b = site.cloud()
    site.gateway(ROWS, 3000)
    site.wait_all_acked(ROWS)
    site.assert_exactly_once(ROWS)
    a.stop()
    b.stop()
    # Both took a share of the batches (Mosquitto hands shared messages round robin).
    for proc in (a, b):
        stopped = [line for line in proc.text().splitlines() if "ingest.stopped" in line]
        assert stopped and int(stopped[-1].split("processed=")[1].split()[0]) > 0


def test_cli_reports_registry_dead_letters_and_unsynced_readings(sqlite_site) -> None:
    site = sqlite_site
    site.cloud()
    site.gateway(1000, 2000)
    site.wait_all_acked(1000)

    def cli(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "sitegate.cloud.cli", *args, "--db",
                               site.db], check=True, capture_output=True, text=True).stdout

    gws = {g["gateway_id"]: g for g in json.loads(cli("gateways", "--json"))}
    gw = gws[site.gateway_id]
    assert gw["online"] is True
    assert gw["acked_upto"]["readings"] == 1000
    assert gw["unsynced_readings"] == 10  # the test gateway flags every 100th reading
    unsynced = json.loads(cli("readings", "--unsynced", "--json", "--limit", "5000"))
    assert [r["seq"] for r in unsynced] == list(range(100, 1001, 100))
    assert site.gateway_id in cli("gateways")
    assert "no dead letters" in cli("dead-letters")
