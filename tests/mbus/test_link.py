"""Link layer against the emulator: socat pseudo-terminals (serial, 8E1) and TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from sitegate.drivers.base import BusError, DeviceError, LinkSettings, MeterRef, NoResponse
from sitegate.drivers.mbus.client import MbusBusClient
from sitegate.drivers.mbus.emulator import EmulatedMeter, Emulator
from sitegate.drivers.mbus.link import Timing
from sitegate.drivers.mbus.scan import primary_scan, secondary_search

pytestmark = pytest.mark.timeout(60)

# Generous reply timeout: the emulator shares two busy cores with the tests. The standard's
# own figures are used by the daemon and the benchmark.
TIMING = Timing.standard(9600, reply_timeout=0.3)
NOW = datetime(2026, 1, 1, tzinfo=UTC)

Scenario = Callable[[MbusBusClient, Emulator], Awaitable[Any]]


def run_on(transport: str, pty_pair: tuple[str, str], meters: list[EmulatedMeter],
           scenario: Scenario, retries: int = 1) -> Any:
    async def go() -> Any:
        emu = Emulator(meters)
        if transport == "pty":
            await emu.start_serial(pty_pair[1], 9600)
            link = LinkSettings(serial_port=pty_pair[0], baudrate=9600, parity="E",
                                retries=retries)
            client = MbusBusClient(link, TIMING)
        else:
            port = await emu.start_tcp()
            client = MbusBusClient(LinkSettings(host="127.0.0.1", port=port, timeout=0.3,
                                                retries=retries))
        try:
            return await scenario(client, emu)
        finally:
            await client.close()
            await emu.stop()

    return asyncio.run(go())


def heat_and_water() -> list[EmulatedMeter]:
    return [
        EmulatedMeter.from_recording(1, "kamstrup_multical_601"),
        EmulatedMeter.from_recording(2, "itron_cyble_m-bus_v1.4_water"),
        EmulatedMeter.from_recording(7, "svm_f22_telegram1", "svm_f22_telegram2"),
    ]


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_primary_read(transport: str, pty_pair: tuple[str, str]) -> None:
    async def scenario(client: MbusBusClient, emu: Emulator) -> Any:
        return await client.read(MeterRef("heat-1", "kamstrup_multical_601", address=1), NOW)

    result = run_on(transport, pty_pair, heat_and_water(), scenario)
    got = {r.quantity: (r.value, r.unit, r.quality) for r in result.readings}
    # 04 06 E7 91 00 00 -> 37351 kWh; 04 14 2C DB 00 00 -> 561.08 m3
    assert got["heat_energy"] == (Decimal("37351"), "kWh", "good")
    assert got["volume"] == (Decimal("561.08"), "m3", "good")
    assert got["flow_temperature"] == (Decimal("101.69"), "°C", "good")
    assert all(r.ts == NOW and r.read_at is not None for r in result.readings)
    assert result.requests == 2  # SND_NKE + one REQ_UD2


def test_paced_replies_over_serial_are_put_together(pty_pair: tuple[str, str]) -> None:
    """The emulator paces its replies as a 2400 baud wire would (the first byte, the
    header, the rest, each when its last bit arrived): the link puts the frames together.
    Its waits are bounds on a hang here, not the standard's (the emulator shares the
    cores): the standard's timing is the daemon's and the benchmark's."""
    async def go() -> Any:
        emu = Emulator(heat_and_water(), baud=2400)
        await emu.start_serial(pty_pair[1], 2400)
        client = MbusBusClient(LinkSettings(serial_port=pty_pair[0], baudrate=2400,
                                            parity="E", retries=0),
                               Timing(reply_timeout=5, char_slack=5, settle=0.02, baud=2400))
        try:
            return await client.read(MeterRef("heat-1", "kamstrup_multical_601", address=1),
                                     NOW)
        finally:
            await client.close()
            await emu.stop()

    result = asyncio.run(go())
    got = {r.quantity: r.value for r in result.readings}
    assert got["heat_energy"] == Decimal("37351") and got["volume"] == Decimal("561.08")
    assert result.requests == 2  # SND_NKE + one REQ_UD2: nothing garbled, nothing repeated


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_multi_telegram_read_toggles_fcb(transport: str, pty_pair: tuple[str, str]) -> None:
    async def scenario(client: MbusBusClient, emu: Emulator) -> Any:
        frames = await client.read_telegrams(MeterRef("svm", "mbus_generic", address=7))
        return frames, emu.meters[2].telegrams

    frames, recorded = run_on(transport, pty_pair, heat_and_water(), scenario)
    # Both telegrams, in order (the emulator puts its primary address into the A field).
    assert [f[6:-2] for f in frames] == [t[6:-2] for t in recorded]


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_secondary_selection(transport: str, pty_pair: tuple[str, str]) -> None:
    async def scenario(client: MbusBusClient, emu: Emulator) -> Any:
        return await client.read(MeterRef("water-1", "itron_cyble_water",
                                          secondary="12000071"), NOW)

    result = run_on(transport, pty_pair, heat_and_water(), scenario)
    volume = next(r for r in result.readings if r.quantity == "volume")
    assert volume.value == Decimal("123.49")  # 04 14 3D 30 00 00: 12349 x 0.01 m3
    # Status 0x30 in that telegram: temporary error -> flagged, not good.
    assert volume.quality == "suspect" and "meter_status_error" in volume.flags
    assert any(e["kind"] == "mbus_meter_status" for e in result.events)


def test_meter_that_never_answers(pty_pair: tuple[str, str]) -> None:
    meters = heat_and_water()
    meters[0].silent = True

    async def scenario(client: MbusBusClient, emu: Emulator) -> Any:
        with pytest.raises(NoResponse):
            await client.read(MeterRef("heat-1", "kamstrup_multical_601", address=1), NOW)
        with pytest.raises(NoResponse):
            await client.read(MeterRef("x", "mbus_generic", secondary="99999999"), NOW)
        # The bus still works for the others.
        return await client.read(MeterRef("w", "itron_cyble_water", address=2), NOW)

    assert run_on("pty", pty_pair, meters, scenario).readings


def test_two_meters_on_one_address_is_a_device_error(pty_pair: tuple[str, str]) -> None:
    meters = [EmulatedMeter.from_recording(3, "kamstrup_multical_601"),
              EmulatedMeter.from_recording(3, "siemens_water")]

    async def scenario(client: MbusBusClient, emu: Emulator) -> Any:
        with pytest.raises(DeviceError) as exc:
            await client.read(MeterRef("m", "mbus_generic", address=3), NOW)
        return exc.value.kind

    assert run_on("pty", pty_pair, meters, scenario) == "garbled"


TEN_IDS = ["11111111", "12222222", "13333333", "21111111", "22222222",
           "31111111", "41111111", "51111111", "61111111", "71111111"]


def ten_meters() -> list[EmulatedMeter]:
    models = ["kamstrup_multical_601", "itron_cyble_m-bus_v1.4_water", "siemens_water",
              "landis_gyr_ultraheat_t230", "sen_pollutherm"]
    return [EmulatedMeter.from_recording(i + 1, models[i % len(models)], ident=ident)
            for i, ident in enumerate(TEN_IDS)]


def test_secondary_search_finds_all_ten_despite_collisions(pty_pair: tuple[str, str]) -> None:
    async def scenario(client: MbusBusClient, emu: Emulator) -> Any:
        return await secondary_search(client)

    found = run_on("pty", pty_pair, ten_meters(), scenario)
    assert sorted(f.secondary[:8] for f in found if f.secondary) == TEN_IDS
    assert sorted(f.primary for f in found) == list(range(1, 11))


def test_primary_scan_finds_all_ten(pty_pair: tuple[str, str]) -> None:
    async def scenario(client: MbusBusClient, emu: Emulator) -> Any:
        return await primary_scan(client, range(0, 13))

    found = run_on("pty", pty_pair, ten_meters(), scenario)
    assert [f.primary for f in found] == list(range(1, 11))
    assert sorted(f.secondary[:8] for f in found if f.secondary) == TEN_IDS


def test_set_primary_address_by_secondary(pty_pair: tuple[str, str]) -> None:
    async def scenario(client: MbusBusClient, emu: Emulator) -> Any:
        await client.set_address("22222222", 42)
        found = await primary_scan(client, range(40, 44))
        return found, emu.meters[4].primary

    found, primary = run_on("pty", pty_pair, ten_meters(), scenario)
    assert primary == 42
    assert [(f.primary, f.secondary[:8]) for f in found if f.secondary] == [(42, "22222222")]


def test_link_gone_is_a_bus_error() -> None:
    client = MbusBusClient(LinkSettings(serial_port="/dev/does-not-exist", baudrate=2400,
                                        parity="E"))
    with pytest.raises(BusError):
        asyncio.run(client.read(MeterRef("m", "mbus_generic", address=1), NOW))
