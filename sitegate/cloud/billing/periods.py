"""Billing periods in the site's local time, and their 15-min interval grid in UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

STEP = 900  # seconds: the billing register interval


@dataclass(frozen=True, slots=True)
class Period:
    """[first, end) in local dates; ``label`` like 2026-01, 2026-Q1 or 2026."""

    label: str
    first: date
    end: date  # exclusive

    @property
    def last(self) -> date:
        return self.end - timedelta(days=1)


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


def parse_period(label: str) -> Period:
    """``2026-01`` (month), ``2026-Q1`` (quarter) or ``2026`` (year)."""
    if m := re.fullmatch(r"(\d{4})-(\d{2})", label):
        first = date(int(m[1]), int(m[2]), 1)
        return Period(label, first, _add_months(first, 1))
    if m := re.fullmatch(r"(\d{4})-Q([1-4])", label):
        first = date(int(m[1]), 3 * (int(m[2]) - 1) + 1, 1)
        return Period(label, first, _add_months(first, 3))
    if m := re.fullmatch(r"(\d{4})", label):
        return Period(label, date(int(m[1]), 1, 1), date(int(m[1]) + 1, 1, 1))
    raise ValueError(f"bad period {label!r}: expected YYYY-MM, YYYY-Qn or YYYY")


def local_midnight(d: date, tz: ZoneInfo) -> int:
    """Epoch seconds of local 00:00 on ``d``."""
    return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())


@dataclass(frozen=True, slots=True)
class Grid:
    """N intervals of STEP seconds from ``start`` (epoch seconds, UTC)."""

    start: int
    n: int
    tz: ZoneInfo

    @property
    def end(self) -> int:
        return self.start + self.n * STEP

    def index(self, ts: int) -> int:
        """Interval boundary index at or before ``ts``, clamped to [0, n]."""
        return max(0, min(self.n, (ts - self.start) // STEP))

    def local(self, i: int) -> datetime:
        return datetime.fromtimestamp(self.start + i * STEP, self.tz)


def grid_for(period: Period, tz: ZoneInfo) -> Grid:
    start = local_midnight(period.first, tz)
    return Grid(start, (local_midnight(period.end, tz) - start) // STEP, tz)
