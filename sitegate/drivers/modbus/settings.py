"""Writing a meter's own settings: its unit id and baud rate, where its profile declares
the registers (``[settings]`` in ``drivers/profiles/modbus/*.toml``), and reading them
back to prove the meter took them."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from sitegate.drivers.base import DeviceError, NoResponse
from sitegate.drivers.modbus.client import ModbusBusClient
from sitegate.drivers.modbus.codec import DecodeError, decode, encode
from sitegate.drivers.modbus.planner import Block
from sitegate.drivers.modbus.profile import Profile, Setting

PAUSE = 0.05  # seconds between the writes and the read-back (meters store to EEPROM)


class SettingError(ValueError):
    """The profile cannot do it, or the value is not one the meter takes."""


def _plan(profile: Profile, new_unit: int | None, new_baud: int | None
          ) -> list[tuple[str, Setting, int, str]]:
    """(what, register, code to write, text) per setting to change."""
    s = profile.settings
    out = []
    if new_baud is not None:
        if s is None or s.baudrate is None:
            raise SettingError(f"profile {profile.name} declares no baud rate register: set "
                               "the rate on the meter itself (see its manual)")
        code = s.baudrate.codes.get(str(new_baud)) if s.baudrate.codes else new_baud
        if code is None:
            raise SettingError(f"{profile.name} takes the baud rates "
                               f"{', '.join(sorted(s.baudrate.codes, key=int))}, not {new_baud}")
        out.append(("baudrate", s.baudrate, code, f"baud rate {new_baud}"))
    if new_unit is not None:
        if s is None or s.unit is None:
            raise SettingError(f"profile {profile.name} declares no unit id register: set "
                               "the address on the meter itself (see its manual)")
        out.append(("unit", s.unit, new_unit, f"unit id {new_unit}"))
    return out


async def _read(client: ModbusBusClient, unit: int, reg: Setting, profile: Profile
                ) -> Decimal | None:
    try:
        words = await client.read_block(unit, Block(reg.function, reg.address, reg.width))
        return decode(words, reg.type, reg.word_order or profile.word_order, Decimal(1))
    except (NoResponse, DeviceError, DecodeError):
        return None


async def apply_settings(client: ModbusBusClient, unit: int, profile: Profile,
                         new_unit: int | None = None, new_baud: int | None = None
                         ) -> dict[str, Any]:
    """Write the new settings at ``unit`` and read them back (at the new unit id if the
    meter already answers there, else at the old one)."""
    steps = _plan(profile, new_unit, new_baud)
    for _what, reg, code, _text in steps:
        words = encode(Decimal(code), reg.type, reg.word_order or profile.word_order,
                       Decimal(1))
        await client.write_registers(unit, reg.address, words)
        await asyncio.sleep(PAUSE)
    checked: dict[str, Any] = {}
    lines = []
    for what, reg, code, text in steps:
        at = unit
        value = None
        if new_unit is not None and new_baud is None:
            value = await _read(client, new_unit, reg, profile)
            at = new_unit
        if value is None:
            value, at = await _read(client, unit, reg, profile), unit
        ok = value is not None and value == code
        checked[what] = {"written": code, "read_back": None if value is None else str(value),
                         "at_unit": at, "ok": ok}
        lines.append(f"unit {unit}: {text} written" + (
            f", read back at unit {at}" if ok else ", not confirmed by a read-back"))
    note = profile.settings.note if profile.settings is not None else ""
    if note:
        lines.append(note)
    return {"unit": unit, "profile": profile.name, "settings": checked, "note": note,
            "lines": lines}
