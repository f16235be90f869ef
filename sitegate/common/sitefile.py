"""The site configuration (TOML), validated with pydantic.

``load_config`` raises ``ConfigError`` whose ``problems`` name every bad key by its path
(``meters[2].unit``) and, where it can be found, the line in the file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sitegate.common.sitefile_ocpp import OcppConfig
from sitegate.sync.config import MqttConfig

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SerialLink(_Strict):
    port: str = Field(description="serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...")
    baudrate: Literal[300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = Field(
        9600, description="default 9600 on Modbus, 2400 on M-Bus"
    )
    parity: Literal["N", "E", "O"] = Field("N", description="default N on Modbus, E on M-Bus")
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class TcpLink(_Strict):
    host: str
    port: int = Field(502, ge=1, le=65535, description="default 502 on Modbus, 10001 on M-Bus")
    framing: Literal["tcp", "rtu-over-tcp"] = Field(
        "tcp", description="Modbus TCP (MBAP), or RTU frames over a transparent converter"
    )


class Bus(_Strict):
    name: Identifier
    protocol: Literal["modbus", "mbus"] = "modbus"
    serial: SerialLink | None = None
    tcp: TcpLink | None = None
    timeout: float = Field(1.0, gt=0, le=30, description="seconds to wait for one reply")
    retries: int = Field(1, ge=0, le=5, description="retries of one request before giving up")
    backoff_max: float = Field(
        900.0, gt=0, description="longest pause, in seconds, before probing a silent meter again"
    )

    @model_validator(mode="before")
    @classmethod
    def _mbus_defaults(cls, data: Any) -> Any:
        """M-Bus links default to what M-Bus hardware uses: 2400 baud 8E1 (EN 13757-2) on
        serial, and 10001 on the TCP converters (the common factory setting)."""
        if not isinstance(data, dict) or data.get("protocol") != "mbus":
            return data
        data = dict(data)
        if isinstance(data.get("serial"), dict):
            data["serial"] = {"baudrate": 2400, "parity": "E", **data["serial"]}
        if isinstance(data.get("tcp"), dict):
            data["tcp"] = {"port": 10001, **data["tcp"]}
        return data

    @model_validator(mode="after")
    def _one_link(self) -> Bus:
        if (self.serial is None) == (self.tcp is None):
            raise ValueError("a bus needs exactly one of 'serial' or 'tcp'")
        return self

    def describe(self) -> str:
        if self.serial is not None:
            s = self.serial
            return f"{s.port} {s.baudrate} {s.bytesize}{s.parity}{s.stopbits}"
        assert self.tcp is not None
        return f"{self.tcp.host}:{self.tcp.port} ({self.tcp.framing})"


class Meter(_Strict):
    id: Identifier
    bus: str
    profile: str = Field(description="device profile name, e.g. eastron_sdm630 or mbus_generic")
    interval: int = Field(900, ge=1, le=86400, description="poll interval in seconds")
    billing_point: str | None = Field(None, description="label of the billed unit")
    # Modbus
    unit: int | None = Field(None, ge=0, le=247, description="Modbus unit (slave) id")
    # M-Bus
    address: int | None = Field(None, ge=0, le=250, description="M-Bus primary address")
    secondary: str | None = Field(
        None, pattern=r"^[0-9A-Fa-f]{8}([0-9A-Fa-f]{8})?$",
        description="M-Bus secondary address: 8-digit id, optionally + manufacturer/version/medium",
    )


class Storage(_Strict):
    path: str = "/var/lib/sitegate/buffer.db"
    max_mb: int = Field(1024, ge=1, description="size cap; acknowledged rows are removed first")


class Health(_Strict):
    socket: str = Field("/run/sitegate/sitegate.sock", description="status socket for the CLI")


class AtKey(ValueError):
    """A cross-check that fails because of one key below the model that checks it.

    pydantic places a model validator's error on the whole model; ``parse_config`` appends
    this ``loc`` so the problem names the key (``meters[2].bus``) and its line."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class SiteConfig(_Strict):
    gateway_id: Identifier
    storage: Storage = Storage()
    health: Health = Health()
    buses: list[Bus] = []
    meters: list[Meter] = []
    mqtt: MqttConfig | None = None
    ocpp: OcppConfig | None = None

    @model_validator(mode="after")
    def _cross_check(self) -> SiteConfig:
        buses = {b.name: b for b in self.buses}
        if len(buses) != len(self.buses):
            raise ValueError("bus names must be unique")
        # RS485 and M-Bus are half duplex: one worker per wire. Two buses on one serial port
        # or one transparent converter would interleave their requests (garbled replies).
        # Modbus TCP (MBAP) devices serve several clients, so those may be shared.
        wires: dict[tuple[str, ...], str] = {}
        for i, b in enumerate(self.buses):
            if b.serial is not None:
                wire, loc = ("serial", b.serial.port), ("buses", i, "serial", "port")
            elif b.tcp is not None and (b.protocol == "mbus" or b.tcp.framing != "tcp"):
                wire = ("tcp", b.tcp.host.lower(), str(b.tcp.port))
                loc = ("buses", i, "tcp")
            else:
                continue
            if wire in wires:
                raise AtKey(loc, f"bus {wires[wire]!r} is already on {wire[1]}"
                                 f"{':' + wire[2] if len(wire) > 2 else ''}: one bus per "
                                 "half-duplex line (put the meters on one bus)")
            wires[wire] = b.name
        seen: set[str] = set()
        for i, m in enumerate(self.meters):
            if m.id in seen:
                raise AtKey(("meters", i, "id"), f"meter id {m.id!r} appears twice")
            seen.add(m.id)
            bus = buses.get(m.bus)
            if bus is None:
                raise AtKey(("meters", i, "bus"),
                            f"meter {m.id!r}: bus {m.bus!r} is not defined in [[buses]]")
            if bus.protocol == "modbus" and m.unit is None:
                raise AtKey(("meters", i),
                            f"meter {m.id!r} is on Modbus bus {m.bus!r} and needs 'unit'")
            if bus.protocol == "mbus" and (m.address is None) == (m.secondary is None):
                raise AtKey(
                    ("meters", i),
                    f"meter {m.id!r} is on M-Bus bus {m.bus!r} and needs exactly one of "
                    "'address' or 'secondary'",
                )
        main = self.ocpp.load_management.main_meter if self.ocpp is not None else None
        if main is not None and main not in seen:
            raise AtKey(("ocpp", "load_management", "main_meter"),
                        f"meter {main!r} is not defined in [[meters]]; known: "
                        f"{', '.join(sorted(seen)) or 'none'}")
        return self

    def bus(self, name: str) -> Bus:
        for b in self.buses:
            if b.name == name:
                return b
        raise KeyError(name)

    def meter(self, meter_id: str) -> Meter:
        for m in self.meters:
            if m.id == meter_id:
                return m
        raise KeyError(meter_id)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path or '(top level)'}: {self.message}"


class ConfigError(Exception):
    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(str(p) for p in problems))


def _path_str(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# A TOML key: bare or quoted parts joined by dots (``a.b``, ``"x y".z``).
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY_RE = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=\s*(.*)$")
_HEADER_RE = re.compile(rf"^\s*(\[\[?)\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*\]")


def _key_parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in re.findall(_KEY_PART, dotted))


def key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Every key path the TOML text defines, in pydantic's location form (an element of an
    array of tables carries its index: ``("ocpp", "charge_points", 2, "password")``), with
    the first line that defines or opens it. Implicit parents (``ocpp`` of
    ``[ocpp.security]``) map to the first line that mentions them."""
    found: dict[tuple[str | int, ...], int] = {}
    # Arrays of tables by resolved path (with the indexes of the enclosing elements, so a
    # nested array counts its elements per parent element) -> elements seen so far.
    arrays: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    closing: str | None = None  # inside a multi-line string: its closing quotes

    def resolve(parts: tuple[str, ...]) -> tuple[str | int, ...]:
        out: tuple[str | int, ...] = ()
        for part in parts:
            out += (part,)
            if out in arrays:  # a key below an array of tables means its latest element
                out += (arrays[out] - 1,)
        return out

    def note(path: tuple[str | int, ...], no: int) -> None:
        for n in range(1, len(path) + 1):
            found.setdefault(path[:n], no)

    for no, line in enumerate(text.splitlines(), start=1):
        if closing is not None:
            if closing in line:
                closing = None
            continue
        header = _HEADER_RE.match(line)
        if header:
            parts = _key_parts(header.group(2))
            if header.group(1) == "[[":
                path = resolve(parts[:-1]) + (parts[-1],)
                arrays[path] = arrays.get(path, 0) + 1
                table = path + (arrays[path] - 1,)
            else:
                table = resolve(parts)
            note(table, no)
            continue
        key = _KEY_RE.match(line)
        if key:
            note(table + _key_parts(key.group(1)), no)
            value = key.group(2)
            for quotes in ('"""', "'''"):
                if value.startswith(quotes) and value.count(quotes) == 1:
                    closing = quotes
    return found


def find_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Line of a pydantic error location in TOML text (tomllib keeps no positions): the
    line of the longest part of the location the file defines, so a missing key points at
    its table and a bad value inside an inline table at the line of that table."""
    lines = key_lines(text)
    for n in range(len(loc), 0, -1):
        no = lines.get(tuple(loc[:n]))
        if no is not None:
            return no
    return None


def parse_config(text: str, source: str = "<config>") -> SiteConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(source, [Problem("", f"not valid TOML: {exc}",
                                           int(m.group(1)) if m else None)]) from exc
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            cause = err.get("ctx", {}).get("error")
            if isinstance(cause, AtKey):
                loc += cause.loc
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (misspelt?)"
            problems.append(Problem(_path_str(loc), msg, find_line(text, loc)))
        raise ConfigError(source, problems) from exc


def load_config(path: str | Path) -> SiteConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [Problem("", f"cannot read file: {exc.strerror}")]) from exc
    return parse_config(text, str(p))


def json_schema() -> dict[str, Any]:
    return SiteConfig.model_json_schema()
