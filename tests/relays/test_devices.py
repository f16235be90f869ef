"""Relay devices against simulators speaking the real protocols: Shelly Gen2+ RPC over HTTP
and WebSocket (with and without digest authentication) and Modbus coils/discrete inputs
and metering registers (pymodbus server on loopback)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from relay_helpers import modbus_relays

from sitegate.drivers.base import DeviceError, NoResponse
from sitegate.drivers.relays import digest
from sitegate.drivers.relays.profile import (
    RelayProfileError,
    load_relay_profile,
    load_relay_profile_file,
    relay_profile_names,
)
from sitegate.drivers.relays.shelly import ShellyClient
from sitegate.drivers.relays.shelly_sim import ShellySimulator


@pytest.mark.parametrize("transport", ["http", "ws"])
@pytest.mark.parametrize("password", [None, "s3cret"])
def test_shelly_switch_and_meter(transport: str, password: str | None) -> None:
    async def run() -> None:
        sim = ShellySimulator(password=password)
        sim.switches[0].load_w = Decimal(1200)
        port = await sim.start()
        c = ShellyClient("127.0.0.1", port, password=password, transport=transport, timeout=1)
        try:
            await c.set(0, True)
            assert sim.switches[0].on
            sim.advance(1800)  # 1200 W for half an hour = 600 Wh
            st = await c.status(0)
            assert (st.on, st.power_w, st.energy_wh) == (True, Decimal(1200), Decimal(600))
            await c.set(0, False)
            st = await c.status(0)
            assert (st.on, st.power_w, st.energy_wh) == (False, Decimal(0), Decimal(600))
            assert sim.auth_failures == 0
        finally:
            await c.close()
            await sim.stop()

    asyncio.run(run())


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_shelly_auth_refused(transport: str) -> None:
    async def run() -> None:
        sim = ShellySimulator(password="right")
        port = await sim.start()
        try:
            for password, words in (("wrong", "error 401" if transport == "ws" else "refused"),
                                    (None, "401" if transport == "ws" else "required")):
                c = ShellyClient("127.0.0.1", port, password=password, transport=transport,
                                 timeout=1)
                with pytest.raises(DeviceError, match=words) as info:
                    await c.set(0, True)
                assert info.value.kind == "auth"
                await c.close()
            assert not sim.switches[0].on  # nothing switched without the right password
        finally:
            await sim.stop()

    asyncio.run(run())


def test_digest_response_matches_rfc7616_form() -> None:
    # HA1 = SHA256(admin:realm:password); response = SHA256(HA1:nonce:nc:cnonce:auth:HA2)
    ha1 = digest.sha256("admin:shellypro1pm-abc:pw")
    assert digest.ha1("shellypro1pm-abc", "pw") == ha1
    want = digest.sha256(f"{ha1}:123:1:456:auth:{digest.sha256('dummy_method:dummy_uri')}")
    assert digest.response(ha1, "123", 1, "456", digest.WS_HA2_INPUT) == want
    header = 'Digest qop="auth", realm="r1", nonce="n1", algorithm=SHA-256'
    assert digest.parse_challenge(header) == {"qop": "auth", "realm": "r1", "nonce": "n1",
                                              "algorithm": "SHA-256"}


def test_shelly_silent_device_is_no_response() -> None:
    async def run() -> None:
        sim = ShellySimulator()
        port = await sim.start()
        sim.silent = True
        c = ShellyClient("127.0.0.1", port, transport="ws", timeout=0.2)
        try:
            with pytest.raises(NoResponse):
                await c.status(0)
        finally:
            await c.close()
            await sim.stop()

    asyncio.run(run())


def test_modbus_io_module_and_relay_meter(free_port: int) -> None:
    async def run() -> None:
        sim, client, relays = await modbus_relays(free_port, (1, "io_4relay_4di"),
                                                  (2, "relay_meter_3ph"))
        try:
            io, meter = relays[1], relays[2]
            await io.set(3, True)
            assert sim.devices[1].coils[:4] == [False, False, True, False]
            assert (await io.status(3)).on and not (await io.status(2)).on
            sim.devices[1].stuck.add(3)  # the contactor did not pull in: the input says so
            assert not (await io.status(3)).on
            sim.devices[2].load_w = {1: Decimal(3000)}
            await meter.set(1, True)
            sim.devices[2].advance(1200)  # 3000 W for 20 min = 1000 Wh (float32 kWh: exact)
            st = await meter.status(1)
            assert (st.on, str(st.power_w), str(st.energy_wh)) == (True, "3000", "1000")
            sim.devices[2].silent = True
            with pytest.raises(NoResponse):
                await meter.status(1)
        finally:
            await client.close()
            await sim.stop()

    asyncio.run(run())


def test_relay_profiles_load_and_bad_ones_are_named(tmp_path: Path) -> None:
    assert relay_profile_names() == ["io_4relay_4di", "relay_meter_3ph"]
    for name in relay_profile_names():
        load_relay_profile(name)
    bad = tmp_path / "bad.toml"
    bad.write_text('vendor="x"\nmodel="y"\nsource="z"\n[[channels]]\nchannel=1\ncoil=0\n'
                   '[[channels]]\nchannel=2\ncoil=0\n')
    with pytest.raises(RelayProfileError, match="same coil"):
        load_relay_profile_file(bad)
    with pytest.raises(RelayProfileError, match="unknown relay profile"):
        load_relay_profile("nope")


@pytest.mark.parametrize("reply", [
    b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n" + b"[" * 70000,
    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\n\r\n[1, 2]",
])
def test_shelly_client_bounds_a_hostile_reply(reply: bytes) -> None:
    """Whatever a device (or something posing as one) answers: a DeviceError, no crash."""
    async def run() -> None:
        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.readuntil(b"\r\n\r\n")
            w.write(reply)
            await w.drain()
            w.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = ShellyClient("127.0.0.1", port, password="pw", timeout=1)
        try:
            with pytest.raises(DeviceError):
                await c.status(0)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(run())
