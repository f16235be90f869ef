"""Buffer epochs end to end: a gateway whose buffer is found corrupt starts a new buffer
(sequences from 1 again, a new epoch); the cloud keeps the rows of both buffers, each once,
and a gateway never takes an ack meant for another epoch."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from sitegate.gateway.buffer import Buffer, reading_row
from sitegate.sync import protocol as p
from sitegate.sync.client import SyncClient
from sitegate.sync.config import MqttConfig

pytestmark = pytest.mark.timeout(120)


def _epoch(buffer: Path) -> str:
    with sqlite3.connect(f"file:{buffer}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]


def test_corrupt_buffer_replaced_both_epochs_in_the_cloud_exactly_once(site, wait) -> None:
    site.cloud()
    gw = site.gateway(1000, 2000)
    site.wait_all_acked(1000)
    gw.stop()
    old_epoch = _epoch(site.buffer)
    # The disk garbles the file (and its WAL is gone): the next start finds it corrupt.
    size = site.buffer.stat().st_size
    site.buffer.write_bytes((b"\x00garbage" * (size // 8 + 1))[:size])
    for suffix in ("-wal", "-shm"):
        Path(str(site.buffer) + suffix).unlink(missing_ok=True)
    site.gateway(600, 2000, "--start", "5000")
    quarantined = [q for q in site.tmp.glob(f"{site.buffer.name}.corrupt-*")
                   if not q.name.endswith(("-wal", "-shm"))]
    assert len(quarantined) == 1
    new_epoch = _epoch(site.buffer)
    assert new_epoch != old_epoch
    site.wait_all_acked(600)
    # The old buffer's rows (checked against the quarantined file) and the new buffer's,
    # which reuse seqs 1..600, are all there, each exactly once.
    site.assert_exactly_once(600)
    # The quarantined file is not a database any more: check the old epoch against what
    # the gateway wrote (reading n has value n/1000, see gateway_proc.reading).
    old = site.sql("SELECT seq, value FROM readings WHERE gateway_id=:g AND epoch=:e "
                   "ORDER BY seq", e=old_epoch)
    assert old == [(n, str(Decimal(n) / 1000)) for n in range(1, 1001)]
    new = site.sql("SELECT seq, value FROM readings WHERE gateway_id=:g AND epoch=:e "
                   "ORDER BY seq", e=new_epoch)
    assert new == [(n, str(Decimal(5000 + n) / 1000)) for n in range(1, 601)]
    assert site.cloud_count() == 1600
    # The new buffer told the cloud what happened, under its own epoch.
    corrupt = wait(lambda: site.sql("SELECT epoch, payload FROM events WHERE gateway_id=:g "
                                    "AND kind='buffer_corrupt'"), "buffer_corrupt event")
    assert corrupt[0][0] == new_epoch
    assert json.loads(corrupt[0][1])["epoch"] == new_epoch


def test_deleted_buffer_recreated_rows_of_both_epochs_kept(sqlite_site) -> None:
    site = sqlite_site
    site.cloud()
    gw = site.gateway(300, 2000)
    site.wait_all_acked(300)
    gw.stop()
    first = _epoch(site.buffer)
    for suffix in ("", "-wal", "-shm"):
        Path(str(site.buffer) + suffix).unlink(missing_ok=True)
    site.gateway(200, 2000, "--start", "7000")
    site.wait_all_acked(200)
    site.assert_exactly_once(200)
    counts = dict(site.sql("SELECT epoch, COUNT(*) FROM readings WHERE gateway_id=:g "
                           "GROUP BY epoch"))
    assert counts == {first: 300, _epoch(site.buffer): 200}


def test_an_ack_for_another_epoch_is_ignored(mosquitto, mqtt_client, tmp_path: Path) -> None:
    """No cloud here: the test plays it, acking the previous buffer's epoch first."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    async def scenario() -> None:
        buf = Buffer(tmp_path / "b.db")
        buf.write([reading_row(p.Reading("m1", t0, "1-0:1.8.0", Decimal(i), "kWh"))
                   for i in range(10)])
        gw = "gw-epoch"
        cfg = MqttConfig(broker=mosquitto.url, reconnect_min=0.2, reconnect_max=1.0,
                         poll_interval=0.2, keepalive=5)
        client = SyncClient(cfg, gw, buf)
        await client.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not client.health()["connected"] and loop.time() < deadline:
            await asyncio.sleep(0.05)
        ack_topic = p.topic(gw, "ack")
        for epoch, upto in (("20250101000000-000000000000", 10), (p.LEGACY_EPOCH, 9),
                            (buf.epoch, 4)):
            ack = p.Ack(stream="readings", epoch=epoch, upto=upto)
            await asyncio.to_thread(mqtt_client.publish, ack_topic, p.encode_ack(ack))
        while client.health()["last_ack"]["readings"]["upto"] == 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        # Acks are handled in order: the foreign ones came first and moved nothing.
        assert buf.acked_upto("readings") == 4
        assert client.health()["epoch"] == buf.epoch
        await client.stop()
        buf.close()

    asyncio.run(scenario())


def test_session_reports_end_to_end_leave_one_current_row(sqlite_site) -> None:
    """Real session reports from the gateway buffer through Mosquitto and the ingest
    process: every report is kept, session_latest holds the current one per session."""
    site = sqlite_site
    site.cloud()
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    stop = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def report(tx: int, wh: str, done: bool) -> dict:
        return p.SessionRecord(
            session_id=f"cp7-{tx}", charge_point="cp7", connector=1, badge="04A1B2C3",
            start=start, stop=stop if done else None, meter_start_wh=Decimal("100000"),
            meter_stop_wh=Decimal(wh), energy_wh=Decimal(wh) - Decimal("100000"),
            duration_s=3600 if done else None, status="completed" if done else "running",
        ).to_payload()

    async def scenario() -> None:
        buf = Buffer(site.buffer)
        # Two sessions reported while running, one completes; one more running report of
        # session 1 is buffered AFTER its completion (a late periodic report).
        buf.append("sessions", [report(1, "100500", False), report(2, "100200", False)])
        buf.append("sessions", [report(1, "107250.5", True), report(2, "100900", False)])
        buf.append("sessions", [report(1, "107300", False)])
        cfg = MqttConfig(broker=site.broker_url, reconnect_min=0.2, reconnect_max=1.0,
                         poll_interval=0.2, keepalive=5, batch_rows=2)
        client = SyncClient(cfg, site.gateway_id, buf)
        await client.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while buf.acked_upto("sessions") < 5 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await client.stop()
        assert buf.acked_upto("sessions") == 5
        buf.close()

    asyncio.run(scenario())
    assert site.sql("SELECT COUNT(*) FROM sessions WHERE gateway_id=:g")[0][0] == 5
    latest = {sid: (done, seq, energy, json.loads(payload)["status"]) for sid, done, seq, energy,
              payload in site.sql("SELECT session_id, completed, seq, energy_wh, payload "
                                  "FROM session_latest WHERE gateway_id=:g")}
    assert latest == {"cp7-1": (1, 3, "7250.5", "completed"),
                      "cp7-2": (0, 4, "900", "running")}
