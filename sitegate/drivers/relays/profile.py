"""Relay device profiles: Modbus relay I/O modules and relay meters as data
(``drivers/profiles/relays/*.toml``), checked when loaded like the meter profiles.

A profile lists the channels (the coil that switches each relay, and where its state is
read back: a discrete input wired to an auxiliary contact, or the coil itself) and,
for a relay meter, the registers of its metering part in the meter profiles' form (a
power register and the cumulative energy register), read with the meter driver's code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sitegate.drivers.modbus.profile import (
    Limits,
    Profile,
    Register,
    names_in,
    profile_path,
    read_profile,
)

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles" / "relays"
POWER = ("1-0:1.7.0", "1-0:16.7.0")  # active power (import, or signed net)
ENERGY = "1-0:1.8.0"  # active energy import, cumulative


class Channel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: int = Field(ge=1, le=64, description="the channel number printed on the device")
    coil: int = Field(ge=0, le=0xFFFF, description="coil (0-based) switching this relay")
    feedback: int | None = Field(
        None, ge=0, le=0xFFFF,
        description="discrete input (0-based) that reads the relay's real state back; "
                    "none: the coil itself is read back")


class Metering(BaseModel):
    model_config = ConfigDict(extra="forbid")

    function: Literal["holding", "input"] = "input"
    word_order: Literal["big", "little"] = "big"
    limits: Limits = Limits()
    registers: list[Register]

    @model_validator(mode="after")
    def _power_and_energy(self) -> Metering:
        have = {r.quantity for r in self.registers}
        if ENERGY not in have or not have & set(POWER):
            raise ValueError(f"metering needs {ENERGY} (energy) and one of "
                             f"{', '.join(POWER)} (power)")
        return self


class RelayProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    vendor: str
    model: str
    source: str = Field(description="the vendor document the map was taken from")
    channels: list[Channel] = Field(min_length=1)
    metering: Metering | None = None

    @model_validator(mode="after")
    def _unique(self) -> RelayProfile:
        numbers = [c.channel for c in self.channels]
        if len(set(numbers)) != len(numbers):
            raise ValueError("channel numbers must be unique")
        coils = [c.coil for c in self.channels]
        if len(set(coils)) != len(coils):
            raise ValueError("two channels switch the same coil")
        return self

    def channel(self, number: int) -> Channel:
        for c in self.channels:
            if c.channel == number:
                return c
        raise KeyError(f"{self.name} has no channel {number} "
                       f"(channels: {', '.join(str(c.channel) for c in self.channels)})")

    def meter_profile(self) -> Profile | None:
        """The metering part as a meter profile, read by the Modbus meter driver."""
        m = self.metering
        if m is None:
            return None
        return Profile(name=self.name, vendor=self.vendor, model=self.model, source=self.source,
                       function=m.function, word_order=m.word_order, limits=m.limits,
                       registers=m.registers)


class RelayProfileError(Exception):
    pass


def load_relay_profile_file(path: Path) -> RelayProfile:
    return read_profile(path, RelayProfile, RelayProfileError)


@cache
def load_relay_profile(name: str) -> RelayProfile:
    return load_relay_profile_file(profile_path(PROFILE_DIR, name, "relay", RelayProfileError))


def relay_profile_names() -> list[str]:
    return names_in(PROFILE_DIR)
