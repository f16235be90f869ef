"""Modbus device profiles: register maps as data (``drivers/profiles/modbus/*.toml``).

A profile is checked when loaded: unknown types or functions, registers that overlap,
and blocks larger than the device allows are reported with the profile's file and the
register's quantity, never discovered on the bus.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles" / "modbus"

RegisterType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"
]
WIDTH: dict[str, int] = {
    "int16": 1, "uint16": 1, "int32": 2, "uint32": 2,
    "int64": 4, "uint64": 4, "float32": 2, "float64": 4,
}


class Register(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: str = Field(description="OBIS-style name, e.g. 1-0:1.8.0")
    address: int = Field(ge=0, le=0xFFFF, description="protocol (0-based) register address")
    function: Literal["holding", "input"] | None = None
    type: RegisterType
    word_order: Literal["big", "little"] | None = Field(
        None, description="big: most significant 16-bit word first (Modbus convention)"
    )
    scale: Decimal = Decimal(1)
    unit: str
    description: str = ""

    @property
    def width(self) -> int:
        return WIDTH[self.type]


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_registers: int = Field(125, ge=1, le=125, description="registers per read request")
    max_gap: int = Field(
        8, ge=0, description="unused registers a block may span to save a request"
    )
    inter_frame_delay_ms: int = Field(0, ge=0, le=2000, description="pause between requests")


class Word(BaseModel):
    """One value outside the measured quantities: an identification or a setting register."""

    model_config = ConfigDict(extra="forbid")

    address: int = Field(ge=0, le=0xFFFF)
    type: RegisterType
    function: Literal["holding", "input"] = "holding"
    word_order: Literal["big", "little"] | None = None

    @property
    def width(self) -> int:
        return WIDTH[self.type]


class Identify(BaseModel):
    """What tells this model from others on a bus (``sitegate modbus scan --identify``) and
    its serial number (commissioning checks it against the site file)."""

    model_config = ConfigDict(extra="forbid")

    model: Word | None = Field(None, description="register holding a model code")
    model_codes: list[int] = Field(default_factory=list,
                                   description="codes of this profile's models in it")
    serial: Word | None = Field(None, description="register holding the serial number")


class Setting(Word):
    # value written -> code the meter takes (a baud rate register holds an index)
    codes: dict[str, int] = Field(default_factory=dict)


class Settings(BaseModel):
    """Registers an installer writes (``sitegate modbus set-address``)."""

    model_config = ConfigDict(extra="forbid")

    unit: Setting | None = Field(None, description="the meter's Modbus unit id")
    baudrate: Setting | None = None
    note: str = Field("", description="what the installer must know (when it takes effect)")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    vendor: str
    model: str
    source: str = Field(description="the vendor document the register map was taken from")
    function: Literal["holding", "input"] = "holding"
    word_order: Literal["big", "little"] = "big"
    limits: Limits = Limits()
    # Registers that must not be part of a block read (the device answers with an
    # exception for the whole request when it contains one).
    holes: list[tuple[int, int]] = Field(default_factory=list)
    registers: list[Register]
    identify: Identify | None = None
    settings: Settings | None = None

    @model_validator(mode="after")
    def _check(self) -> Profile:
        seen_q: set[str] = set()
        spans: dict[str, list[tuple[int, int, str]]] = {"holding": [], "input": []}
        for r in self.registers:
            if r.quantity in seen_q:
                raise ValueError(f"quantity {r.quantity} is defined twice")
            seen_q.add(r.quantity)
            if r.width > self.limits.max_registers:
                raise ValueError(f"{r.quantity}: wider than limits.max_registers")
            if r.address + r.width > 0x10000:
                raise ValueError(f"{r.quantity}: runs past register 65535")
            spans[self.function_of(r)].append((r.address, r.address + r.width, r.quantity))
        for fn, items in spans.items():
            items.sort()
            for (a0, a1, q0), (b0, _b1, q1) in zip(items, items[1:], strict=False):
                if b0 < a1:
                    raise ValueError(
                        f"{q1} ({fn} register {b0}) overlaps {q0} (registers {a0}..{a1 - 1})"
                    )
        return self

    def function_of(self, r: Register) -> str:
        return r.function or self.function

    def word_order_of(self, r: Register) -> str:
        return r.word_order or self.word_order


class ProfileError(Exception):
    pass


M = TypeVar("M", bound=BaseModel)


def read_profile(path: Path, model: type[M], error: type[Exception]) -> M:
    """A profile file (TOML, named by its stem unless it says) checked against ``model``;
    every problem in one ``error`` naming the file and, inside a register, its quantity.
    The relay profiles are read with it too."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{path}: {exc}") from exc
    data.setdefault("name", path.stem)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) + _quantity_at(data, err["loc"])
            msgs.append(f"{loc or '(profile)'}: {err['msg'].removeprefix('Value error, ')}")
        raise error(f"{path}: " + "; ".join(msgs)) from exc


def _quantity_at(data: dict[str, object], loc: tuple[int | str, ...]) -> str:
    """' (1-0:1.8.0)' for an error inside a register: 'registers.3.type' alone says not which."""
    regs = data.get("registers")
    if len(loc) >= 2 and loc[0] == "registers" and isinstance(loc[1], int) \
            and isinstance(regs, list) and loc[1] < len(regs) and isinstance(regs[loc[1]], dict):
        quantity = regs[loc[1]].get("quantity")
        if quantity:
            return f" ({quantity})"
    return ""


def names_in(directory: Path) -> list[str]:
    """The profiles shipped in ``directory``, by name."""
    return sorted(p.stem for p in directory.glob("*.toml"))


def profile_path(directory: Path, name: str, kind: str, error: type[Exception]) -> Path:
    """The file of profile ``name``; an unknown name is ``error`` listing the known ones."""
    path = directory / f"{name}.toml"
    if not path.exists():
        raise error(f"unknown {kind} profile {name!r}; known: {', '.join(names_in(directory))}")
    return path


def load_profile_file(path: Path) -> Profile:
    return read_profile(path, Profile, ProfileError)


@cache
def load_profile(name: str) -> Profile:
    return load_profile_file(profile_path(PROFILE_DIR, name, "Modbus", ProfileError))


def profile_names() -> list[str]:
    return names_in(PROFILE_DIR)
