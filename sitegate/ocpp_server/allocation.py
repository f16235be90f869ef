"""Sharing the building's spare current among charging sessions: a pure function.

Rules, in order:
1. Headroom per phase is what the connection allows minus the base load (which excludes the
   chargers). No phase is ever given more than its headroom.
2. Admission: sessions are admitted by priority class (high first), then by arrival, as
   long as every phase they use can still give them the minimum current. The others are
   paused (0 A): a session never runs below the minimum, which chargers cannot do anyway.
3. What is left is filled class by class, and within a class max-min fairly (progressive
   filling: everybody's current rises together until a session hits its own maximum or one
   of its phases runs out).
4. Results are rounded down to 0.1 A, so rounding can never exceed a phase's headroom.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

STEP = Decimal("0.1")
_FINE = Decimal("0.000001")
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Demand:
    key: Hashable
    phases: frozenset[int]  # building phases 1..3 the session draws from
    max_current: Decimal
    priority: int = 0  # higher is served first
    order: int = 0  # arrival; earlier is admitted first within a class


def allocate(headroom: dict[int, Decimal], demands: Sequence[Demand],
             min_current: Decimal) -> dict[Hashable, Decimal]:
    """Current per session, A per phase; 0 means paused."""
    remaining = {p: max(headroom.get(p, ZERO), ZERO) for p in (1, 2, 3)}
    result: dict[Hashable, Decimal] = {d.key: ZERO for d in demands}
    ranked = sorted(demands, key=lambda d: (-d.priority, d.order))

    admitted: list[Demand] = []
    for d in ranked:
        floor = min(min_current, d.max_current)
        if d.max_current < min_current or not d.phases:
            continue  # cannot run at the minimum at all
        if all(remaining[p] >= floor for p in d.phases):
            for p in d.phases:
                remaining[p] -= floor
            result[d.key] = floor
            admitted.append(d)

    for prio in sorted({d.priority for d in admitted}, reverse=True):
        _fill([d for d in admitted if d.priority == prio], result, remaining)

    return {k: v.quantize(STEP, rounding=ROUND_FLOOR) for k, v in result.items()}


def _fill(group: list[Demand], result: dict[Hashable, Decimal],
          remaining: dict[int, Decimal]) -> None:
    active = [d for d in group if result[d.key] < d.max_current]
    while active:
        users = {p: sum(1 for d in active if p in d.phases) for p in (1, 2, 3)}
        # The largest equal raise every active session can take (floored, so never over).
        steps = [(remaining[p] / n).quantize(_FINE, rounding=ROUND_FLOOR)
                 for p, n in users.items() if n]
        steps += [d.max_current - result[d.key] for d in active]
        delta = min(steps)
        if delta > 0:
            for d in active:
                result[d.key] += delta
                for p in d.phases:
                    remaining[p] -= delta
        # Sessions at their maximum or on an exhausted phase are done.
        exhausted = {p for p, n in users.items()
                     if n and (remaining[p] / n).quantize(_FINE, rounding=ROUND_FLOOR) <= 0}
        still = [d for d in active if result[d.key] < d.max_current
                 and not (d.phases & exhausted)]
        if len(still) == len(active) and delta <= 0:
            break  # nothing moves any more
        active = still
