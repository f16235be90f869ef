"""The month so far of the demo's chargers and laundry box, simulated: the tenants'
charging and washing sessions since the 1st, so that the invoices' EV and laundry lines
show what a month looks like (the live part adds its own few minutes).

A plain routine per tenant: a car charged every few days (12-28 kWh at about 7.4 kW),
the washing machine once or twice a week (about 1 kWh). The sessions go to the cloud as
the gateway reports them (``SessionRecord``, completed, the tenant's badge and account),
in the history's buffer epoch and flagged ``simulated``. What they drew is not in the
grid connection's simulated history: the demo's billing model has no meter for the
chargers, so billing would report it as import nobody's meter explains (``load`` gives
it per quarter-hour for ``history.simulate``'s ``extra``, for a model that has one).
Only the non-calibrated chargers: a calibrated charger's sessions need signed values.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sitegate.demo.history import EPOCH, FLAG, QUARTER
from sitegate.sync import protocol as p
from sitegate.sync.protocol import SessionRecord


@dataclass(frozen=True)
class Routine:
    charge_point: str
    kind: str  # "ev" | "laundry"
    account: str
    badge: str
    every: int  # days
    offset: int  # first day of the month it happens (0: the 1st)
    hour: float  # local time it starts
    kwh: tuple[float, float]  # range of a session's energy
    kw: float  # mean power


ROUTINES = [
    Routine("SIM0000", "ev", "muster", "04A1B2C3", 3, 0, 18.5, (12, 28), 7.4),
    Routine("SIM0001", "ev", "weber", "04D4E5F6", 4, 1, 19.0, (10, 24), 7.4),
    Routine("SIM0001", "ev", "keller", "04C0FFEE", 5, 2, 7.0, (14, 30), 7.4),
    Routine("SIM0003", "laundry", "muster", "04A1B2C3", 7, 5, 10.0, (0.9, 1.3), 1.0),
    Routine("SIM0003", "laundry", "weber", "04D4E5F6", 4, 3, 17.0, (0.8, 1.4), 1.0),
    Routine("SIM0003", "laundry", "keller", "04C0FFEE", 6, 4, 9.0, (0.9, 1.2), 1.0),
]


def simulate(start: datetime, now: datetime, tz: ZoneInfo,
             seed: int = 1) -> list[SessionRecord]:
    """Every routine's sessions that started at ``start`` (UTC) or later and ended
    before ``now``, in time order; each charger's register goes on from the last."""
    rng = random.Random(seed)
    out = []
    first = start.astimezone(tz).date()
    days = (now.astimezone(tz).date() - first).days + 1
    for r in ROUTINES:
        for day in range(r.offset, days, r.every):
            d = first + timedelta(days=day)
            begin = datetime(d.year, d.month, d.day, tzinfo=tz) + timedelta(
                hours=r.hour, minutes=rng.randint(0, 60))
            kwh = Decimal(str(round(rng.uniform(*r.kwh), 3)))
            end = begin + timedelta(hours=float(kwh) / r.kw)
            if begin.astimezone(UTC) < start or end.astimezone(UTC) >= now:
                continue
            out.append((begin.astimezone(UTC), end.astimezone(UTC), r, kwh))
    out.sort(key=lambda s: (s[0], s[2].charge_point))
    register: dict[str, Decimal] = {}
    records = []
    for n, (begin, end, r, kwh) in enumerate(out, start=1):
        wh = kwh * 1000
        at = register.get(r.charge_point, Decimal(0))
        register[r.charge_point] = at + wh
        records.append(SessionRecord(
            session_id=f"{r.charge_point}-sim{n}", charge_point=r.charge_point, connector=1,
            kind=r.kind, badge=r.badge, account=r.account, start=begin, stop=end,
            meter_start_wh=at, meter_stop_wh=at + wh, energy_wh=wh,
            duration_s=int((end - begin).total_seconds()),
            stop_reason="EVDisconnected" if r.kind == "ev" else "Local", flags=[FLAG],
            status="completed"))
    return records


def load(records: list[SessionRecord]) -> dict[datetime, Decimal]:
    """What the sessions drew per quarter-hour (its start, UTC), kWh: for the grid
    connection's history. Each session's energy spread evenly over its time."""
    out: dict[datetime, Decimal] = {}
    for s in records:
        assert s.stop is not None and s.energy_wh is not None
        total = (s.stop - s.start).total_seconds()
        t = s.start.replace(minute=s.start.minute // 15 * 15, second=0, microsecond=0)
        while t < s.stop:
            part = (min(t + QUARTER, s.stop) - max(t, s.start)).total_seconds()
            out[t] = out.get(t, Decimal(0)) + s.energy_wh / 1000 * Decimal(part / total)
            t += QUARTER
    return {t: v.quantize(Decimal("0.001")) for t, v in out.items()}


def batches(records: list[SessionRecord]) -> list[bytes]:
    """The sessions as uplink batches of the history's buffer epoch."""
    texts = [json.dumps(r.to_payload(), separators=(",", ":")) for r in records]
    return [p.encode_batch(p.STREAM_SESSIONS, i + 1, texts[i:i + 100], epoch=EPOCH)
            for i in range(0, len(texts), 100)]
