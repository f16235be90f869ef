"""What anyone reaching the OCPP port may cost: bad identities refused at the handshake, a
flood of made-up chargers capped (a listed charger still gets in, nothing is stored), and
malformed frames answered or ignored, never the end of the connection. Real sockets."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
import websockets
from ocpp_helpers import central, events, make_cfg, run
from structlog.testing import capture_logs
from websockets.exceptions import InvalidStatus

from sitegate.ocpp_server.simulator import close, connect

CPS = [{"id": "CP1", "password": "s3cret-passw0rd"}]
PENDING = {"profile": 1, "unknown_chargers": "pending"}

BAD_IDS = {
    "dot-dot": "..",
    "dots inside": "CP..1",
    "encoded slash": "a%2Fb",
    "encoded traversal": "%2E%2E%2Fetc",
    "NUL": "CP%001",
    "newline": "CP%0A1",
    "escape": "CP%1B1",
    "space": "CP%201",
    "non-ASCII": "CP%C3%A91",
    "not UTF-8": "CP%FF",
    "49 characters": "C" * 49,
    "7,000 characters": "C" * 7000,
}


@pytest.mark.parametrize("name", BAD_IDS)
def test_a_bad_charger_id_is_refused_at_the_handshake(tmp: Path, name: str) -> None:
    async def scenario() -> None:
        async with central(tmp, make_cfg(charge_points=CPS, security=PENDING)) as (cs, _, url):
            with pytest.raises(InvalidStatus) as exc:
                await websockets.connect(url + BAD_IDS[name], subprotocols=["ocpp1.6"],
                                         open_timeout=10)
            assert exc.value.response.status_code == 404
            assert cs.health()["connected"] == 0
            # The longest valid identity with every allowed character still gets in.
            good = "a-Z_0.9*=:+|@" + "x" * 35  # 48
            sim, task = await connect(url, good)
            assert await sim.boot() == "Pending"
            await close(sim, task)
    run(scenario())


def test_a_flood_of_made_up_chargers_is_capped_and_leaves_nothing_behind(tmp: Path) -> None:
    """300 connections under made-up ids from loopback (today: all held open, a row and an
    uplinked event each). Now at most max_pending are let in, the rest get 503 and one log
    line; the listed charger connects and is served; no charger row, one event."""
    async def scenario() -> None:
        cfg = make_cfg(charge_points=CPS, security=PENDING)
        async with central(tmp, cfg) as (cs, buf, url):
            async def stranger(i: int) -> object:
                sim, task = await connect(url, f"FAKE{i:04d}")
                await sim.boot()
                return sim, task

            with capture_logs() as logs:
                tries = await asyncio.gather(*(stranger(i) for i in range(300)),
                                             return_exceptions=True)
            admitted = [t for t in tries if isinstance(t, tuple)]
            refused = [t for t in tries if isinstance(t, InvalidStatus)]
            assert len(admitted) == 4  # the default max_pending_per_address: all from loopback
            assert len(refused) == 300 - len(admitted)
            assert {r.response.status_code for r in refused} == {503}
            assert cs.health()["connected"] == len(admitted)
            refusals = [e for e in logs if e["event"] == "ocpp.refused"]
            assert len(refusals) == 1 and refusals[0]["count_since_last"] == 1
            # The listed charger is not crowded out.
            sim, task = await connect(url, "CP1", password="s3cret-passw0rd")
            assert await sim.boot() == "Accepted"
            assert await sim.authorize("04A23BC1") == "Accepted"
            await close(sim, task)
            for s, t in admitted:
                await close(s, t)
            assert len(cs.health()["pending_seen"]) == len(admitted)  # in memory only
        with sqlite3.connect(tmp / "ocpp.db") as db:
            assert db.execute("SELECT cp_id FROM chargers").fetchall() == [("CP1",)]
            assert db.execute("SELECT count(*) FROM raw_messages").fetchone() == (0,)
        assert len([e for e in events(buf) if e["kind"] == "unknown_charger"]) == 1
    run(scenario(), timeout=60)


# A Call's unique id, then frames that are not proper OCPP-J: what each must get back
# (None: nothing, the frame is ignored).
def _malformed(version: str) -> list[tuple[str, str | None]]:
    fmt = "FormationViolation" if version == "1.6" else "FormatViolation"
    unknown_type = "NotSupported" if version == "1.6" else "MessageTypeNotSupported"
    return [
        ('[2,"m1",["Heartbeat"],{}]', fmt),            # action not a string
        ('[2,"m2",{"a":1},{}]', fmt),                  # action an object
        ('[2,"m3","Heartbeat","payload"]', fmt),       # payload not an object
        ('[2,"m4","Heartbeat"]', fmt),                 # payload missing
        ('[2,"m5","NoSuchAction",{}]', "NotImplemented"),
        ('[7,"m6","Heartbeat",{}]', unknown_type),     # wrong message type
        ('["2","m7","Heartbeat",{}]', unknown_type),   # message type as text
        ('[2,42,"Heartbeat",{}]', None),               # no unique id to answer
        ('[3,"nobody-asked",{}]', None),               # a result nobody asked for
        ('{"not":"an array"}', None),
        ("not JSON at all", None),
        ("[" * 100_000 + "]" * 100_000, None),          # deep: json.loads would recurse
        ("", None),
    ]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_malformed_frames_get_a_call_error_or_are_ignored_never_a_drop(
        tmp: Path, version: str) -> None:
    async def scenario() -> None:
        async with central(tmp, make_cfg(charge_points=CPS, security={"profile": 1})) as (
                cs, _, url):
            proto = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
            ws = await websockets.connect(
                url + "CP1", subprotocols=[proto], open_timeout=10,
                additional_headers={"Authorization": "Basic Q1AxOnMzY3JldC1wYXNzdzByZA=="})
            for n, (frame, expected) in enumerate(_malformed(version)):
                await ws.send(frame)
                if expected is not None:
                    answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    assert answer[0] == 4 and answer[2] == expected, (frame[:40], answer)
                # Still served, and nothing else was sent for an ignored frame: the next
                # message we get is the answer to this heartbeat.
                await ws.send(json.dumps([2, f"hb{n}", "Heartbeat", {}]))
                answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert answer[:2] == [3, f"hb{n}"], (frame[:40], answer)
            assert cs.health()["connected"] == 1
            await ws.close()
    run(scenario())


def test_the_example_site_authenticates_its_chargers() -> None:
    from sitegate.common.sitecheck import config_warnings
    from sitegate.common.sitefile import load_config

    example = Path(__file__).resolve().parents[2] / "config/examples/apartment-building.toml"
    cfg = load_config(str(example))
    assert cfg.ocpp is not None and cfg.ocpp.security.profile in (1, 2)
    assert not [w for loc, w in config_warnings(cfg) if loc[:2] == ("ocpp", "security")]
