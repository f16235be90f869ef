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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _ints(xs: Sequence[int]) -> np.ndarray:
    return np.asarray(xs, dtype=np.int64)


def totals(consumers: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """Sum of all consumers per interval."""
    out = np.zeros(n, dtype=np.int64)
    for c in consumers:
        out += _ints(c)
    return out


def solar_used(total: Sequence[int], grid_import: Sequence[int]) -> np.ndarray:
    """Locally produced energy consumed per interval, clamped to [0, total]."""
    t = _ints(total)
    return np.minimum(t, np.maximum(0, t - _ints(grid_import)))


class Allocator:
    """Hands out each consumer's solar share, consumers taken in a fixed order.

    Per interval, vectorised over the intervals: the running sum ``cum`` and the floor
    ``floor(cum * solar / total)`` handed out so far. Where the product could pass int64
    (a site drawing more than ~3 MWh a quarter hour) the same arithmetic runs on Python
    ints (object arrays): exact either way."""

    def __init__(self, total: Sequence[int], solar: Sequence[int]) -> None:
        self.total = _ints(total)
        self.solar = _ints(solar)
        big = len(self.total) and max(int(np.abs(self.total).max()),
                                      int(np.abs(self.solar).max())) >= 2**31 - 1
        dtype = object if big else np.int64
        self._tot = np.where(self.total != 0, self.total, 1).astype(dtype)
        self._sol = np.where(self.total != 0, self.solar, 0).astype(dtype)
        self._cum = np.zeros(len(self.total), dtype=dtype)
        self._floor = np.zeros(len(self.total), dtype=dtype)

    def share(self, consumption: Sequence[int]) -> np.ndarray:
        c = _ints(consumption)
        self._cum += c.astype(self._cum.dtype) if self._cum.dtype == object else c
        f = self._cum * self._sol // self._tot
        out = f - self._floor
        self._floor = f
        return out.astype(np.int64) if out.dtype == object else out


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
    c, s, i, e = (int(np.sum(_ints(x))) for x in (total, solar, grid_import, grid_export))
    ch = int(np.sum(_ints(charge))) if charge is not None else 0
    dis = int(np.sum(_ints(discharge))) if discharge is not None else 0
    return Reconciliation(
        consumption=c, solar=s, grid=c - s, grid_import=i, grid_export=e,
        battery_charge=ch, battery_discharge=dis,
        production_derived=c - i + e + ch - dis,
        production_metered=int(np.sum(_ints(production))) if production is not None else None,
    )
