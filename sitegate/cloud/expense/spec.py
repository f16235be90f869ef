"""An accounting period as the operator defines it (TOML or JSON): dates, jurisdiction
profile, template, the units' areas and persons, heat cost allocators, and the cost
categories with their allocation keys. Validated whole; every error names its key.

The billing points, their meters (``medium`` heat or water), occupancy (tenant changes,
vacancy: the billing point's ``owner``) and the site's currency come from the site model.
"""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.expense.profiles import PROFILES, ProfileError, profile

MAX_UNITS = 5000
MAX_CATEGORIES = 100
Kind = Literal["heating", "hot_water", "water", "waste_water", "electricity", "maintenance",
               "caretaker", "insurance", "waste", "other"]
# allocation keys: by area, by metered consumption, equal, fixed per unit, by persons
Key = Literal["area", "heated_area", "heat", "water", "hot_water", "allocators", "equal",
              "fixed", "persons"]
CONSUMPTION_KEYS = ("heat", "water", "hot_water", "allocators")
BASE_KEYS = ("area", "heated_area", "equal", "persons")


class SpecError(ValueError):
    """The period definition is invalid; ``errors`` are ``key.path: message`` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid accounting period:\n  " + "\n  ".join(errors))
        self.errors = errors


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PeriodHead(_M):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,23}$")  # its invoices: expense:ID
    first: date = Field(alias="from")
    end: date = Field(alias="to")  # exclusive
    profile: str = "de-heizkostenv"
    # template: category kinds that must each be present exactly once
    require: list[Kind] = Field(default=[], max_length=10)
    cash_unit: Decimal | None = Field(default=None, gt=0)  # default: the site's


class Allocator(_M):
    """A heat cost allocator on one radiator: its units over the period, times its
    rating factor (radiator output and coupling), give the consumption it counts."""

    id: str = Field(min_length=1, max_length=64)
    rating: Decimal = Field(default=Decimal(1), gt=0, le=100)
    reading: Decimal | None = Field(default=None, ge=0, le=10**7)  # None: failed / not read


class Unit(_M):
    billing_point: str = Field(min_length=1, max_length=64)
    area_m2: Decimal | None = Field(default=None, gt=0, le=10**6)  # default: site model
    heated_area_m2: Decimal | None = Field(default=None, ge=0, le=10**6)  # default: area
    persons: int = Field(default=0, ge=0, le=1000)
    allocators: list[Allocator] = Field(default=[], max_length=200)
    # consumption of the previous period per key (heat, water, ...): an estimate's base
    previous: dict[Literal["heat", "water", "hot_water", "allocators"], Decimal] = {}


class Category(_M):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
    label: str = Field(max_length=80)
    kind: Kind = "other"
    group: str | None = Field(default=None, max_length=40)  # settlement group; default: kind
    key: Key
    consumption_share: Decimal | None = Field(default=None, ge=0, le=100)
    base_key: Key | None = None
    fixed_amount: Decimal | None = None  # key "fixed": per unit and period
    vat: Decimal = Field(default=Decimal(0), ge=0, le=100)
    # one boiler makes heating and hot water: the hot water's share of this category's
    # cost goes to the category named here, measured by ``hot_water_meter`` (a heat meter
    # on the hot-water circuit, kWh) or, without one, from the hot-water volume by the
    # profile's formula at ``hot_water_temperature``
    combined_with: str | None = None
    hot_water_meter: str | None = None
    hot_water_temperature: Decimal | None = Field(default=None, gt=10, lt=100)

    @property
    def settlement_group(self) -> str:
        return self.group or self.kind


class PeriodSpec(_M):
    period: PeriodHead
    units: list[Unit] = Field(default=[], max_length=MAX_UNITS)
    categories: list[Category] = Field(max_length=MAX_CATEGORIES)
    # site meters (water) that measure hot water
    hot_water_meters: list[str] = Field(default=[], max_length=MAX_UNITS)

    def category(self, cid: str) -> Category:
        return next(c for c in self.categories if c.id == cid)


def _check(spec: PeriodSpec, model: SiteModel | None) -> list[str]:
    err: list[str] = []
    p = spec.period
    if p.end <= p.first:
        err.append(f"period.to: {p.end} is not after from {p.first}")
    elif (p.end - p.first).days > 731:
        err.append("period.to: an accounting period is at most two years")
    if p.profile not in PROFILES:
        err.append(f"period.profile: unknown profile {p.profile!r}; one of "
                   f"{', '.join(sorted(PROFILES))}")
    ids = [c.id for c in spec.categories]
    for i, c in enumerate(spec.categories):
        where = f"categories[{i}]"
        if ids.count(c.id) > 1:
            err.append(f"{where}.id: duplicate id {c.id!r}")
        if c.consumption_share is not None:
            if c.key not in CONSUMPTION_KEYS:
                err.append(f"{where}.consumption_share: key {c.key!r} is not a consumption "
                           f"key ({', '.join(CONSUMPTION_KEYS)})")
            if c.base_key not in BASE_KEYS:
                err.append(f"{where}.base_key: a split needs a base key "
                           f"({', '.join(BASE_KEYS)})")
        elif c.base_key is not None:
            err.append(f"{where}.base_key: only with consumption_share")
        if (c.key == "fixed") != (c.fixed_amount is not None):
            err.append(f"{where}.fixed_amount: needed with key 'fixed', and only there")
        if c.combined_with is not None:
            if c.kind != "heating":
                err.append(f"{where}.combined_with: only a heating category is combined")
            if c.combined_with not in ids or c.combined_with == c.id:
                err.append(f"{where}.combined_with: unknown category {c.combined_with!r}")
        if p.profile in PROFILES and c.consumption_share is not None:
            prof = profile(p.profile)
            rng, rule = ((prof.heating, prof.heating_rule) if c.kind == "heating" else
                         (prof.hot_water, prof.hot_water_rule) if c.kind == "hot_water" else
                         (None, ""))
            if rng is not None:
                try:
                    rng.check(f"{where}.consumption_share", c.consumption_share, prof.id, rule)
                except ProfileError as exc:
                    err.append(str(exc))
    bps = [u.billing_point for u in spec.units]
    for i, u in enumerate(spec.units):
        if bps.count(u.billing_point) > 1:
            err.append(f"units[{i}].billing_point: {u.billing_point!r} listed twice")
    if model is not None:
        known = {b.id for b in model.billing_points}
        for i, u in enumerate(spec.units):
            if u.billing_point not in known:
                err.append(f"units[{i}].billing_point: unknown billing point "
                           f"{u.billing_point!r}")
        meters = {m.id: m for m in model.meters}
        for i, mid in enumerate(spec.hot_water_meters):
            if mid not in meters or meters[mid].medium != "water":
                err.append(f"hot_water_meters[{i}]: {mid!r} is not a water meter of the site")
        for i, c in enumerate(spec.categories):
            if c.hot_water_meter is not None and (
                    c.hot_water_meter not in meters
                    or meters[c.hot_water_meter].medium != "heat"):
                err.append(f"categories[{i}].hot_water_meter: {c.hot_water_meter!r} is not "
                           "a heat meter of the site")
    return err


def parse_spec(data: dict, model: SiteModel | None = None) -> PeriodSpec:
    try:
        spec = PeriodSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError([
            ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in e["loc"])
            .replace(".[", "[") + f": {e['msg']}" for e in exc.errors()]) from None
    errors = _check(spec, model)
    if errors:
        raise SpecError(errors)
    return spec


def load_spec_text(name: str, text: str, model: SiteModel | None = None) -> PeriodSpec:
    """A TOML (or JSON, by its name) period definition."""
    import json

    try:
        data = json.loads(text) if name.lower().endswith(".json") else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise SpecError([f"{name}: {exc}"]) from None
    if not isinstance(data, dict):
        raise SpecError([f"{name}: expected a table / object"])
    return parse_spec(data, model)


def spec_to_json(spec: PeriodSpec) -> dict:
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)
