"""The cloud's desired config switched in while the bus workers run: the daemon's own
apply path against a simulated Modbus converter on loopback and a real buffer file."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sitegate.gateway.buffer import Buffer
from sitegate.gateway.config import parse_config
from sitegate.gateway.daemon import Daemon

SILENT = 10  # the simulator leaves this unit unanswered


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def simulator() -> Iterator[int]:
    port = _port()
    args = [sys.executable, "-m", "sitegate.drivers.modbus.simulator", "--tcp", str(port),
            "--framing", "rtu-over-tcp", "--silent", str(SILENT)]
    for u in (1, 2, 3, SILENT):
        args += ["--meter", f"{u}:eastron_sdm630"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield port
    proc.kill()
    proc.wait()


def _site(tmp: Path, port: int, units: list[int], interval: int = 2) -> str:
    meters = "".join(
        f'[[meters]]\nid = "m{u}"\nbus = "conv"\nunit = {u}\nprofile = "eastron_sdm630"\n'
        f"interval = {interval}\n" for u in units)
    return (f'gateway_id = "gw-live"\n[storage]\npath = "{tmp}/buffer.db"\n'
            f'[health]\nsocket = "{tmp}/sg.sock"\n'
            f'[[buses]]\nname = "conv"\ntimeout = 1.0\nretries = 0\n'
            f'tcp = {{ host = "127.0.0.1", port = {port}, framing = "rtu-over-tcp" }}\n'
            + meters)


def _slots(buffer: Buffer) -> set[tuple[str, str]]:
    """(meter, slot) of every reading in the buffer."""
    return {(json.loads(e.payload)["meter_id"], json.loads(e.payload)["ts"])
            for e in buffer.pending("readings", limit=1_000_000)}


def test_config_switch_mid_cycle_loses_no_slot_and_reads_none_twice(
        tmp_path: Path, simulator: int) -> None:
    """The switch lands while the bus is busy with a silent meter (read first): the meters
    still due in that cycle are read for that slot by the new worker, exactly once."""

    async def scenario() -> tuple[datetime, set[tuple[str, str]], str | None]:
        # The silent meter first: the cycle spends its 1 s timeout on it before m1, m2.
        d = Daemon(parse_config(_site(tmp_path, simulator, [SILENT, 1, 2])))
        d.buffer = Buffer(tmp_path / "buffer.db")
        d._build_workers()
        for name in d.workers:
            d._start_worker(name)
        old = d.workers["conv"]
        silent, m1 = old.meters[0], old.meters[1]
        while silent.reads == 0:  # the cycle has begun with the silent meter
            await asyncio.sleep(0.005)
        slot = datetime.fromtimestamp(m1.due, UTC)  # m1 and m2 are still due for it
        error = await d._apply_remote_config(
            {"version": 1, "config": _site(tmp_path, simulator, [SILENT, 1, 2, 3])})
        new = d.workers["conv"]
        assert new is not old
        # until the new worker has read the slot after
        while not any(m == "m1" and datetime.fromisoformat(ts) > slot
                      for m, ts in _slots(d.buffer)):
            await asyncio.sleep(0.05)
        new.stop()
        await asyncio.gather(*d._tasks.values())
        got = _slots(d.buffer)
        rows = [json.loads(e.payload) for e in d.buffer.pending("readings", limit=1_000_000)]
        d.buffer.close()
        per_slot: dict[tuple[str, str, str], int] = {}
        for r in rows:
            key = (r["meter_id"], r["ts"], r["quantity"])
            per_slot[key] = per_slot.get(key, 0) + 1
        assert set(per_slot.values()) == {1}, "a slot read twice"
        return slot, got, error

    slot, got, error = asyncio.run(scenario())
    assert error is None
    ts = slot.isoformat()
    assert ("m1", ts) in got and ("m2", ts) in got, f"slot {ts} lost in the switch: {got}"
