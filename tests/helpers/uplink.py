"""The uplink of the end-to-end tests: what a gateway's buffer holds goes through the
gateway's own SyncClient and a real Mosquitto to the cloud's IngestService (in a thread,
on the test's database) until the cloud has acknowledged every row, as in production.

Shared by the end-to-end tests of billing, expense, OCMF and relay points
(``from tests.helpers.uplink import sync_to_cloud``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sitegate.cloud.ingest.service import IngestService
from sitegate.gateway.buffer import Buffer
from sitegate.sync.client import SyncClient
from sitegate.sync.config import MqttConfig

HUNG = 120  # seconds: bounds a hung test only; nothing here asserts a speed


@contextmanager
def ingest_running(db: str, broker_url: str) -> Iterator[IngestService]:
    """The cloud's ingest on ``db``, connected to the broker, until the block ends."""
    ingest = IngestService(db, broker_url)
    stop = threading.Event()
    worker = threading.Thread(target=ingest.run, args=(stop,), daemon=True)
    worker.start()
    try:
        assert ingest.connected.wait(30), "ingest did not connect"
        yield ingest
    finally:
        stop.set()
        worker.join(30)


async def send_until_acked(client: SyncClient, buffer: Buffer, streams: Iterable[str]) -> None:
    """Run the gateway's sync client until every row of ``streams`` is acknowledged (an
    ack comes only after the cloud committed the rows)."""
    streams = tuple(streams)
    await client.start()
    try:
        deadline = time.monotonic() + HUNG
        while any(buffer.acked_upto(s) < buffer.last_seq(s) for s in streams):
            assert time.monotonic() < deadline, client.health()
            await asyncio.sleep(0.1)
    finally:
        await client.stop()


def sync_to_cloud(buffer: Buffer, gateway: str, db: str, broker_url: str,
                  streams: Iterable[str]) -> None:
    """Everything of ``streams`` in the gateway's buffer, stored in the cloud's ``db``
    (migrated already); then the buffer is closed, whatever happened."""
    try:
        with ingest_running(db, broker_url):
            client = SyncClient(MqttConfig(broker=broker_url, drain_rate=None), gateway,
                                buffer)
            asyncio.run(send_until_acked(client, buffer, streams))
    finally:
        buffer.close()
