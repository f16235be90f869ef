"""Interval consumption from cumulative registers.

Readings are (epoch seconds, micro-kWh) pairs of one register. The register is cleaned
(rollover unwrapped, values going backwards flagged and dropped so nothing is counted
twice), then read at every grid boundary: exact where a reading sits on it, linearly
interpolated between its neighbours otherwise (flagged estimated), unknown without one.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sitegate.cloud.billing.periods import STEP
from sitegate.cloud.billing.units import units_to_kwh

ESTIMATED = "estimated"
# A register rising faster than this is a garbage value (a float32 read as a register, a
# transmission error), not energy: left out and reported, so one bad stored value can
# neither bill a trillion kWh nor overflow the int64 sums. 100 MW is beyond any building.
MAX_KW = 100_000
MAX_RATE = MAX_KW * 10**6  # micro-kWh per hour
MISSING = "missing"


@dataclass(slots=True)
class Issue:
    kind: str  # backwards | rollover | implausible | estimated | missing | no_meter | ...
    meter: str
    ts: int
    detail: str = ""


@dataclass(slots=True)
class Series:
    """Consumption per interval (micro-kWh) with the flagged intervals."""

    values: array
    flags: dict[int, str] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    splits: dict[int, dict[str, Any]] = field(default_factory=dict)  # ts -> how it was split


def clean_register(
    readings: Iterable[tuple[int, int]], meter: str, rollover: int | None = None
) -> tuple[list[tuple[int, int]], list[Issue]]:
    """Sorted, unwrapped, monotonic anchors; a drop of more than half the register's
    range is a rollover, any other drop is a fault (flagged, the reading is not used), and
    so is a rise faster than MAX_KW."""
    anchors: list[tuple[int, int]] = []
    issues: list[Issue] = []
    offset = 0
    for ts, v in sorted(readings):
        if anchors and ts == anchors[-1][0]:
            continue  # duplicate delivery of the same instant
        v += offset
        if anchors and v < anchors[-1][1]:
            if rollover and anchors[-1][1] - v > rollover // 2:
                offset += rollover
                v += rollover
                issues.append(Issue("rollover", meter, ts))
            else:
                issues.append(Issue("backwards", meter, ts, f"{v - offset} < {anchors[-1][1]}"))
                continue
        elif anchors and (v - anchors[-1][1]) * 3600 > MAX_RATE * (ts - anchors[-1][0]):
            issues.append(Issue("implausible", meter, ts,
                                f"{units_to_kwh(v - offset)} kWh is a rise of more than "
                                f"{MAX_KW} kW since the reading before: not used"))
            continue
        anchors.append((ts, v))
    return anchors, issues


def register_at(
    anchors: Sequence[tuple[int, int]], start: int, n: int
) -> tuple[list[int | None], set[int]]:
    """Register value at each of the n+1 boundaries start + k*STEP, and the estimated ones."""
    out: list[int | None] = []
    estimated: set[int] = set()
    j, m = 0, len(anchors)
    for k in range(n + 1):
        t = start + k * STEP
        while j < m and anchors[j][0] < t:
            j += 1
        if j < m and anchors[j][0] == t:
            out.append(anchors[j][1])
        elif 0 < j < m:
            (t0, v0), (t1, v1) = anchors[j - 1], anchors[j]
            out.append(v0 + (v1 - v0) * (t - t0) // (t1 - t0))
            estimated.add(k)
        else:
            out.append(None)
    return out, estimated


def interval_consumption(
    readings: Iterable[tuple[int, int]],
    start: int,
    n: int,
    meter: str,
    rollover: int | None = None,
) -> Series:
    """Consumption of each of n intervals from ``start``; unknown intervals count 0."""
    anchors, issues = clean_register(readings, meter, rollover)
    at, estimated = register_at(anchors, start, n)
    values = array("q", bytes(8 * n))
    flags: dict[int, str] = {}
    for i in range(n):
        a, b = at[i], at[i + 1]
        if a is None or b is None:
            flags[i] = MISSING
            issues.append(Issue(MISSING, meter, start + i * STEP))
            continue
        values[i] = b - a
        if i in estimated or i + 1 in estimated:
            flags[i] = ESTIMATED
    est = sorted(i for i, f in flags.items() if f == ESTIMATED)
    if est:
        issues.append(Issue(ESTIMATED, meter, start + est[0] * STEP, f"{len(est)} intervals"))
    return Series(values, flags, issues)


@dataclass(frozen=True, slots=True)
class Assignment:
    """A meter measuring a billing point over [start, end) (epoch s, end None = open).

    ``start_reading`` / ``end_reading`` (micro-kWh) are the values noted at a meter
    replacement; they override whatever the meter sent for those instants."""

    meter: str
    start: int
    end: int | None
    start_reading: int | None = None
    end_reading: int | None = None
    rollover: int | None = None


@dataclass(frozen=True, slots=True)
class Split:
    """A move on a billing point: the interval boundary (epoch s) its consumption is split
    at, the handover reading noted there by hand (micro-kWh), and the move as written."""

    ts: int
    reading: int | None = None
    noted: str = ""


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def place_split(rows: list[tuple[int, int]], sp: Split, tolerance: int, meter: str,
                issues: list[Issue]) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """The register value at a move's boundary, as a reading placed on it: the handover
    reading if it fits the meter's readings around it, else a reading on the boundary,
    else the recorded one nearest it within ``tolerance`` seconds (moved onto it). Without
    any of these nothing is placed: the boundary is interpolated (and flagged) later."""
    ts = sp.ts
    info: dict[str, Any] = {"meter": meter, "noted": sp.noted}
    if sp.reading is not None:
        before = max(((t, v) for t, v in rows if t < ts), default=None)
        after = min(((t, v) for t, v in rows if t > ts), default=None)
        wraps = before is not None and after is not None and before[1] > after[1]
        low = before is not None and not wraps and sp.reading < before[1]
        high = after is not None and not wraps and sp.reading > after[1]
        if not (low or high):
            return ([r for r in rows if r[0] != ts] + [(ts, sp.reading)],
                    {**info, "method": "handover", "reading": sp.reading})
        t, v = before if low else after  # type: ignore[misc]
        why = (f"handover reading {units_to_kwh(sp.reading)} kWh is "
               f"{'below' if low else 'above'} the meter's {units_to_kwh(v)} kWh at "
               f"{_iso(t)}: not used")
        issues.append(Issue("handover_reading", meter, ts, why))
        info["rejected"] = why
    exact = [v for t, v in rows if t == ts]
    if exact:
        return rows, {**info, "method": "recorded", "reading": exact[0]}
    near = [(abs(t - ts), t, v) for t, v in rows if abs(t - ts) <= tolerance]
    if near:
        _, t, v = min(near)
        return ([r for r in rows if r[0] != t] + [(ts, v)],
                {**info, "method": "nearest", "reading": v, "reading_at": t})
    return rows, {**info, "method": "interpolated"}


def billing_point_series(
    assignments: Sequence[Assignment],
    readings: dict[str, list[tuple[int, int]]],
    start: int,
    n: int,
    splits: Sequence[Split] = (),
    tolerance: int = 0,
) -> Series:
    """One billing point's consumption, stitched from the meters assigned over time.

    Each meter counts only inside its assignment; readings outside it are ignored. At each
    move (``splits``) the register value is fixed first (``place_split``), so the tenants
    on either side share the intervals exactly and the trace can say where it came from."""
    values = array("q", bytes(8 * n))
    out = Series(values)
    covered = [False] * n
    end_all = start + n * STEP
    for a in assignments:
        a_end = end_all if a.end is None else min(a.end, end_all)
        lo = max(a.start, start)
        if lo >= a_end:
            continue
        i0 = (lo - start) // STEP
        i1 = (a_end - start + STEP - 1) // STEP
        rows = readings.get(a.meter, ())
        lo_t = a.start + (1 if a.start_reading is not None else 0)
        hi_t = None if a.end is None else a.end - (1 if a.end_reading is not None else 0)
        own = [(t, v) for t, v in rows if lo_t <= t and (hi_t is None or t <= hi_t)]
        if a.start_reading is not None:
            own.append((a.start, a.start_reading))
        if a.end_reading is not None and a.end is not None:
            own.append((a.end, a.end_reading))
        placed = []
        for sp in splits:
            if sp.ts in (a.start, a.end):  # the replacement's readings are the split
                out.splits[sp.ts] = {"meter": a.meter, "noted": sp.noted,
                                     "method": "meter_change"}
            elif a.start < sp.ts and (a.end is None or sp.ts < a.end):
                own, info = place_split(own, sp, tolerance, a.meter, out.issues)
                out.splits[sp.ts] = info
                placed.append(sp.ts)
        seg = interval_consumption(own, start + i0 * STEP, i1 - i0, a.meter, a.rollover)
        values[i0:i1] = seg.values
        for i, f in seg.flags.items():
            out.flags[i0 + i] = f
        for i in range(i0, i1):
            covered[i] = True
        out.issues.extend(seg.issues)
        for ts in placed:
            info = out.splits[ts]
            if info["method"] == "interpolated":
                anchors, _ = clean_register(own, a.meter, a.rollover)
                (v,), _est = register_at(anchors, ts, 0)
                if v is None:
                    info["method"] = "missing"
                else:
                    info["reading"] = v % a.rollover if a.rollover else v
                    info["estimated"] = True
    gaps = [i for i in range(n) if not covered[i]]
    if gaps:
        out.issues.append(Issue("no_meter", "", start + gaps[0] * STEP, f"{len(gaps)} intervals"))
    return out
