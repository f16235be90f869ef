"""What the demo building's main meter measures: its base load plus what the chargers draw.

The simulated main meter (``SimulatedMeter.currents``) asks ``Building.currents`` at each
step of the simulator's clock (4 times a second in the demo). The base load (apartments,
common areas) wanders slowly within ``site.BASE_LOAD``; the chargers write what they draw
now, per building phase, into ``drawing``. So load management reads on the main meter
exactly what the simulated cars take under the limits it pushed, as in a real building.
"""

from __future__ import annotations

import random
from decimal import Decimal

TENTH = Decimal("0.1")


class Building:
    def __init__(self, base_load: tuple[tuple[int, int], ...], seed: int = 1) -> None:
        self._rng = random.Random(seed)
        self._ranges = base_load
        self.base = [Decimal((lo + hi) / 2).quantize(TENTH) for lo, hi in base_load]
        self.drawing: dict[str, tuple[Decimal, tuple[int, ...]]] = {}  # cp -> (A, phases)

    def draw(self) -> list[Decimal]:
        """What the chargers draw now, A per phase L1..L3."""
        out = [Decimal(0)] * 3
        for amps, phases in self.drawing.values():
            for p in phases:
                out[p - 1] += amps
        return out

    def currents(self) -> list[Decimal]:
        """One step of the base load's random walk, plus the chargers: A per phase."""
        for i, (lo, hi) in enumerate(self._ranges):
            step = Decimal(str(round(self._rng.uniform(-0.2, 0.2), 1)))
            self.base[i] = min(max(self.base[i] + step, Decimal(lo)), Decimal(hi))
        return [b + d for b, d in zip(self.base, self.draw(), strict=True)]
