"""The heat and water meters' simulated history: what they would have counted since the
start of the demo's accounting period, one reading an hour, so that the demo can settle
heating and water for its tenants (``expense``).

Like the electricity history (``history``) it goes through the cloud's ingest in the
buffer epoch ``simulated-history``, each reading flagged ``simulated``. Each meter uses a
fixed amount a day (``mbus_meters.METERS``), spread over the day by a plain profile
(heating more at night and in the morning, water at breakfast and in the evening), so
the register at each local midnight is its start plus whole days of use: the statement's
shares can be worked out by hand. The registers count in whole units of the meter
(1 kWh, 10 or 1 litre), as the real ones do.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sitegate.demo.history import FLAG
from sitegate.demo.mbus_meters import MbusMeter, on_register
from sitegate.sync import protocol as p
from sitegate.sync.protocol import Reading

HOUR = timedelta(hours=1)
# Share of a day's use per hour of the day.
_HEAT = [5, 5, 5, 5, 6, 7, 7, 6, 4, 3, 3, 3, 3, 3, 3, 3, 4, 5, 5, 5, 5, 5, 5, 5]
_WATER = [0, 0, 0, 0, 0, 1, 4, 6, 4, 2, 1, 1, 2, 1, 1, 1, 1, 2, 4, 5, 4, 3, 1, 1]


def period(today: date) -> tuple[date, date]:
    """The demo's accounting period: from the 1st of the month up to today (exclusive;
    a statement is made once its period has ended); on the 1st, the month before."""
    first = (today - timedelta(days=1)).replace(day=1)
    return first, today


def register(meter: MbusMeter, first: date, local: datetime) -> Decimal:
    """The register (kWh or m³) at the local time ``local`` (a whole hour) on or after
    ``first``: the start, whole days of use, and today's hours so far by the profile."""
    days = (local.date() - first).days
    shape = _HEAT if meter.medium == "heat" else _WATER
    today = meter.per_day * sum(shape[:local.hour]) / sum(shape)
    return on_register(meter, meter.start + meter.per_day * days + today)


def simulate(meters: list[MbusMeter], first: date, now: datetime,
             tz: ZoneInfo) -> tuple[list[Reading], dict[str, Decimal], datetime]:
    """Hourly readings from ``first`` (local midnight) up to the last whole hour before
    ``now``; returns them, each meter's register at the end (kWh or m³) and the end."""
    start = datetime(first.year, first.month, first.day, tzinfo=tz).astimezone(UTC)
    readings: list[Reading] = []
    last: dict[str, Decimal] = {}
    t = start
    end = start
    while t <= now:
        local = t.astimezone(tz)
        for m in meters:
            value = register(m, first, local)
            last[m.meter_id] = value
            readings.append(Reading(m.meter_id, t, m.quantity, value * m.factor, m.unit,
                                    p.SUSPECT, read_at=t, flags=(FLAG,)))
        end = t
        t += HOUR
    return readings, last, end
