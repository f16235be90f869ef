"""A tenant's electricity by local day, split into solar and grid: the invoice's chart.

Sums of the same per-interval values the energy lines are billed from (micro-kWh), so the
chart adds up to the lines; only a stay's own intervals count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from sitegate.cloud.billing.document import Day
from sitegate.cloud.billing.periods import STEP, Grid, local_midnight
from sitegate.cloud.billing.units import units_to_kwh


def day_bounds(grid: Grid) -> list[tuple[date, int, int]]:
    """Each local day of the grid as (day, first interval, end interval); DST days have
    92 or 100 intervals."""
    out = []
    day = grid.local(0).date()
    i0 = 0
    while i0 < grid.n:
        nxt = day + timedelta(days=1)
        i1 = min(grid.n, (local_midnight(nxt, grid.tz) - grid.start) // STEP)
        out.append((day, i0, i1))
        day, i0 = nxt, i1
    return out


@dataclass(slots=True)
class Daily:
    """Per account, per day: [solar, consumption] in micro-kWh."""

    days: list[tuple[date, int, int]]
    by_account: dict[str, dict[date, list[int]]] = field(default_factory=dict)

    def add(self, account: str, solar: np.ndarray, consumption: np.ndarray, i0: int,
            i1: int) -> None:
        acc = self.by_account.setdefault(account, {})
        cut = [(day, max(d0, i0), min(d1, i1)) for day, d0, d1 in self.days
               if max(d0, i0) < min(d1, i1)]
        if not cut:
            return
        # the stay's days summed in one C pass each (int64: no int32 sum can overflow)
        starts = [lo for _, lo, _ in cut]
        end = cut[-1][2]
        s = np.add.reduceat(solar[:end], starts, dtype=np.int64).tolist()
        c = np.add.reduceat(consumption[:end], starts, dtype=np.int64).tolist()
        for k, (day, _, _) in enumerate(cut):
            row = acc.setdefault(day, [0, 0])
            row[0] += s[k]
            row[1] += c[k]

    def chart(self, account: str) -> tuple[Day, ...]:
        """The invoice's chart: one row a day, exact kWh."""
        return tuple(Day(d, units_to_kwh(s), units_to_kwh(c - s))
                     for d, (s, c) in sorted(self.by_account.get(account, {}).items()))
