"""The cloud's desired config switched in while the bus workers run: the daemon's own
apply path against a simulated Modbus converter on loopback and a real buffer file."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sitegate.common.sitefile import parse_config
from sitegate.gateway.buffer import Buffer
from sitegate.gateway.daemon import Daemon

SILENT = 10  # the simulator fixture (conftest.py) leaves this unit unanswered


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
        d._open_buffer()  # tmp_path/buffer.db and its one writer
        assert d.buffer is not None and d.writer is not None
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
        await d.writer.close()  # the cycles last handed over are written
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


# -- at start: the saved remote config, or the site file, and saying which ------------------


def _started(tmp: Path, site: str) -> dict:  # type: ignore[type-arg]
    """The daemon's choice at start (as ``sitegate status`` reports it) for this site file."""
    from sitegate.gateway.cli_core import _config_lines

    d = Daemon(parse_config(site))
    d._startup_config()
    d.buffer = Buffer(tmp / "buffer.db")
    try:
        h = d.health()
    finally:
        d.buffer.close()
    return {"config": h["config"], "text": "\n".join(_config_lines(h)),
            "meters": [m.id for m in d.config.meters]}


def _save(tmp: Path, version: int, config: str | dict) -> None:  # type: ignore[type-arg]
    from sitegate.gateway import remote_config

    remote_config.save(remote_config.applied_path(f"{tmp}/buffer.db"), version, config)


def test_site_file_edited_after_a_remote_config_status_says_the_edit_is_not_in_effect(
        tmp_path: Path) -> None:
    _save(tmp_path, 4, _site(tmp_path, 1502, [1, 2]))
    # The installer adds m3 to the site file and restarts: the cloud's v4 still runs.
    got = _started(tmp_path, _site(tmp_path, 1502, [1, 2, 3]))
    assert got["meters"] == ["m1", "m2"]
    assert got["config"]["source"] == "remote" and got["config"]["version"] == 4
    assert got["config"]["site_file_not_in_effect"] == ["meters"]
    assert "meters" in got["text"] and "NOT in effect" in got["text"]
    assert "buffer.db.applied-config.json" in got["text"]  # how to run the site file's
    # The same site file as the cloud's: nothing to point out.
    same = _started(tmp_path, _site(tmp_path, 1502, [1, 2]))
    assert same["config"]["site_file_not_in_effect"] == []
    assert "NOT in effect" not in same["text"]


def test_unusable_saved_remote_config_runs_the_site_file_and_status_says_why(
        tmp_path: Path) -> None:
    path = tmp_path / "buffer.db.applied-config.json"
    site = _site(tmp_path, 1502, [1, 2, 3])
    path.write_text('{"version": 4, "config": "gateway_id = ')  # torn by a bad disk
    got = _started(tmp_path, site)
    assert got["meters"] == ["m1", "m2", "m3"] and got["config"]["source"] == "local"
    assert "unreadable" in got["config"]["problem"] and str(path) in got["config"]["problem"]
    assert "not used" in got["text"] and "unreadable" in got["text"]

    _save(tmp_path, 4, _site(tmp_path, 1502, [1]).replace("gw-live", "gw-other"))
    got = _started(tmp_path, site)
    assert got["meters"] == ["m1", "m2", "m3"] and got["config"]["source"] == "local"
    assert "gw-other" in got["config"]["problem"] and "gw-other" in got["text"]

    path.unlink()
    got = _started(tmp_path, site)
    assert got["config"]["source"] == "local" and got["config"].get("problem") is None
    assert got["text"] == "config: the site file"


def test_desired_config_as_json_names_the_key_of_a_cross_check_like_the_toml_form() -> None:
    import tomllib

    from sitegate.common.sitefile import ConfigError
    from sitegate.gateway import remote_config

    text = _site(Path("/tmp/x"), 1502, [1, 2]).replace('id = "m2"', 'id = "m1"')
    said = []
    for form in (text, tomllib.loads(text)):
        with pytest.raises(ConfigError) as exc:
            remote_config.parse_desired(form, "config v7")
        said.append([(p.path, p.message) for p in exc.value.problems])
    assert said[0] == said[1] == [("meters[1].id", "meter id 'm1' appears twice")]
