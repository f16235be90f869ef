"""Received invoices per billing meter and the site's hierarchy they are distributed down:
the hierarchy's definition (checked against the site model), each node's meter per
energy, and the overcharge check (a unit price above the previous invoice's by more than
the node's threshold)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sitegate.cloud.billing.sitemodel import SiteModel, local_dt
from sitegate.cloud.expense.spec import SpecError

Energy = Literal["electricity", "heat", "water", "gas"]
MAX_NODES = 10_000
MAX_DEPTH = 8


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HNode(_M):
    id: str = Field(min_length=1, max_length=64)
    parent: str | None = None
    meters: dict[Energy, str] = {}  # a billing point's come from the site model
    alert_percent: Decimal | None = Field(default=None, ge=0, le=1000)
    # the tariff of the node's meter, per kWh / m³: what a received invoice's unit price is
    # checked against, and what a period not yet ended costs provisionally
    price: Decimal | None = Field(default=None, ge=0, le=10**6)


class Hierarchy(_M):
    nodes: list[HNode] = Field(max_length=MAX_NODES)

    def meter_of(self, node: HNode, energy: str, model: SiteModel, on: date) -> str | None:
        """The node's meter for ``energy``: named here, else the billing point's meter
        assigned on the day ``on`` (a replaced meter is the old one before the change)."""
        if energy in node.meters:
            return node.meters[energy]  # type: ignore[index]
        media = {m.id: m.medium for m in model.meters}
        for a in model.meter_assignments:
            if a.billing_point != node.id or media.get(a.meter) != energy:
                continue
            lo = local_dt(a.start, model.tz).date()
            hi = None if a.end is None else local_dt(a.end, model.tz).date()
            if lo <= on and (hi is None or on < hi):
                return a.meter
        return None

    def node_of_meter(self, meter: str, energy: str, model: SiteModel,
                      on: date) -> HNode | None:
        return next((n for n in self.nodes if self.meter_of(n, energy, model, on) == meter),
                    None)


def parse_hierarchy(data: dict, model: SiteModel) -> Hierarchy:
    try:
        h = Hierarchy.model_validate(data)
    except ValidationError as exc:
        raise SpecError([".".join(str(p) for p in e["loc"]) + f": {e['msg']}"
                         for e in exc.errors()]) from None
    err: list[str] = []
    ids = [n.id for n in h.nodes]
    meters = {m.id for m in model.meters}
    parents = {n.id: n.parent for n in h.nodes}
    for i, n in enumerate(h.nodes):
        if ids.count(n.id) > 1:
            err.append(f"nodes[{i}].id: duplicate id {n.id!r}")
        if n.parent is not None and n.parent not in parents:
            err.append(f"nodes[{i}].parent: unknown node {n.parent!r}")
        for energy, m in n.meters.items():
            if m not in meters:
                err.append(f"nodes[{i}].meters.{energy}: unknown meter {m!r}")
        depth, cur = 0, n.parent
        while cur is not None and depth <= MAX_DEPTH:
            cur, depth = parents.get(cur), depth + 1
        if depth > MAX_DEPTH:
            err.append(f"nodes[{i}]: deeper than {MAX_DEPTH} levels (or a cycle)")
    if err:
        raise SpecError(err)
    return h


def unit_price(row: dict[str, Any]) -> Decimal | None:
    c = Decimal(row["consumption"])
    return None if c == 0 else Decimal(row["amount"]) / c


def alerts(rows: Sequence[dict[str, Any]], threshold: dict[str, Decimal],
           tariff: dict[str, Decimal] | None = None) -> list[dict]:
    """Invoices whose unit price exceeds the meter's tariff price, or without one the same
    meter's previous invoice's, by more than the meter's threshold (percent)."""
    out = []
    prev: dict[str, dict[str, Any]] = {}
    tariff = tariff or {}
    for r in sorted(rows, key=lambda r: (r["meter"], r["first"], r["id"])):
        before = prev.get(r["meter"])
        prev[r["meter"]] = r
        limit = threshold.get(r["meter"])
        if limit is None:
            continue
        p0 = tariff.get(r["meter"]) or (unit_price(before) if before is not None else None)
        p1 = unit_price(r)
        if p0 is None or p1 is None or p0 == 0:
            continue
        rise = (p1 / p0 - 1) * 100
        if rise > limit:
            out.append({"id": r["id"], "meter": r["meter"], "from": r["first"],
                        "to": r["end"], "unit_price": format(p1.quantize(Decimal("0.0001")), "f"),
                        "compared_with": "tariff" if r["meter"] in tariff else
                        "previous invoice",
                        "previous_unit_price": format(p0.quantize(Decimal("0.0001")), "f"),
                        "rise_percent": format(rise.quantize(Decimal("0.1")), "f"),
                        "threshold_percent": format(limit, "f")})
    return out
