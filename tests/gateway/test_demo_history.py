"""The demo's simulated month: one reading per quarter-hour and register since the 1st,
flagged, and a grid meter that balances the building (import - export = use - PV)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from sitegate.demo import history as h
from sitegate.sync import protocol as p

ZURICH = ZoneInfo("Europe/Zurich")


def test_a_month_so_far_balances_and_is_flagged() -> None:
    now = datetime(2026, 11, 3, 12, 7, tzinfo=UTC)  # 13:07 in Zurich
    start = {"main": {h.IMPORT: D("100"), h.EXPORT: D("10")}, "pv": {h.EXPORT: D("50")},
             "apt-1": {h.IMPORT: D("200")}, "apt-2": {h.IMPORT: D("300")}}
    hist = h.simulate(now, ZURICH, start, {"apt-1": 0.1, "apt-2": 0.1}, "main", "pv")
    # from 1 November 00:00 local (31 October 23:00 UTC) to the last quarter-hour: 12:00 UTC
    assert hist.start == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert hist.end == datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    quarters = (2 * 24 + 13) * 4  # 2 days and 13 hours
    registers = 5
    assert len(hist.readings) == (quarters + 1) * registers  # + the values at the start
    assert all(r.flags == (h.FLAG,) and r.quality == p.SUSPECT for r in hist.readings)
    last = hist.last
    used = (last["apt-1"][h.IMPORT] - 200) + (last["apt-2"][h.IMPORT] - 300)
    made = last["pv"][h.EXPORT] - 50
    net = (last["main"][h.IMPORT] - 100) - (last["main"][h.EXPORT] - 10)
    assert used > 0 and made > 0 and net == used - made
    # every register only grows, one reading per quarter-hour
    for meter, regs in start.items():
        for reg in regs:
            series = [r for r in hist.readings if (r.meter_id, r.quantity) == (meter, reg)]
            assert len(series) == quarters + 1
            assert all(a.value <= b.value for a, b in zip(series, series[1:], strict=False))
    batches = h.batches(hist)
    assert [p.decode_batch(b).epoch for b in batches] == [h.EPOCH] * len(batches)
    assert sum(len(p.decode_batch(b).items) for b in batches) == len(hist.readings)
