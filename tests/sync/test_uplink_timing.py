"""The gateway's uplink timing at fleet scale: each gateway's live quarter-hour cycle at its
own fixed offset after the quarter-hour, and an ack timeout that grows with what is in
flight and backs off after each expiry (no fixed resend loop)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sitegate.gateway.buffer import Buffer, reading_row
from sitegate.sync.client import SyncClient, live_hold, uplink_offset
from sitegate.sync.config import MqttConfig
from sitegate.sync.protocol import Reading

pytestmark = pytest.mark.timeout(60)


def test_offsets_are_fixed_per_gateway_and_spread_over_the_window() -> None:
    ids = [f"gw-{i:05d}" for i in range(1000)]
    offsets = [uplink_offset(i, 180) for i in ids]
    assert offsets == [uplink_offset(i, 180) for i in ids]  # the same at every start
    assert all(0 <= o < 180 for o in offsets)
    # Spread: every 18-second tenth of the window holds some of the thousand (a hash
    # piling them into a few would bring the burst back).
    tenths = [sum(1 for o in offsets if k * 18 <= o < (k + 1) * 18) for k in range(10)]
    assert min(tenths) > 50, tenths
    assert uplink_offset("gw-00001", 0) == 0


def test_live_hold_until_the_offset_after_each_quarter_hour() -> None:
    quarter = datetime(2026, 3, 1, 12, 15, tzinfo=UTC).timestamp()
    assert live_hold(100.0, quarter) == 100.0  # the cycle was just written: wait it all
    assert live_hold(100.0, quarter + 30) == 70.0
    assert live_hold(100.0, quarter + 100) == 0.0  # our turn
    assert live_hold(100.0, quarter + 899) == 0.0  # rows between quarter-hours go at once
    assert live_hold(0.0, quarter) == 0.0


def test_the_ack_timeout_grows_with_flights_ahead_and_backs_off_on_expiry(
        mosquitto: Any, tmp_path: Path) -> None:
    """A broker and no cloud: nothing is ever acknowledged. The first batches wait the
    configured timeout, those behind them longer; every expiry round doubles the wait."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    cfg = MqttConfig(broker=mosquitto.url, ack_timeout=0.3, ack_timeout_max=1000,
                     batch_rows=10, max_inflight=4, drain_rate=None, poll_interval=0.05,
                     reconnect_min=0.2, reconnect_max=1.0)

    async def scenario() -> tuple[list[float], list[tuple[float, int]], int]:
        buf = Buffer(tmp_path / "b.db")
        buf.write([reading_row(Reading("m1", t0, "1-0:1.8.0", Decimal(i), "kWh"))
                   for i in range(40)])
        client = SyncClient(cfg, f"gw-{uuid.uuid4().hex[:8]}", buf)
        await client.start()
        st = client._streams["readings"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        first: list[float] = []
        while loop.time() < deadline and len(st.flights) < 4:
            await asyncio.sleep(0.02)
        first = [f.timeout for f in sorted(st.flights.values(), key=lambda f: f.first)]
        while loop.time() < deadline and client.resends < 12:  # three rounds of four
            await asyncio.sleep(0.02)
        later = [(f.timeout, f.tries)
                 for f in sorted(st.flights.values(), key=lambda f: f.first)]
        resends = client.resends
        await client.stop()
        buf.close()
        return first, later, resends

    first, later, resends = asyncio.run(scenario())
    assert resends >= 12
    # 0.3 s times (1 + flights ahead / 4): 0.3, 0.375, 0.45, 0.525
    assert first == pytest.approx([0.3, 0.375, 0.45, 0.525])
    # Each resend of a batch doubles its wait: 2**tries times its first one.
    assert sum(tries for _, tries in later) == resends
    assert all(tries >= 1 for _, tries in later)
    assert [timeout for timeout, _ in later] == pytest.approx(
        [w * 2**tries for w, (_, tries) in zip(first, later, strict=True)])
