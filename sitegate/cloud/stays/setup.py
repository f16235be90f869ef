"""A site's accommodation setup, imported from a TOML file: unit types, units with their
utility meters, reservation categories (eligible for energy billing or not) and rates.
Every error names its key (``units[2].meters[0].rate: unknown rate 'x'``)."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sitegate.cloud.billing.sitemodel import SiteModelError

Utility = Literal["electricity", "gas", "water"]
UNIT_OF = {"electricity": "kWh", "gas": "m³", "water": "m³"}
LABEL_OF = {"electricity": "Strom", "gas": "Gas", "water": "Wasser"}
# A reading that grows faster than this per day is a typing error until proven otherwise
# (a chalet's heat pump in winter: ~60 kWh/day; a pitch's tap: well under 1 m³/day).
MAX_PER_DAY = {"electricity": Decimal(300), "gas": Decimal(30), "water": Decimal(10)}
ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitType(_M):
    id: str = Field(pattern=ID)
    name: str = Field(max_length=128)


class StayMeter(_M):
    """A unit's utility meter: read by hand (bulk lists) or by the gateway."""

    id: str = Field(pattern=ID)  # within the unit: "power", "water"
    utility: Utility
    rate: str | None = None  # a rate's id; default: the unit type's or the site's rate
    gateway: str | None = None  # readings at arrival and departure from the gateway
    meter_id: str | None = None  # the gateway's meter id (default: the unit id)
    quantity: str = "1-0:1.8.0"

    @property
    def unit(self) -> str:
        return UNIT_OF[self.utility]


class Unit(_M):
    id: str = Field(pattern=ID)
    type: str
    name: str = Field(max_length=128)
    meters: list[StayMeter] = Field(default=[], max_length=16)


class Category(_M):
    id: str = Field(pattern=ID)
    name: str = Field(default="", max_length=128)
    eligible: bool  # billed for energy at check-out, or not (all-inclusive, staff, ...)


class Rate(_M):
    """Price per unit of usage, the fixed administration cost per stay, and the VAT."""

    id: str = Field(pattern=ID)
    utility: Utility
    unit_type: str | None = None  # only units of this type (else: every unit)
    label: str | None = Field(default=None, max_length=64)
    price: Decimal = Field(ge=0, le=1000)  # per kWh or m³
    admin_fee: Decimal = Field(default=Decimal(0), ge=0, le=10_000)  # per stay and utility
    vat: Decimal = Field(default=Decimal("8.1"), ge=0, le=100)
    vat_category: str | None = None  # the site model's dated rate of this category
    max_per_day: Decimal | None = Field(default=None, gt=0)  # plausibility of a reading


class StaySetup(_M):
    unit_types: list[UnitType] = Field(max_length=1000)
    units: list[Unit] = Field(max_length=20_000)
    categories: list[Category] = Field(max_length=1000)
    rates: list[Rate] = Field(max_length=1000)

    @cached_property
    def _by_id(self) -> dict[str, Unit]:  # a park has thousands of units: no linear search
        return {u.id: u for u in self.units}

    def unit(self, unit_id: str) -> Unit | None:
        return self._by_id.get(unit_id)

    def rate_for(self, unit: Unit, meter: StayMeter) -> Rate | None:
        """The meter's named rate, else the rate of its utility for the unit's type, else
        the rate of its utility for every type."""
        if meter.rate is not None:
            return next((r for r in self.rates if r.id == meter.rate), None)
        for want in (unit.type, None):
            for r in self.rates:
                if r.utility == meter.utility and r.unit_type == want:
                    return r
        return None

    def max_per_day(self, unit: Unit, meter: StayMeter) -> Decimal:
        r = self.rate_for(unit, meter)
        return r.max_per_day if r and r.max_per_day else MAX_PER_DAY[meter.utility]

    def eligible(self, category: str) -> bool:
        return any(c.id == category and c.eligible for c in self.categories)


def _check(s: StaySetup, vat_categories: set[str]) -> list[str]:
    err: list[str] = []
    for section in ("unit_types", "units", "categories", "rates"):
        seen: set[str] = set()
        for i, it in enumerate(getattr(s, section)):
            if it.id in seen:
                err.append(f"{section}[{i}].id: duplicate id {it.id!r}")
            seen.add(it.id)
    types = {t.id for t in s.unit_types}
    rates = {r.id: r for r in s.rates}
    for i, u in enumerate(s.units):
        if u.type not in types:
            err.append(f"units[{i}].type: unknown unit type {u.type!r}")
        ids = [m.id for m in u.meters]
        for j, m in enumerate(u.meters):
            if ids.index(m.id) != j:
                err.append(f"units[{i}].meters[{j}].id: duplicate meter {m.id!r}")
            if m.rate is not None and m.rate not in rates:
                err.append(f"units[{i}].meters[{j}].rate: unknown rate {m.rate!r}")
            elif m.rate is not None and rates[m.rate].utility != m.utility:
                err.append(f"units[{i}].meters[{j}].rate: rate {m.rate!r} is for "
                           f"{rates[m.rate].utility}, the meter measures {m.utility}")
            elif s.rate_for(u, m) is None:
                err.append(f"units[{i}].meters[{j}]: no rate for {m.utility} "
                           f"(unit type {u.type!r})")
    for i, r in enumerate(s.rates):
        if r.unit_type is not None and r.unit_type not in types:
            err.append(f"rates[{i}].unit_type: unknown unit type {r.unit_type!r}")
        if r.vat_category is not None and r.vat_category not in vat_categories:
            err.append(f"rates[{i}].vat_category: no vat_rates of category "
                       f"{r.vat_category!r} in the site model")
    return err


def parse_setup(data: dict, vat_categories: set[str] = frozenset()) -> StaySetup:  # type: ignore[assignment]
    """Validate plain data (a parsed TOML document); SiteModelError lists every problem."""
    try:
        setup = StaySetup.model_validate(data)
    except ValidationError as exc:
        raise SiteModelError([
            ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in e["loc"])
            .replace(".[", "[") + f": {e['msg']}" for e in exc.errors()]) from None
    if errors := _check(setup, set(vat_categories)):
        raise SiteModelError(errors)
    return setup


MAX_FILE = 4 * 1024 * 1024


def read_setup_file(path: str | Path) -> dict:
    p = Path(path)
    if p.stat().st_size > MAX_FILE:
        raise SiteModelError([f"{p.name}: larger than {MAX_FILE} bytes"])
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SiteModelError([f"{p.name}: {exc}"]) from None


def setup_to_json(s: StaySetup) -> dict:
    return s.model_dump(mode="json", exclude_none=True)
