"""Billing periods in the site's local time, and their 15-min interval grid in UTC.

The one period parser: ``bill``, ``export``, ``invoice list|overview|late`` and the HTTP
API all read a period through ``parse_period``, so ``2026-13`` is refused everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

STEP = 900  # seconds: the billing register interval
FORMS = "YYYY-MM, YYYY-Qn, YYYY or YYYY-MM-DD..YYYY-MM-DD (both days included)"
MAX_DAYS = 3 * 366  # a longer window is a typing error, not a bill


class PeriodError(ValueError):
    """Not a billing period; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class Period:
    """[first, end) in local dates; ``label`` like 2026-01, 2026-Q1, 2026 or
    2026-01-15..2026-02-14 (an arbitrary window, both days included)."""

    label: str
    first: date
    end: date  # exclusive

    @property
    def last(self) -> date:
        return self.end - timedelta(days=1)

    def overlaps(self, other: Period) -> bool:
        return self.first < other.end and other.first < self.end


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


def _day(text: str, label: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"bad period {label!r}: {text!r} is not a date (YYYY-MM-DD)") from None


def parse_period(label: str) -> Period:
    """``2026-01`` (month), ``2026-Q1`` (quarter), ``2026`` (year) or
    ``2026-01-15..2026-02-14`` (from..to, both days included)."""
    label = label.strip() if isinstance(label, str) else ""
    if m := re.fullmatch(r"(\d{4})-(\d{2})", label):
        if not 1 <= int(m[2]) <= 12:
            raise PeriodError(f"bad period {label!r}: month {m[2]} is not 01..12")
        first = date(int(m[1]), int(m[2]), 1)
        return Period(label, first, _add_months(first, 1))
    if m := re.fullmatch(r"(\d{4})-Q([1-4])", label):
        first = date(int(m[1]), 3 * (int(m[2]) - 1) + 1, 1)
        return Period(label, first, _add_months(first, 3))
    if m := re.fullmatch(r"(\d{4})", label):
        return Period(label, date(int(m[1]), 1, 1), date(int(m[1]) + 1, 1, 1))
    if m := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", label):
        first, last = _day(m[1], label), _day(m[2], label)
        if last < first:
            raise PeriodError(f"bad period {label!r}: ends before it starts")
        if (last - first).days >= MAX_DAYS:
            raise PeriodError(f"bad period {label!r}: longer than {MAX_DAYS} days")
        return Period(label, first, last + timedelta(days=1))
    raise PeriodError(f"bad period {label!r}: expected {FORMS}")


def optional_period(label: str | None) -> Period | None:
    """A filter's period: None (every period) or a checked one."""
    return None if label is None else parse_period(label)


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
