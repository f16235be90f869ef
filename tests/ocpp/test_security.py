"""Security profiles 1 (basic auth) and 2 (basic auth over TLS), on real sockets."""

from __future__ import annotations

import sqlite3
import ssl
import subprocess
from pathlib import Path

import pytest
from ocpp_helpers import central, events, make_cfg, run, sessions
from websockets.exceptions import InvalidMessage, InvalidStatus

from sitegate.ocpp_server.simulator import close, connect

CPS = [{"id": "CP1", "password": "s3cret-passw0rd"}, {"id": "CP2"}]


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj",
         "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30)
    return str(crt), str(key)


def test_basic_auth(tmp: Path) -> None:
    async def scenario() -> None:
        cfg = make_cfg(charge_points=CPS, security={"profile": 1})
        async with central(tmp, cfg) as (cs, buf, url):
            sim, task = await connect(url, "CP1", password="s3cret-passw0rd")
            assert await sim.boot() == "Accepted"
            await close(sim, task)
            for cp, pw in [("CP1", "wrong"), ("CP1", None), ("CP2", "anything")]:
                with pytest.raises(InvalidStatus) as exc:
                    await connect(url, cp, password=pw)
                assert exc.value.response.status_code == 401
            assert cs.health()["connected"] == 0
    run(scenario())


def test_tls_with_basic_auth(tmp: Path, cert: tuple[str, str]) -> None:
    async def scenario() -> None:
        crt, key = cert
        cfg = make_cfg(charge_points=CPS,
                       security={"profile": 2, "certfile": crt, "keyfile": key})
        async with central(tmp, cfg) as (cs, buf, url):
            wss = url.replace("ws://", "wss://")
            client = ssl.create_default_context(cafile=crt)
            sim, task = await connect(wss, "CP1", password="s3cret-passw0rd",
                                      ssl_context=client)
            assert await sim.boot() == "Accepted"
            tx, _ = await sim.start_tx(1, "04A23BC1", 0)
            await sim.stop_tx(tx, 42)
            await close(sim, task)
            sim, task = await connect(wss, "CP1", password="s3cret-passw0rd", version="2.0.1",
                                      ssl_context=client)
            assert await sim.boot() == "Accepted"
            await sim.event("Started", "tls-tx", 1, wh=100, badge="04A23BC1")
            await sim.event("Ended", "tls-tx", 1, wh=175)
            await close(sim, task)
            assert [(s["session_id"], s["energy_wh"]) for s in sessions(buf)] == [
                (f"CP1-{tx}", "42"), ("CP1-tls-tx", "75")]
            with pytest.raises(InvalidStatus):
                await connect(wss, "CP1", password="nope", ssl_context=client)
            with pytest.raises(ssl.SSLError):  # a client that does not trust us
                await connect(wss, "CP1", password="s3cret-passw0rd",
                              ssl_context=ssl.create_default_context())
            with pytest.raises((OSError, InvalidMessage)):  # plain WebSocket on the TLS port
                await connect(url, "CP1", password="s3cret-passw0rd")
    run(scenario())


def test_profile_2_needs_certificate() -> None:
    with pytest.raises(ValueError, match="certfile"):
        make_cfg(security={"profile": 2})


def test_unknown_charger_under_basic_auth_is_pending_and_may_do_nothing(tmp: Path) -> None:
    """An unknown charger cannot prove who it is: under basic auth it is let in only as
    Pending (so the installer sees it), whatever credentials it brings, and everything but
    its boot is refused; listed chargers still need their own password."""
    async def scenario() -> None:
        cfg = make_cfg(charge_points=CPS, security={"profile": 1, "unknown_chargers": "pending"})
        async with central(tmp, cfg) as (cs, buf, url):
            for cp, pw in [("CP1", "wrong"), ("CP1", None), ("CP1", "")]:
                with pytest.raises(InvalidStatus) as exc:
                    await connect(url, cp, password=pw)
                assert exc.value.response.status_code == 401
            start16 = {"connectorId": 1, "idTag": "04A23BC1", "meterStart": 0,
                       "timestamp": "2025-03-01T18:00:00Z"}
            start201 = {"eventType": "Started", "timestamp": "2025-03-01T18:00:00Z",
                        "triggerReason": "Authorized", "seqNo": 0,
                        "transactionInfo": {"transactionId": "T-1"},
                        "idToken": {"idToken": "04A23BC1", "type": "ISO14443"}}
            tries = [("1.6", None), ("1.6", "guess"), ("1.6", "s3cret-passw0rd"),
                     ("2.0.1", None), ("2.0.1", "s3cret-passw0rd")]
            for version, pw in tries:
                sim, task = await connect(url, "STRANGER", password=pw, version=version)
                assert await sim.boot() == "Pending"
                assert cs.health()["accepted"] == 0
                if version == "1.6":
                    calls = [("Authorize", {"idTag": "04A23BC1"}),
                             ("StartTransaction", start16), ("Heartbeat", {})]
                else:
                    calls = [("Authorize", {"idToken": {"idToken": "04A23BC1",
                                                        "type": "ISO14443"}}),
                             ("TransactionEvent", start201), ("Heartbeat", {})]
                for action, payload in calls:
                    with pytest.raises(RuntimeError, match="CallError SecurityError"):
                        await sim.raw_call(action, payload)
                await close(sim, task)
            # the listed charger with its password is served as before
            sim, task = await connect(url, "CP1", password="s3cret-passw0rd")
            assert await sim.boot() == "Accepted"
            assert await sim.authorize("04A23BC1") == "Accepted"
            await close(sim, task)
        with sqlite3.connect(tmp / "ocpp.db") as db:  # nothing of the stranger's was stored
            assert db.execute("SELECT count(*) FROM transactions").fetchone() == (0,)
            assert db.execute("SELECT cp_id FROM chargers").fetchall() == [("CP1",)]
        assert sessions(buf) == []
        # One uplinked event per interval, not one per boot.
        unknown = [e for e in events(buf) if e["kind"] == "unknown_charger"]
        assert [(e["charge_point"], e["pending"]) for e in unknown] == [("STRANGER", ["STRANGER"])]
    run(scenario())


def test_unknown_charger_rejected_whatever_it_sends(tmp: Path) -> None:
    async def scenario() -> None:
        cfg = make_cfg(charge_points=CPS, security={"profile": 1})
        async with central(tmp, cfg) as (cs, buf, url):
            for pw in [None, "guess", "s3cret-passw0rd"]:
                with pytest.raises(InvalidStatus) as exc:
                    await connect(url, "STRANGER", password=pw)
                assert exc.value.response.status_code == 404
    run(scenario())
