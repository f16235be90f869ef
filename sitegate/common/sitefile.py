"""The site configuration (TOML), validated with pydantic.

``load_config`` raises ``ConfigError`` whose ``problems`` name every bad key by its path
(``meters[2].unit``) and, where it can be found, the line in the file: all of them in one
run (how the parts fit together is checked in ``sitecheck``, on the raw data).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sitegate.common.sitecheck import (
    ConfigError,
    Loc,
    Problem,
    ProfileLookup,
    cross_problems,
    path_str,
    profile_problems,
)
from sitegate.common.sitefile_ocpp import OcppConfig
from sitegate.common.sitefile_relays import RelaysConfig
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
    # Installer's data checked at commissioning (sitegate commission): the serial number on
    # the label against the one the meter reports; the sign of power against what it meters.
    serial: str | None = Field(None, min_length=1, max_length=32,
                               description="serial number on the meter's label")
    role: Literal["consumer", "producer", "grid"] = Field(
        "consumer", description="consumer (a tenant, common areas), producer (PV) or grid "
        "(the connection point): a consumer drawing negative power has a reversed CT")
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
    pending_max_kb: int = Field(
        16384, ge=64, description="memory for poll cycles waiting while the buffer cannot be "
        "written (disk full); past it the oldest are dropped, counted and reported")


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
    relays: RelaysConfig | None = None

    @model_validator(mode="after")
    def _cross_check(self) -> SiteConfig:
        # validate() reports every cross problem from the raw data; this keeps a model built
        # any other way (SiteConfig(...), model_validate) from being inconsistent.
        found = cross_problems(self.model_dump())
        if found:
            raise AtKey(*found[0])
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
    return _line(key_lines(text), loc)


def _line(lines: dict[tuple[str | int, ...], int], loc: tuple[Any, ...]) -> int | None:
    for n in range(len(loc), 0, -1):
        no = lines.get(tuple(loc[:n]))
        if no is not None:
            return no
    return None


def _schema_message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (misspelt?)"
    return str(err["msg"]).removeprefix("Value error, ")


def validate(data: Any, source: str, text: str | None = None,
             profiles: ProfileLookup | None = None) -> SiteConfig:
    """The site configuration from parsed TOML or JSON, or ConfigError naming every problem
    at once: the shape of each value, how the parts fit together and, given a profile
    lookup, the meters' profiles; each with its line when ``text`` (the TOML) is given."""
    found: list[tuple[Loc, str]] = []
    cfg: SiteConfig | None = None
    try:
        cfg = SiteConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            if isinstance(err.get("ctx", {}).get("error"), AtKey):
                continue  # the first cross problem; cross_problems below lists them all
            found.append((tuple(err["loc"]), _schema_message(err)))
    if isinstance(data, dict):
        found += cross_problems(data)
        if profiles is not None:
            found += profile_problems(data, profiles)
    if not found and cfg is not None:
        return cfg
    lines = key_lines(text) if text is not None else {}
    problems = [Problem(path_str(loc), msg, _line(lines, loc)) for loc, msg in found]
    problems.sort(key=lambda p: (p.line or 0, p.path))
    raise ConfigError(source, problems)


def parse_config(text: str, source: str = "<config>",
                 profiles: ProfileLookup | None = None) -> SiteConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(source, [Problem("", f"not valid TOML: {exc}",
                                           int(m.group(1)) if m else None)]) from exc
    return validate(data, source, text, profiles)


def load_config(path: str | Path, profiles: ProfileLookup | None = None) -> SiteConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [Problem("", f"cannot read file: {exc.strerror}")]) from exc
    return parse_config(text, str(p), profiles)


def json_schema() -> dict[str, Any]:
    return SiteConfig.model_json_schema()
