"""A heat or water meter's register at an instant, from its readings (the gateway's and
those entered by hand, merged by the billing core): exact where a reading sits on the
instant, else the nearest within a tolerance, else (period edges only) interpolated
between the readings around it and flagged; None when there is nothing on one side."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

Readings = Sequence[tuple[int, Decimal]]  # (epoch s, register value), in time order


@dataclass(frozen=True, slots=True)
class At:
    value: Decimal
    method: str  # recorded | nearest | interpolated
    at: int  # the reading's own instant (nearest), else the instant asked for

    @property
    def estimated(self) -> bool:
        return self.method == "interpolated"


def value_at(rows: Readings, ts: int, tolerance: int,
             interpolate: bool = True) -> At | None:
    times = [t for t, _ in rows]
    j = bisect_left(times, ts)
    if j < len(rows) and times[j] == ts:
        return At(rows[j][1], "recorded", ts)
    near = [(abs(times[k] - ts), k) for k in (j - 1, j)
            if 0 <= k < len(rows) and abs(times[k] - ts) <= tolerance]
    if near:
        _, k = min(near)
        return At(rows[k][1], "nearest", times[k])
    if interpolate and 0 < j < len(rows):
        (t0, v0), (t1, v1) = rows[j - 1], rows[j]
        v = Fraction(v0) + (Fraction(v1) - Fraction(v0)) * Fraction(ts - t0, t1 - t0)
        q = (Decimal(v.numerator) / Decimal(v.denominator)).quantize(Decimal("0.000001"))
        return At(q, "interpolated", ts)
    return None
