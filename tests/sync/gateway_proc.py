"""A gateway for fault tests, as its own process: a real Buffer file, readings appended at
a rate until the buffer holds ``--rows`` of them (so a restarted process continues where
the killed one stopped), and SyncClient sending them. Prints "ready" once started.

    python tests/sync/gateway_proc.py --buffer B --broker URL --gateway gw1 --rows 3000
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sitegate.gateway.buffer import Buffer, reading_row
from sitegate.sync.client import SyncClient
from sitegate.sync.config import MqttConfig
from sitegate.sync.protocol import Reading

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def reading(n: int) -> Reading:
    """The n-th reading (1-based): every field derived from n, so tests can check content."""
    return Reading(meter_id=f"m{n % 7}", ts=BASE + timedelta(seconds=n), quantity="1-0:1.8.0",
                   value=Decimal(n) / 1000, unit="kWh", read_at=BASE + timedelta(seconds=n),
                   flags=("clock_unsynced",) if n % 100 == 0 else ())


async def main(args: argparse.Namespace) -> None:
    buf = Buffer(args.buffer)
    cfg = MqttConfig(broker=args.broker, keepalive=5, ack_timeout=args.ack_timeout,
                     reconnect_min=0.2, reconnect_max=1.0, batch_rows=args.batch_rows,
                     drain_rate=args.drain_rate, poll_interval=0.2, status_interval=2,
                     uplink_spread=args.uplink_spread, ack_timeout_max=args.ack_timeout_max)
    client = SyncClient(cfg, args.gateway, buf)
    await client.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(f"ready epoch={buf.epoch}", flush=True)
    chunk = max(1, args.rate // 20)
    while not stop.is_set():
        have = buf.last_seq("readings")
        if have < args.rows:
            n = min(chunk, args.rows - have)
            await asyncio.to_thread(buf.write, [
                reading_row(reading(args.start + i)) for i in range(have + 1, have + n + 1)])
            client.wake()
        try:
            await asyncio.wait_for(stop.wait(), 0.05)
        except TimeoutError:
            pass
    await client.stop()
    buf.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--buffer", required=True)
    ap.add_argument("--broker", required=True)
    ap.add_argument("--gateway", default="gw1")
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--start", type=int, default=0,
                    help="row n of this buffer is reading(start + n): tells buffers apart")
    ap.add_argument("--rate", type=int, default=1000, help="readings appended per second")
    ap.add_argument("--batch-rows", type=int, default=100)
    ap.add_argument("--drain-rate", type=int, default=None)
    ap.add_argument("--ack-timeout", type=float, default=3.0)
    ap.add_argument("--ack-timeout-max", type=float, default=10.0,
                    help="a cloud killed in a test is back within seconds: resend soon")
    ap.add_argument("--uplink-spread", type=float, default=0.0,
                    help="seconds (0: live rows at once; fault tests must not wait on it)")
    asyncio.run(main(ap.parse_args()))
    sys.exit(0)
