"""Each unit's metered consumption per key over the period, from the site model's meters
(``medium`` heat or water; the period names its hot-water meters) or its heat cost
allocators; divided over the unit's occupants by the readings at the moves, or, where
none was taken, by degree-day weights (heating) or days (water). A failed or missing
meter is estimated from the unit's previous period or from comparable units (the
average per m²), and flagged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sitegate.cloud.billing.periods import local_midnight
from sitegate.cloud.billing.sitemodel import SiteModel, local_dt, nearest_quarter
from sitegate.cloud.expense.registers import Readings, value_at
from sitegate.cloud.expense.shares import Segment, weights
from sitegate.cloud.expense.spec import PeriodSpec, Unit

HEATING_KEYS = ("heat", "allocators")
CONSUMPTION_KEYS_SET = frozenset({"heat", "water", "hot_water", "allocators"})
KEY_UNIT = {"heat": "kWh", "water": "m³", "hot_water": "m³", "allocators": "units",
            "area": "m²", "heated_area": "m²", "equal": "units", "persons": "persons",
            "fixed": "units"}


class RunError(ValueError):
    """The statement cannot be made as asked; nothing is stored. The message says why."""


@dataclass
class Measured:
    """One unit's consumption for one key; ``segments`` per occupant (None until split)."""

    total: Fraction | None
    segments: list[Fraction] = field(default_factory=list)
    split: str = "readings"  # readings | degree_days | days
    estimated: str | None = None  # previous_period | comparable_units
    meters: list[dict[str, Any]] = field(default_factory=list)


def _ts(d: date, tz: ZoneInfo) -> int:
    return local_midnight(d, tz)


def meters_for(model: SiteModel, spec: PeriodSpec, bp: str, key: str,
               first: date, end: date) -> list[tuple[str, date, date]]:
    """(meter, from, to) of the billing point's meters for ``key`` inside the period."""
    media = {m.id: m.medium for m in model.meters}
    hot = set(spec.hot_water_meters)
    out = []
    for a in model.meter_assignments:
        if a.billing_point != bp:
            continue
        medium = media.get(a.meter)
        role = ("hot_water" if a.meter in hot else "water") if medium == "water" else medium
        if role != key:
            continue
        lo = max(local_dt(a.start, model.tz).date(), first)
        hi = end if a.end is None else min(local_dt(a.end, model.tz).date(), end)
        if lo < hi:
            out.append((a.meter, lo, hi))
    return sorted(out, key=lambda m: (m[1], m[0]))


def measure(model: SiteModel, spec: PeriodSpec, unit: Unit, key: str,
            segs: list[Segment], readings: Mapping[str, Readings],
            table: tuple[Fraction, ...]) -> Measured:
    first, end = spec.period.first, spec.period.end
    how = "degree_days" if key in HEATING_KEYS else "days"
    if key == "allocators":
        if not unit.allocators or any(a.reading is None for a in unit.allocators):
            return Measured(None, split=how, meters=[
                {"allocator": a.id, "rating": str(a.rating),
                 "reading": None if a.reading is None else str(a.reading)}
                for a in unit.allocators])
        total = sum((Fraction(a.reading) * Fraction(a.rating) for a in unit.allocators
                     if a.reading is not None), Fraction(0))
        # read once a year: divided over the occupants by degree-day weights
        return Measured(total, _by_weights(total, segs, how, table), how, meters=[
            {"allocator": a.id, "rating": str(a.rating), "reading": str(a.reading)}
            for a in unit.allocators])
    tz = model.tz
    tol = model.site.handover_tolerance_minutes * 60
    found = meters_for(model, spec, unit.billing_point, key, first, end)
    if not found:
        return Measured(None, split=how, meters=[{"meter": None, "problem": "no meter"}])
    total = Fraction(0)
    per_seg = [Fraction(0)] * len(segs)
    by_readings = True
    info = []
    failed = False
    for meter, lo, hi in found:
        rows = readings.get(meter, ())
        a = value_at(rows, _ts(lo, tz), tol)
        b = value_at(rows, _ts(hi, tz), tol)
        m: dict[str, Any] = {"meter": meter, "from": lo.isoformat(), "to": hi.isoformat()}
        if a is None or b is None or b.value < a.value:
            m["problem"] = ("no reading around " + (lo if a is None else hi).isoformat()
                            if a is None or b is None else
                            f"register went backwards ({a.value} -> {b.value})")
            info.append(m)
            failed = True
            continue
        m.update({"start": str(a.value), "start_method": a.method,
                  "end": str(b.value), "end_method": b.method,
                  "consumption": str(b.value - a.value)})
        info.append(m)
        total += Fraction(b.value) - Fraction(a.value)
        # the moves inside this meter's window: readings at the move, never interpolated
        for i, s in enumerate(segs):
            s_lo, s_hi = max(s.first, lo), min(s.end, hi)
            if s_lo >= s_hi:
                continue
            va = a if s_lo == lo else _move_value(rows, segs, s_lo, tz, tol)
            vb = b if s_hi == hi else _move_value(rows, segs, s_hi, tz, tol)
            if va is None or vb is None:
                by_readings = False
                continue
            per_seg[i] += Fraction(vb.value) - Fraction(va.value)
            if s_lo != lo:
                m.setdefault("moves", []).append({"at": s_lo.isoformat(), "value": str(va.value),
                                                  "method": va.method})
    if failed:
        return Measured(None, split=how, meters=info)
    if by_readings and all(x >= 0 for x in per_seg):
        return Measured(total, per_seg, "readings", meters=info)
    return Measured(total, _by_weights(total, segs, how, table), how, meters=info)


def _move_value(rows: Readings, segs: list[Segment], day: date, tz: ZoneInfo, tol: int):
    """The register at the move starting on ``day`` (its noted time, else midnight)."""
    seg = next((s for s in segs if s.first == day), None)
    at = seg.at_start if seg is not None else None
    ts = (int(nearest_quarter(at).replace(tzinfo=tz).timestamp()) if at is not None
          else local_midnight(day, tz))
    return value_at(rows, ts, tol, interpolate=False)


def _by_weights(total: Fraction, segs: list[Segment], how: str,
                table: tuple[Fraction, ...]) -> list[Fraction]:
    w = weights(segs, how, table)
    s = sum(w, Fraction(0))
    return [total * x / s if s else Fraction(0) for x in w]


def estimate(measured: dict[str, Measured], units: dict[str, Unit], key: str,
             area_of: Mapping[str, Fraction], segs: Mapping[str, list[Segment]],
             table: tuple[Fraction, ...]) -> list[str]:
    """Fill failed units' consumption: the unit's previous period for this key, else the
    measured units' average per m² times its area. Returns the estimated units."""
    ok = {u: m for u, m in measured.items() if m.total is not None}
    done = []
    for u, m in measured.items():
        if m.total is not None:
            continue
        prev = units[u].previous.get(key)
        if prev is not None:
            m.total, m.estimated = Fraction(prev), "previous_period"
        else:
            area = sum((area_of[x] for x in ok), Fraction(0))
            if not ok or area == 0:
                raise RunError(f"no {key} consumption measured for any unit: nothing to "
                               f"estimate {u} from")
            m.total = sum((x.total for x in ok.values()), Fraction(0)) / area * area_of[u]
            m.estimated = "comparable_units"
        how = "degree_days" if key in HEATING_KEYS else "days"
        m.segments, m.split = _by_weights(m.total, segs[u], how, table), how
        done.append(u)
    return done


def as_decimal(x: Fraction, places: int = 3) -> Decimal:
    q = Decimal(1).scaleb(-places)
    return (Decimal(x.numerator) / Decimal(x.denominator)).quantize(q)
