"""Which profile fits the device at a unit id, and its serial number.

The profiles declare where their model code and serial number are (``[identify]`` in
``drivers/profiles/modbus/*.toml``); each distinct register is read once per unit (the
Eastron family shares one), and every profile whose model codes hold the value read is
proposed. A register the device does not have answers with an exception or a value no
profile claims: no proposal, never a guess.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sitegate.drivers.base import DeviceError, NoResponse
from sitegate.drivers.modbus.client import ModbusBusClient
from sitegate.drivers.modbus.codec import DecodeError, decode
from sitegate.drivers.modbus.planner import Block
from sitegate.drivers.modbus.profile import Profile, Word, load_profile, profile_names

PAUSE = 0.02  # seconds between requests to one device (the slowest profile's frame delay)


@dataclass
class Identity:
    unit: int
    profiles: list[str] = field(default_factory=list)  # proposed: the model code matches
    model_code: int | None = None
    serial: str | None = None
    note: str = ""

    @property
    def profile(self) -> str | None:
        """The one proposal, or None when there is none or several."""
        return self.profiles[0] if len(self.profiles) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "profile": self.profile, "proposed": self.profiles,
                "model_code": self.model_code, "serial": self.serial, "note": self.note}


def identifiable() -> list[Profile]:
    """The shipped profiles that declare a model register and codes."""
    out = []
    for name in profile_names():
        p = load_profile(name)
        if p.identify is not None and p.identify.model is not None and p.identify.model_codes:
            out.append(p)
    return out


class _Reader:
    """Reads of one unit, each register once; a failure is remembered as such."""

    def __init__(self, client: ModbusBusClient, unit: int) -> None:
        self.client, self.unit = client, unit
        self.seen: dict[tuple[str, int, int], list[int] | Exception] = {}

    async def value(self, word: Word, word_order: str) -> Decimal | None:
        key = (word.function, word.address, word.width)
        if key not in self.seen:
            if self.seen:
                await asyncio.sleep(PAUSE)
            try:
                self.seen[key] = await self.client.read_block(
                    self.unit, Block(word.function, word.address, word.width))
            except (NoResponse, DeviceError) as exc:
                self.seen[key] = exc
        words = self.seen[key]
        if isinstance(words, Exception):
            return None
        try:
            return decode(words, word.type, word.word_order or word_order, Decimal(1))
        except DecodeError:
            return None


async def identify(client: ModbusBusClient, unit: int,
                   profiles: list[Profile] | None = None) -> Identity:
    """The profiles whose model code the device at ``unit`` holds, and its serial number."""
    reader = _Reader(client, unit)
    found = Identity(unit)
    codes: list[int] = []
    for p in profiles if profiles is not None else identifiable():
        assert p.identify is not None and p.identify.model is not None
        value = await reader.value(p.identify.model, p.word_order)
        if value is None or value != value.to_integral_value():
            continue
        code = int(value)
        codes.append(code)
        if code in p.identify.model_codes:
            found.profiles.append(p.name)
            found.model_code = code
    if found.profile is not None:
        found.serial = await serial_number(client, unit, load_profile(found.profile), reader)
    elif found.profiles:
        found.note = f"model code {found.model_code} fits {', '.join(found.profiles)}"
    elif codes:
        found.note = ("no profile knows its model code (read "
                      + ", ".join(str(c) for c in sorted(set(codes) - {0}) or ["0"]) + ")")
    else:
        found.note = "no identification register answered"
    return found


async def serial_number(client: ModbusBusClient, unit: int, profile: Profile,
                        reader: _Reader | None = None) -> str | None:
    """The serial number the meter reports, as printed (decimal digits), if its profile
    says where it is."""
    if profile.identify is None or profile.identify.serial is None:
        return None
    value = await (reader or _Reader(client, unit)).value(profile.identify.serial,
                                                         profile.word_order)
    if value is None or value != value.to_integral_value():
        return None
    return str(int(value))
