"""The month so far, simulated: what the demo's electricity meters would have measured since
the 1st, so that the demo's invoices show what a month of billing looks like.

Billing works on whole quarter-hours, and the demo's live meters run for a minute: without
history its invoices have no electricity at all. So before the live part the demo hands
the cloud one reading per quarter-hour since the 1st of the month (local midnight) for the
registers billing uses (import 1-0:1.8.0, export 1-0:2.8.0) of every Modbus meter. They
go through the cloud's own ingest as a batch of an earlier buffer of the demo gateway,
epoch ``simulated-history``, each flagged ``simulated`` (quality ``suspect``); the demo says
so on screen. The live meters then continue from the values the history ends with.

The simulation is plain: apartments and common areas use more in the morning and evening,
the PV produces in daylight with a random weather factor per day, and the grid meter
imports what the building uses beyond the PV and exports the rest.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sitegate.sync import protocol as p
from sitegate.sync.protocol import Reading

EPOCH = "simulated-history"
FLAG = "simulated"
IMPORT, EXPORT = "1-0:1.8.0", "1-0:2.8.0"
QUARTER = timedelta(minutes=15)
KWH = Decimal("0.001")
BATCH_ROWS = 500

# Share of a day's use per hour of the day (apartments: breakfast and evening peaks).
_HOURLY = [0.5, 0.4, 0.4, 0.4, 0.4, 0.5, 0.9, 1.4, 1.2, 0.9, 0.8, 0.9,
           1.1, 0.9, 0.8, 0.8, 0.9, 1.2, 1.7, 1.8, 1.6, 1.3, 0.9, 0.7]


@dataclass(frozen=True)
class History:
    start: datetime  # first quarter-hour (UTC)
    end: datetime  # last quarter-hour (UTC)
    readings: list[Reading]
    last: dict[str, dict[str, Decimal]]  # meter id -> register -> value at ``end``


def month_start(now: datetime, tz: ZoneInfo) -> datetime:
    local = now.astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def _quarters(start: datetime, now: datetime) -> list[datetime]:
    """Every quarter-hour from ``start`` up to the last one before ``now`` (UTC)."""
    out, t = [], start
    while t + QUARTER <= now:
        out.append(t)
        t += QUARTER
    return out


def _pv_kwh(local: datetime, weather: float, peak: float) -> float:
    """A quarter-hour's PV energy: a sine over daylight (08:00-16:30), times the weather."""
    hour = local.hour + local.minute / 60 + 0.125  # the middle of the quarter-hour
    if not 8.0 <= hour <= 16.5:
        return 0.0
    return peak * weather * math.sin(math.pi * (hour - 8.0) / 8.5)


def simulate(now: datetime, tz: ZoneInfo, start_values: dict[str, dict[str, Decimal]],
             consumers: dict[str, float], grid: str, pv: str, *, pv_peak: float = 1.6,
             seed: int = 1, extra: Mapping[datetime, Decimal] | None = None) -> History:
    """Readings of the registers in ``start_values`` (meter -> register -> value at the
    month's start) for every quarter-hour of the month before ``now``. ``consumers`` maps
    a meter to its mean use per quarter-hour (kWh); ``grid`` and ``pv`` are the grid
    connection's and the PV's meters; ``extra`` is what else the building drew per
    quarter-hour (its start, UTC; kWh): the chargers and the laundry box, which have no
    meter of their own in the history."""
    rng = random.Random(seed)
    start = month_start(now, tz)
    quarters = _quarters(start, now)
    values = {m: dict(regs) for m, regs in start_values.items()}
    weather: dict[tuple[int, int], float] = {}
    readings: list[Reading] = []

    def read(at: datetime) -> None:
        for meter, regs in values.items():
            for reg, value in regs.items():
                readings.append(Reading(meter, at, reg, value.quantize(KWH), "kWh",
                                        p.SUSPECT, read_at=at, flags=(FLAG,)))

    read(start)
    for ts in quarters:
        local = ts.astimezone(tz)
        day = (local.month, local.day)
        weather.setdefault(day, rng.uniform(0.15, 1.0))
        used = (extra or {}).get(ts, Decimal(0))
        for meter, mean in consumers.items():
            kwh = Decimal(str(round(mean * _HOURLY[local.hour] * rng.uniform(0.6, 1.4), 3)))
            values[meter][IMPORT] += kwh
            used += kwh
        made = Decimal(str(round(_pv_kwh(local, weather[day], pv_peak), 3)))
        values[pv][EXPORT] += made
        values[grid][IMPORT] += max(used - made, Decimal(0))
        values[grid][EXPORT] += max(made - used, Decimal(0))
        read(ts + QUARTER)  # the registers at the end of the quarter-hour
    last = quarters[-1] + QUARTER if quarters else start
    return History(start, last, readings, values)


def start_values(meters: dict[str, dict[str, Decimal]], grid: str,
                 pv: str) -> dict[str, dict[str, Decimal]]:
    """The registers the history simulates, from each meter's registers now (the simulated
    meters' counters when the demo starts): import for the consumers, export for the PV,
    both for the grid connection."""
    out = {}
    for meter, regs in meters.items():
        keep = (IMPORT, EXPORT) if meter == grid else (EXPORT,) if meter == pv else (IMPORT,)
        # whole Wh: readings rounded from finer values would let one interval's import
        # differ from the consumers' sum by a Wh (billing: "negative solar")
        out[meter] = {q: regs[q].quantize(KWH) for q in keep}
    return out


def ingest(engine: object, gateway_id: str, history: History,
           sessions: Sequence[bytes] = ()) -> int:
    """Hand the history (and ``sessions``' batches) to the cloud's own ingest, as batches
    of an earlier buffer of the gateway (its own epoch); returns the readings stored."""
    from sitegate.cloud.ingest.writer import Writer

    writer = Writer(engine)  # type: ignore[arg-type]
    topic = p.topic(gateway_id, p.STREAM_READINGS)
    for payload in batches(history):
        writer.handle(topic, payload)
    for payload in sessions:
        writer.handle(p.topic(gateway_id, p.STREAM_SESSIONS), payload)
    return len(history.readings)


def batches(history: History) -> list[bytes]:
    """The history as uplink batches of its own buffer epoch (the wire form the cloud's
    ingest takes from a gateway)."""
    texts = [json.dumps(r.to_dict(), separators=(",", ":")) for r in history.readings]
    return [p.encode_batch(p.STREAM_READINGS, i + 1, texts[i:i + BATCH_ROWS], epoch=EPOCH)
            for i in range(0, len(texts), BATCH_ROWS)]
