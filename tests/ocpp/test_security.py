"""Security profiles 1 (basic auth) and 2 (basic auth over TLS), on real sockets."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from ocpp_helpers import central, make_cfg, run
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
