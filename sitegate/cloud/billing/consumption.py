"""Interval consumption from cumulative registers.

Readings are (epoch seconds, micro-kWh) pairs of one register. The register is cleaned
(rollover unwrapped, values going backwards flagged and dropped so nothing is counted
twice), then read at every grid boundary: exact where a reading sits on it, linearly
interpolated between its neighbours otherwise (flagged estimated), unknown without one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from sitegate.cloud.billing.periods import STEP
from sitegate.cloud.billing.registers import Register
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
    """Consumption per interval (micro-kWh; int32 where it fits, else int64) with the
    flagged intervals."""

    values: np.ndarray
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


def _arrays(readings: Iterable[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """A register's (epoch s, micro-kWh) as two int64 arrays; a Register's without a copy."""
    if isinstance(readings, Register):
        return (np.frombuffer(readings.ts, dtype=np.int64),
                np.frombuffer(readings.values, dtype=np.int64))
    rows = list(readings)
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    arr = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def anchors(ts: np.ndarray, vs: np.ndarray, meter: str,
            rollover: int | None = None) -> tuple[np.ndarray, np.ndarray, list[Issue]]:
    """``clean_register`` on arrays. A register in time order that never goes back and
    never rises faster than MAX_KW (what meters send) is its own anchors, checked at C
    speed; anything else takes ``clean_register``'s loop, so the result is the same."""
    if len(ts) < 2:
        return ts, vs, []
    dt, dv = np.diff(ts), np.diff(vs)
    # the rate in floats only decides the fast path: a margin keeps borderline rises exact
    if bool((dt > 0).all() and (dv >= 0).all()
            and (dv.astype(np.float64) * 3600 < MAX_RATE * dt.astype(np.float64)
                 * (1 - 1e-9)).all()):
        return ts, vs, []
    rows, issues = clean_register(zip(ts.tolist(), vs.tolist(), strict=True), meter, rollover)
    return (np.array([t for t, _ in rows], dtype=np.int64),
            np.array([v for _, v in rows], dtype=np.int64), issues)


def boundaries(ts: np.ndarray, vs: np.ndarray, start: int,
               n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Register value at each of the n+1 boundaries start + k*STEP (anchors ``ts``/``vs``
    sorted), whether it is known, and whether it is estimated: exact where a reading sits
    on the boundary, else interpolated between its neighbours with the floor of the
    integer ratio (as Python's ``//``), unknown outside the readings."""
    t = start + np.arange(n + 1, dtype=np.int64) * STEP
    m = len(ts)
    at = np.zeros(n + 1, dtype=np.int64)
    if m == 0:
        none = np.zeros(n + 1, dtype=bool)
        return at, none, none
    j = np.searchsorted(ts, t, side="left")  # first reading at or after each boundary
    jc = np.minimum(j, m - 1)
    exact = (j < m) & (ts[jc] == t)
    est = ~exact & (j > 0) & (j < m)
    at[exact] = vs[jc[exact]]
    if est.any():
        k = j[est]
        t0, t1, v0, v1 = ts[k - 1], ts[k], vs[k - 1], vs[k]
        rise, into, span = v1 - v0, t[est] - t0, t1 - t0
        if float(np.abs(rise).max()) * float(into.max()) < 2.0**62:
            at[est] = v0 + rise * into // span
        else:  # a product beyond int64: Python's ints, same floors
            at[est] = [a + r * i // s for a, r, i, s in zip(
                v0.tolist(), rise.tolist(), into.tolist(), span.tolist(), strict=True)]
    return at, exact | est, est


def register_at(
    anchors: Sequence[tuple[int, int]], start: int, n: int
) -> tuple[list[int | None], set[int]]:
    """Register value at each of the n+1 boundaries start + k*STEP, and the estimated ones."""
    ts, vs = _arrays(anchors)
    at, known, est = boundaries(ts, vs, start, n)
    return ([int(v) if k else None for v, k in zip(at, known, strict=True)],
            set(np.flatnonzero(est).tolist()))


def interval_consumption(
    readings: Iterable[tuple[int, int]],
    start: int,
    n: int,
    meter: str,
    rollover: int | None = None,
) -> Series:
    """Consumption of each of n intervals from ``start``; unknown intervals count 0."""
    ts, vs = _arrays(readings)
    if len(ts) > 1 and not bool((ts[1:] >= ts[:-1]).all()):
        order = np.lexsort((vs, ts))  # by time, ties by value: as sorting the tuples
        ts, vs = ts[order], vs[order]
    return _consumption(ts, vs, start, n, meter, rollover)


def _consumption(ts: np.ndarray, vs: np.ndarray, start: int, n: int, meter: str,
                 rollover: int | None) -> Series:
    """``interval_consumption`` of readings already in time order."""
    ts, vs, issues = anchors(ts, vs, meter, rollover)
    at, known, est = boundaries(ts, vs, start, n)
    ok = known[:-1] & known[1:]
    values = np.where(ok, at[1:] - at[:-1], 0)
    flags: dict[int, str] = {}
    missing = np.flatnonzero(~ok).tolist()
    for i in missing:
        flags[i] = MISSING
        issues.append(Issue(MISSING, meter, start + i * STEP))
    estimated = np.flatnonzero(ok & (est[:-1] | est[1:])).tolist()
    for i in estimated:
        flags[i] = ESTIMATED
    if missing and estimated:
        flags = dict(sorted(flags.items()))
    if estimated:
        issues.append(Issue(ESTIMATED, meter, start + estimated[0] * STEP,
                            f"{len(estimated)} intervals"))
    return Series(_compact(values), flags, issues)


def _compact(values: np.ndarray) -> np.ndarray:
    """int32 where every interval fits (a flat's quarter hour always does): a month of
    10,000 billing points' series is 120 MB instead of 240; sums and cumulative sums of
    int32 arrays are taken in int64 (numpy's default for them), so nothing overflows."""
    if len(values) and int(np.abs(values).max()) < 2**31 - 1:
        return values.astype(np.int32)
    return values


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
    readings: Mapping[str, Register | Sequence[tuple[int, int]]],
    start: int,
    n: int,
    splits: Sequence[Split] = (),
    tolerance: int = 0,
) -> Series:
    """One billing point's consumption, stitched from the meters assigned over time.

    Each meter counts only inside its assignment; readings outside it are ignored. At each
    move (``splits``) the register value is fixed first (``place_split``), so the tenants
    on either side share the intervals exactly and the trace can say where it came from."""
    values = np.zeros(n, dtype=np.int64)
    out = Series(values)
    covered = np.zeros(n, dtype=bool)
    end_all = start + n * STEP
    for a in assignments:
        a_end = end_all if a.end is None else min(a.end, end_all)
        lo = max(a.start, start)
        if lo >= a_end:
            continue
        i0 = (lo - start) // STEP
        i1 = (a_end - start + STEP - 1) // STEP
        ts, vs = _arrays(readings.get(a.meter, ()))
        lo_t = a.start + (1 if a.start_reading is not None else 0)
        hi_t = None if a.end is None else a.end - (1 if a.end_reading is not None else 0)
        keep = ts >= lo_t if hi_t is None else (ts >= lo_t) & (ts <= hi_t)
        if not keep.all():
            ts, vs = ts[keep], vs[keep]
        mine = [sp for sp in splits if a.start <= sp.ts and (a.end is None or sp.ts <= a.end)]
        placed = []
        if mine or a.start_reading is not None or a.end_reading is not None:
            # a replacement or a move: the few readings it places, as tuples (rare)
            own = list(zip(ts.tolist(), vs.tolist(), strict=True))
            if a.start_reading is not None:
                own.append((a.start, a.start_reading))
            if a.end_reading is not None and a.end is not None:
                own.append((a.end, a.end_reading))
            for sp in mine:
                if sp.ts in (a.start, a.end):  # the replacement's readings are the split
                    out.splits[sp.ts] = {"meter": a.meter, "noted": sp.noted,
                                         "method": "meter_change"}
                else:
                    own, info = place_split(own, sp, tolerance, a.meter, out.issues)
                    out.splits[sp.ts] = info
                    placed.append(sp.ts)
            ts, vs = _arrays(own)
            if len(ts) > 1:
                order = np.lexsort((vs, ts))
                ts, vs = ts[order], vs[order]
        elif len(ts) > 1 and not bool((ts[1:] >= ts[:-1]).all()):
            order = np.lexsort((vs, ts))
            ts, vs = ts[order], vs[order]
        seg = _consumption(ts, vs, start + i0 * STEP, i1 - i0, a.meter, a.rollover)
        values[i0:i1] = seg.values
        for i, f in seg.flags.items():
            out.flags[i0 + i] = f
        covered[i0:i1] = True
        out.issues.extend(seg.issues)
        for when in placed:
            info = out.splits[when]
            if info["method"] == "interpolated":
                at_ts, at_vs, _ = anchors(ts, vs, a.meter, a.rollover)
                at, known, _est = boundaries(at_ts, at_vs, when, 0)
                if not known[0]:
                    info["method"] = "missing"
                else:
                    v = int(at[0])
                    info["reading"] = v % a.rollover if a.rollover else v
                    info["estimated"] = True
    out.values = _compact(values)
    gaps = np.flatnonzero(~covered)
    if len(gaps):
        out.issues.append(Issue("no_meter", "", start + int(gaps[0]) * STEP,
                                f"{len(gaps)} intervals"))
    return out
