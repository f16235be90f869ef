"""Solar self-consumption community: allocation per 15-min interval.

From the grid-connection meter, per interval: ``solar_used = sum(consumers) - import``
(PV used directly plus battery discharge; never below 0 nor above the consumption),
``autonomy = solar_used / sum(consumers)``, each consumer's solar part is its
consumption x autonomy, the rest is grid. Allocating per interval (not once on monthly
sums) is what the rules require: a consumer who uses power at noon gets the sun.

Shares are exact integers (micro-kWh) that add up to ``solar_used`` exactly: consumers are
taken in a fixed order and each gets floor(C_j*S/T) - floor(C_{j-1}*S/T), where C_j is
the running sum of consumption; the floors telescope to S. No sorting, one pass per
consumer, so a site of thousands of billing points streams through it.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass


def totals(consumers: Sequence[Sequence[int]], n: int) -> array:
    """Sum of all consumers per interval."""
    if not consumers:
        return array("q", bytes(8 * n))
    return array("q", map(sum, zip(*consumers, strict=True)))  # column sums, in C


def solar_used(total: Sequence[int], grid_import: Sequence[int]) -> array:
    """Locally produced energy consumed per interval, clamped to [0, total]."""
    return array("q", (min(t, max(0, t - g)) for t, g in zip(total, grid_import, strict=True)))


class Allocator:
    """Hands out each consumer's solar share, consumers taken in a fixed order."""

    def __init__(self, total: Sequence[int], solar: Sequence[int]) -> None:
        self.total = total
        self.solar = solar
        n = len(total)
        self._cum = array("q", bytes(8 * n))
        self._floor = array("q", bytes(8 * n))

    def share(self, consumption: Sequence[int]) -> array:
        n = len(self.total)
        out = array("q", bytes(8 * n))
        cum, fl, tot, sol = self._cum, self._floor, self.total, self.solar
        for i in range(n):
            c = consumption[i]
            if not c or not sol[i]:
                cum[i] += c
                continue
            cum[i] += c
            f = cum[i] * sol[i] // tot[i]
            out[i] = f - fl[i]
            fl[i] = f
        return out


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """Site totals (micro-kWh): what the consumers used against the meters."""

    consumption: int
    solar: int
    grid: int
    grid_import: int
    grid_export: int
    battery_charge: int
    battery_discharge: int
    production_derived: int  # consumption - import + export + charge - discharge
    production_metered: int | None

    @property
    def unexplained_import(self) -> int:
        """Import the consumers did not use (losses, unmetered loads); 0 when all metered."""
        return self.grid_import - self.grid

    @property
    def production_difference(self) -> int | None:
        if self.production_metered is None:
            return None
        return self.production_metered - self.production_derived


def reconcile(
    total: Sequence[int],
    solar: Sequence[int],
    grid_import: Sequence[int],
    grid_export: Sequence[int],
    charge: Sequence[int] | None = None,
    discharge: Sequence[int] | None = None,
    production: Sequence[int] | None = None,
) -> Reconciliation:
    c, s, i, e = sum(total), sum(solar), sum(grid_import), sum(grid_export)
    ch = sum(charge) if charge is not None else 0
    dis = sum(discharge) if discharge is not None else 0
    return Reconciliation(
        consumption=c, solar=s, grid=c - s, grid_import=i, grid_export=e,
        battery_charge=ch, battery_discharge=dis,
        production_derived=c - i + e + ch - dis,
        production_metered=sum(production) if production is not None else None,
    )
