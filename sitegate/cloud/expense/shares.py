"""Who occupied a unit when (the site model's occupancy, vacancy borne by the owner), and
how a unit's share of a cost is divided over those stretches: by days for base parts and
water, by degree-day weights for heating where no reading was taken at the move."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction

from sitegate.cloud.billing.sitemodel import SiteModel


@dataclass(frozen=True, slots=True)
class Segment:
    """One occupant of a unit over [first, end) (local dates, end exclusive); a vacant
    stretch is the owner's. ``at_start`` is the local time of the move (readings)."""

    account: str
    first: date
    end: date
    vacant: bool = False
    at_start: datetime | None = None

    @property
    def days(self) -> int:
        return (self.end - self.first).days


def _day(v: date | datetime) -> date:
    return v.date() if isinstance(v, datetime) else v


def segments(model: SiteModel, billing_point: str, owner: str, first: date,
             end: date) -> list[Segment]:
    """The unit's occupants over [first, end) in order, gaps filled by the owner (vacant)."""
    occ = sorted((o for o in model.occupancy if o.billing_point == billing_point),
                 key=lambda o: _day(o.start))
    out: list[Segment] = []
    cur = first
    for o in occ:
        lo = max(_day(o.start), first)
        hi = min(_day(o.end), end) if o.end is not None else end
        if hi <= lo:
            continue
        if lo > cur:
            out.append(Segment(owner, cur, lo, vacant=True))
        at = o.start if isinstance(o.start, datetime) and _day(o.start) > first else None
        out.append(Segment(o.account, lo, hi, at_start=at))
        cur = hi
    if cur < end:
        out.append(Segment(owner, cur, end, vacant=True))
    return out


def day_weight(first: date, end: date) -> Fraction:
    return Fraction((end - first).days)


def degree_day_weight(first: date, end: date, table: tuple[Fraction, ...]) -> Fraction:
    """Sum over the days of [first, end) of the month's per-mille weight / its days."""
    total = Fraction(0)
    d = first
    while d < end:
        month_end = date(d.year + d.month // 12, d.month % 12 + 1, 1)
        stop = min(month_end, end)
        days_in = calendar.monthrange(d.year, d.month)[1]
        total += table[d.month - 1] * Fraction((stop - d).days, days_in)
        d = stop
    return total


def weights(segs: list[Segment], how: str, table: tuple[Fraction, ...]) -> list[Fraction]:
    if how == "degree_days":
        return [degree_day_weight(s.first, s.end, table) for s in segs]
    return [day_weight(s.first, s.end) for s in segs]


def last_day(end: date) -> date:
    return end - timedelta(days=1)
