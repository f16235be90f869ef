"""Tariff arithmetic: which version and time-of-use window an interval falls in, fixed
fees prorated by days, and per-session prices."""

from __future__ import annotations

import bisect
from array import array
from calendar import monthrange
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from sitegate.cloud.billing.periods import Grid
from sitegate.cloud.billing.sitemodel import DAYS, SessionTariff, Tariff, TimeOfUse


def is_peak(tou: TimeOfUse, local) -> bool:  # local: datetime in the site's zone
    if local.date() in tou.holidays or DAYS[local.weekday()] not in tou.peak_days:
        return False
    return tou.peak_from <= local.time().replace(tzinfo=None) < tou.peak_to


def version_at(valid_from: Sequence[date], day: date) -> int:
    """Index of the version valid on ``day``; -1 before the first one."""
    return bisect.bisect_right(list(valid_from), day) - 1


def segments(tariff: Tariff, cuts: Sequence[date] = ()) -> list[tuple[int, date]]:
    """(version index, from) of the tariff's versions, cut further at ``cuts`` (the days a
    VAT rate changes): a line never straddles a change of price or of VAT. Without cuts,
    one segment per version."""
    froms = [v.valid_from for v in tariff.versions]
    out = list(enumerate(froms))
    for d in cuts:
        k = version_at(froms, d)
        if k >= 0 and d not in froms:
            out.append((k, d))
    return sorted(out, key=lambda s: s[1])


def interval_keys(tariff: Tariff, grid: Grid, cuts: Sequence[date] = ()) -> array:
    """Per interval: segment index * 2 + (1 if peak else 0); -2 where no version applies."""
    froms = [d for _, d in segments(tariff, cuts)]
    keys = array("q", bytes(8 * grid.n))
    for i in range(grid.n):
        local = grid.local(i)
        v = version_at(froms, local.date())
        keys[i] = -2 if v < 0 else v * 2 + (1 if is_peak(tariff.tou, local) else 0)
    return keys


def month_chunks(first: date, end: date) -> list[tuple[date, date, int]]:
    """[first, end) cut at month boundaries: (chunk start, chunk end, days in that month)."""
    out = []
    d = first
    while d < end:
        dim = monthrange(d.year, d.month)[1]
        nxt = min(end, date(d.year, d.month, dim) + timedelta(days=1))
        out.append((d, nxt, dim))
        d = nxt
    return out


def version_spans(tariff: Tariff, first: date, end: date,
                  cuts: Sequence[date] = ()) -> list[tuple[int, date, date]]:
    """[first, end) cut where a new tariff version starts (and at ``cuts``):
    (version index, start, end)."""
    out = []
    segs = segments(tariff, cuts)
    for k, (vi, vf) in enumerate(segs):
        vend = segs[k + 1][1] if k + 1 < len(segs) else date.max
        lo, hi = max(first, vf), min(end, vend)
        if lo < hi:
            out.append((vi, lo, hi))
    return out


def session_tariff(tariffs: Sequence[SessionTariff], kind: str, day: date) -> SessionTariff | None:
    """The tariff of this kind valid on ``day`` (the session's start)."""
    best = None
    for t in tariffs:
        if t.kind == kind and t.valid_from <= day:
            if best is None or t.valid_from > best.valid_from:
                best = t
    return best


def session_quantities(energy_wh: Decimal, seconds: int) -> dict[str, Decimal]:
    """What a session tariff multiplies: kWh, one session, hours (pro rata), started minutes."""
    return {
        "per_kwh": energy_wh / 1000,
        "per_session": Decimal(1),
        "per_hour": Decimal(seconds) / 3600,
        "per_minute": Decimal(-(-seconds // 60)),
    }
