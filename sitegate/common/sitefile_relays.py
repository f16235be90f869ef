"""The ``[relays]`` table of the site file: RFID relay points without OCPP.

A *point* joins an RFID reader, a relay channel and (where the relay device meters) its
energy: a laundry machine or an eBike outlet. Devices are Modbus relay modules or relay
meters on a ``[[buses]]`` bus (profile in ``drivers/profiles/relays/``), or Shelly Gen2+
relays on the network. Kept apart from the site model so that model stays small.

How the parts fit together (references, one reader per point, the relay profiles and
their channels) is checked on the raw data, like the rest of the site file
(``relay_problems``, called from ``sitecheck``), so one run reports every problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sitegate.common.sitefile_ocpp import BadgeConfig

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShellyDevice(_Strict):
    id: Identifier
    type: Literal["shelly"]
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(80, ge=1, le=65535)
    transport: Literal["http", "ws"] = Field(
        "http", description="the device's local RPC: HTTP GET /rpc/..., or WebSocket /rpc")
    password: str | None = Field(
        None, max_length=256, description="when the device has authentication enabled "
                                          "(user is always admin)")
    password_secret: str | None = Field(
        None, max_length=64, description="name of that password in the box's secrets file "
                                         "(/etc/sitegate/secrets.toml); instead of password, "
                                         "which the cloud's desired config may not carry")
    timeout: float = Field(3.0, gt=0, le=30, description="seconds to wait for one answer")

    @model_validator(mode="after")
    def _one_password(self) -> ShellyDevice:
        if self.password and self.password_secret:
            raise ValueError("password or password_secret, not both")
        return self


class ModbusRelayDevice(_Strict):
    id: Identifier
    type: Literal["modbus"]
    bus: str = Field(description="a Modbus bus of [[buses]]; shared with its meters")
    unit: int = Field(ge=1, le=247, description="Modbus unit (slave) id")
    profile: str = Field(description="relay profile, e.g. io_4relay_4di or relay_meter_3ph")


RelayDeviceConfig = Annotated[ShellyDevice | ModbusRelayDevice, Field(discriminator="type")]


class ReaderConfig(_Strict):
    id: Identifier
    type: Literal["keyboard", "serial"] = Field(
        description="keyboard: a USB reader typing the UID (evdev, grabbed); serial: a "
                    "reader sending one UID per line")
    device: str = Field(min_length=1, max_length=255,
                        description="/dev/input/by-id/... or /dev/ttyUSB0 ...")
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    encoding: Literal["text", "decimal"] = Field(
        "text", description="decimal: the reader prints the UID as a number (e.g. "
                            "0004198472), turned into hex before the badge list compares it")
    badge_format: Literal["as-is", "hex", "hex-reversed"] = Field(
        "hex", description="as for OCPP charge points: how the UID is normalized")
    debounce: float = Field(
        2.0, ge=0, le=60, description="seconds in which the same card read again is one "
                                      "presentation (readers repeat while a card is held)")


class PointConfig(_Strict):
    id: Identifier = Field(description="names the sessions (session id = point id + start)")
    kind: Literal["laundry", "ebike"]
    reader: str | None = Field(None, description="a [[relays.readers]] id")
    device: str = Field(description="a [[relays.devices]] id")
    channel: int = Field(
        0, ge=0, le=64, description="relay channel: Shelly switch id (from 0), Modbus "
                                    "profile channel (from 1)")
    metered: bool = Field(True, description="false: a fixed price per use, no energy")
    stop_below_w: Decimal | None = Field(
        None, ge=0, description="end when the power stays below this (a programme ended); "
                                "counts only once the power was above it")
    stop_after: float = Field(180.0, gt=0, le=86400,
                              description="seconds the power must stay below stop_below_w")
    max_duration: float = Field(4 * 3600.0, gt=0, le=7 * 86400,
                                description="seconds after which a session is ended")
    poll_interval: float = Field(5.0, gt=0, le=300, description="seconds between reads")
    device_timeout: float = Field(
        60.0, gt=0, le=3600, description="seconds without an answer from the device after "
                                         "which a running session is closed, flagged")
    safe_state: Literal["off", "on"] = Field(
        "off", description="relay state after a fault or a restart during a session")
    billing_point: str | None = None


class RelaysConfig(_Strict):
    devices: list[RelayDeviceConfig] = []
    readers: list[ReaderConfig] = []
    points: list[PointConfig] = []
    badges: list[BadgeConfig] = Field(
        [], description="local badges when there is no [ocpp] table; with one, the points "
                        "use [ocpp]'s badge list (one list for both)")

    def device(self, device_id: str) -> RelayDeviceConfig:
        return next(d for d in self.devices if d.id == device_id)

    def reader(self, reader_id: str) -> ReaderConfig:
        return next(r for r in self.readers if r.id == reader_id)


Loc = tuple[str | int, ...]
# (protocol, profile) -> what it offers; for "relays": "channel:<n>" per channel.
Lookup = Callable[[str, str], frozenset[str]]


def _tables(data: Any, key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    items = data.get(key) if isinstance(data, dict) else None
    if isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, dict):
                yield i, item


def _twice(relays: dict[str, Any], key: str, what: str) -> list[tuple[Loc, str]]:
    seen: set[str] = set()
    out: list[tuple[Loc, str]] = []
    for i, item in _tables(relays, key):
        ident = item.get("id")
        if isinstance(ident, str):
            if ident in seen:
                out.append((("relays", key, i, "id"), f"{what} id {ident!r} appears twice"))
            seen.add(ident)
    return out


def relay_problems(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Every way ``[relays]`` does not fit the rest of the site file."""
    relays = data.get("relays")
    if not isinstance(relays, dict):
        return []
    out = (_twice(relays, "devices", "device") + _twice(relays, "readers", "reader")
           + _twice(relays, "points", "point"))
    modbus = {b.get("name") for _, b in _tables(data, "buses")
              if b.get("protocol", "modbus") == "modbus"}
    ocpp = data.get("ocpp") if isinstance(data.get("ocpp"), dict) else {}
    chargers = {c.get("id") for _, c in _tables(ocpp, "charge_points")}
    if relays.get("badges") and data.get("ocpp") is not None:
        out.append((("relays", "badges"), "with [ocpp] the points use its badge list: put "
                                          "the badges in [[ocpp.badges]]"))
    devices = {d.get("id"): (i, d) for i, d in _tables(relays, "devices")}
    for i, d in devices.values():
        if d.get("type") == "modbus" and isinstance(d.get("bus"), str) \
                and d["bus"] not in modbus:
            out.append((("relays", "devices", i, "bus"),
                        f"device {d.get('id')!r}: {d['bus']!r} is not a Modbus bus of "
                        f"[[buses]]; known: {', '.join(sorted(map(str, modbus))) or 'none'}"))
    readers = {r.get("id") for _, r in _tables(relays, "readers")}
    used: dict[Any, Any] = {}
    switched: dict[tuple[Any, Any], Any] = {}
    for i, p in _tables(relays, "points"):
        pid, loc = p.get("id"), ("relays", "points", i)
        if pid in chargers:
            out.append(((*loc, "id"), f"point {pid!r} has the id of an OCPP charge point: "
                                      "their sessions would be confused"))
        if p.get("device") not in devices:
            out.append(((*loc, "device"), f"point {pid!r}: device {p.get('device')!r} is not "
                                          "in [[relays.devices]]"))
        key = (p.get("device"), p.get("channel", 0))
        if key in switched:
            out.append(((*loc, "channel"), f"points {switched[key]!r} and {pid!r} switch the "
                                           "same relay"))
        switched.setdefault(key, pid)
        reader = p.get("reader")
        if reader is None:
            continue
        if reader not in readers:
            out.append(((*loc, "reader"), f"point {pid!r}: reader {reader!r} is not in "
                                          "[[relays.readers]]"))
        elif reader in used:
            out.append(((*loc, "reader"), f"reader {reader!r} serves {used[reader]!r} already "
                                          "(one reader per point)"))
        used.setdefault(reader, pid)
    return out


def relay_profile_problems(data: dict[str, Any], lookup: Lookup) -> list[tuple[Loc, str]]:
    """The Modbus relay devices' profiles exist and have the channels the points switch."""
    relays = data.get("relays")
    if not isinstance(relays, dict):
        return []
    out: list[tuple[Loc, str]] = []
    channels: dict[Any, frozenset[str] | None] = {}
    for i, d in _tables(relays, "devices"):
        if d.get("type") != "modbus" or not isinstance(d.get("profile"), str):
            continue
        try:
            channels[d.get("id")] = lookup("relays", d["profile"])
        except ValueError as exc:
            channels[d.get("id")] = None
            out.append((("relays", "devices", i, "profile"), str(exc)))
    for i, p in _tables(relays, "points"):
        have = channels.get(p.get("device"))
        if have is not None and f"channel:{p.get('channel', 0)}" not in have:
            out.append((("relays", "points", i, "channel"),
                        f"point {p.get('id')!r}: device {p.get('device')!r} has no channel "
                        f"{p.get('channel', 0)} (channels: "
                        f"{', '.join(sorted(c.split(':')[1] for c in have))})"))
    return out
