"""Service-charge reconciliation by type, over a site's targets (billing points): a
non-energy charge is split equally; water by each target's water meter, which every
target must have with consumption for the whole period (else an error naming the target,
nothing estimated); heating goes through the statement run (its rules: split, profile,
estimates)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sitegate.cloud.billing.periods import local_midnight
from sitegate.cloud.billing.sitemodel import SiteModel, local_dt
from sitegate.cloud.expense.allocate import split_exact
from sitegate.cloud.expense.consumption import RunError
from sitegate.cloud.expense.registers import Readings, value_at

TYPES = ("other", "water", "heating")


def water_consumption(model: SiteModel, target: str, first: date, end: date,
                      readings: Mapping[str, Readings]) -> Fraction:
    """The target's water meters over [first, end): they must cover the whole period,
    with a reading (or one to interpolate from) at each edge of each meter's stretch."""
    media = {m.id: m.medium for m in model.meters}
    spans = sorted((max(local_dt(a.start, model.tz).date(), first),
                    end if a.end is None else min(local_dt(a.end, model.tz).date(), end),
                    a.meter)
                   for a in model.meter_assignments
                   if a.billing_point == target and media.get(a.meter) == "water")
    spans = [s for s in spans if s[0] < s[1]]
    if not spans:
        raise RunError(f"{target} has no water meter: water is reconciled by every "
                       "target's meter")
    cur, total = first, Fraction(0)
    tol = model.site.handover_tolerance_minutes * 60
    for lo, hi, meter in spans:
        if lo > cur:
            break
        rows = readings.get(meter, ())
        a, b = (value_at(rows, local_midnight(d, model.tz), tol) for d in (lo, hi))
        if a is None or b is None:
            raise RunError(f"{target}: water meter {meter} has no reading around "
                           f"{lo if a is None else hi}: no consumption for the whole period")
        total += Fraction(b.value) - Fraction(a.value)
        cur = max(cur, hi)
    if cur < end:
        raise RunError(f"{target}: its water meters do not cover {cur} .. {end}: no "
                       "consumption for the whole period")
    return total


def reconcile(model: SiteModel, kind: str, amount: Decimal, targets: Sequence[str],
              first: date, end: date, readings: Mapping[str, Readings]) -> dict[str, Any]:
    if kind not in TYPES:
        raise RunError(f"unknown reconciliation type {kind!r}; one of {', '.join(TYPES)}")
    if kind == "heating":
        raise RunError("heating is reconciled by the statement rules: define an accounting "
                       "period and run it ('sitegate-cloud expense run')")
    if not targets:
        raise RunError("no targets to reconcile over")
    if kind == "other":
        weights = {t: Fraction(1) for t in targets}
    else:
        weights = {t: water_consumption(model, t, first, end, readings) for t in targets}
    parts = split_exact(amount, weights)
    return {"type": kind, "amount": format(amount, "f"), "from": first.isoformat(),
            "to": end.isoformat(),
            "targets": [{"target": t, "basis": str(weights[t]) if kind == "water" else "1",
                         "amount": format(parts[t], "f")} for t in targets]}
