"""Reservations: a year-round (parent) reservation on a unit, usually 1 January to
31 December, with its guest or owner, and the stays (sub-reservations) inside it. Dates
are the site's local dates; ``to`` is the departure day (a parent: its last day)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sitegate.cloud.billing.sitemodel import Address, SiteModelError
from sitegate.cloud.stays.setup import ID, StaySetup

Status = Literal["reserved", "checked_in", "checked_out", "cancelled"]
STATUSES: tuple[str, ...] = ("reserved", "checked_in", "checked_out", "cancelled")
MAX_RESERVATIONS = 50_000


class Guest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=128)
    email: str | None = Field(default=None, max_length=254)
    address: Address | None = None


class Reservation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    id: str = Field(pattern=ID)
    unit: str | None = None  # a stay: its parent's unit when omitted
    parent: str | None = None  # None: a parent (year-round) reservation
    status: Status = "reserved"
    category: str | None = None  # a stay: its parent's when omitted
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    guest: Guest | None = None  # a stay: its parent's when omitted
    account: str | None = Field(default=None, pattern=ID)  # the guest's id in accounting
    deposit: Decimal = Field(default=Decimal(0), ge=0, le=1_000_000, decimal_places=2)

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


def _loc(e: dict[str, Any]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in e["loc"]).replace(
        ".[", "[")


def parse_reservations(items: Any, setup: StaySetup,
                       existing: dict[str, Reservation]) -> list[Reservation]:
    """New or changed reservations checked against the setup, each other and the stored
    ones (``existing``, by id); SiteModelError names every problem by its index."""
    if not isinstance(items, list):
        raise SiteModelError(["reservations: expected a list"])
    if len(items) > MAX_RESERVATIONS:
        raise SiteModelError([f"reservations: {len(items)}, more than {MAX_RESERVATIONS}"])
    err: list[str] = []
    out: list[tuple[int, Reservation]] = []
    for i, it in enumerate(items):
        try:
            out.append((i, Reservation.model_validate(it)))
        except ValidationError as exc:
            err += [f"reservations[{i}].{_loc(e)}: {e['msg']}" for e in exc.errors()]
    if err:
        raise SiteModelError(err)
    new = {r.id: r for _, r in out}
    every = {**existing, **new}
    seen: set[str] = set()
    resolved = []
    for i, r in out:
        p = f"reservations[{i}]"
        if r.id in seen:
            err.append(f"{p}.id: duplicate id {r.id!r}")
        seen.add(r.id)
        if r.end < r.start:
            err.append(f"{p}.to: {r.end} is before from {r.start}")
        if r.parent is None:
            if r.unit is None or setup.unit(r.unit) is None:
                err.append(f"{p}.unit: unknown unit {r.unit!r}")
            if r.category is None:
                err.append(f"{p}.category: a parent reservation needs a category")
            if r.guest is None:
                err.append(f"{p}.guest: a parent reservation needs its guest or owner")
        else:
            parent = every.get(r.parent)
            if parent is None or parent.parent is not None:
                err.append(f"{p}.parent: no parent reservation {r.parent!r}")
                continue
            if r.unit is not None and r.unit != parent.unit:
                err.append(f"{p}.unit: {r.unit!r} is not the parent's unit {parent.unit!r}")
            if r.start < parent.start or r.end > parent.end:
                err.append(f"{p}: {r.start}..{r.end} is not inside the parent reservation "
                           f"{parent.id} ({parent.start}..{parent.end})")
            r = r.model_copy(update={"unit": parent.unit,
                                     "category": r.category or parent.category,
                                     "guest": r.guest or parent.guest})
        if r.category is not None and r.category not in {c.id for c in setup.categories}:
            err.append(f"{p}.category: unknown category {r.category!r}")
        resolved.append((i, r))
    every = {**existing, **{r.id: r for _, r in resolved}}
    for i, r in resolved:  # stays of one parent (or parents of one unit) never overlap
        for o in every.values():
            if (o.id != r.id and o.parent == r.parent and o.unit == r.unit
                    and "cancelled" not in (o.status, r.status)
                    and o.start < r.end and r.start < o.end):
                err.append(f"reservations[{i}]: {r.start}..{r.end} overlaps reservation "
                           f"{o.id} ({o.start}..{o.end})")
                break
    if err:
        raise SiteModelError(err)
    return [r for _, r in resolved]


def to_json(r: Reservation) -> dict[str, Any]:
    return r.model_dump(mode="json", by_alias=True, exclude_none=True)
