"""The demo's simulated month: one reading per quarter-hour and register since the 1st,
flagged, and a grid meter that balances the building (import - export = use - PV)."""

from __future__ import annotations

import json
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


def test_heat_and_water_hours_end_each_day_on_whole_days_of_use() -> None:
    """The M-Bus meters' simulated hours: at every local midnight the register is its
    start plus whole days of use (what the statement divides), hours in between grow
    only, in the meter's own counts; across the end of summer time (25 hours)."""
    from sitegate.demo import heat_water as hw
    from sitegate.demo.mbus_meters import METERS

    assert hw.period(datetime(2026, 11, 30).date()) == (datetime(2026, 11, 1).date(),
                                                          datetime(2026, 11, 30).date())
    assert hw.period(datetime(2026, 12, 1).date())[0] == datetime(2026, 11, 1).date()
    first = datetime(2026, 10, 24).date()
    now = datetime(2026, 10, 27, 9, 30, tzinfo=UTC)
    readings, last, end = hw.simulate(METERS, first, now, ZURICH)
    assert end == datetime(2026, 10, 27, 9, 0, tzinfo=UTC)
    hours = 3 * 24 + 1 + 10 + 1  # 25 October has 25 hours; 00:00 .. 10:00 on the 27th
    assert len(readings) == hours * len(METERS)
    heat1 = [r for r in readings if r.meter_id == "heat-apt-1"]
    assert all(a.value <= b.value for a, b in zip(heat1, heat1[1:], strict=False))
    midnights = {r.ts.astimezone(ZURICH).day: r.value for r in heat1
                 if r.ts.astimezone(ZURICH).hour == 0}
    assert midnights == {24: D(37351), 25: D(37375), 26: D(37399), 27: D(37423)}
    w2 = [r for r in readings if r.meter_id == "water-apt-2"]  # 0.30 m³ a day, 1 litre
    assert w2[0].value == D("48.101") and w2[-1].value == last["water-apt-2"]
    # the generic profile's heat meter sends Wh, as the live gateway reads it
    h3 = next(r for r in readings if r.meter_id == "heat-apt-3")
    assert (h3.quantity, h3.unit, h3.value) == ("energy", "Wh", D(28014000))
    assert all(r.flags == (h.FLAG,) for r in readings)


def test_the_demo_sets_each_recorded_register_in_its_own_coding() -> None:
    """Binary (Kamstrup, Itron, SVM) and BCD (Landis+Gyr, Siemens) registers: the gateway
    decodes the value set, in whole counts of the meter, with a valid checksum."""
    from sitegate.demo.mbus_meters import demo_meters
    from sitegate.drivers.mbus.decode import decode_telegram

    for d in demo_meters():
        d.set(d.meter.start + D("12.3456"))
        frame = d.emulated.next_telegram(True)
        decoded = decode_telegram(frame)  # raises on a bad checksum
        assert decoded.address == d.meter.address
        step = d.meter.step
        assert d.value() == ((d.meter.start + D("12.3456")) // step) * step, d.meter.meter_id


def test_the_tenants_sessions_of_the_month_so_far() -> None:
    """Charging and washing by routine since the 1st: only sessions over by now, the
    tenants' badges and accounts, completed and flagged, each charger's register going
    on from its last session; what they drew adds up in the grid connection's history."""
    from sitegate.cloud.billing.sessions import session_in
    from sitegate.demo import sessions_history as sh

    now = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    start = h.month_start(now, ZURICH)
    records = sh.simulate(start, now, ZURICH)
    # days 1..10 (index 0..9): Anna's car every 3 days from the 1st (0, 3, 6, 9; the
    # 10th's at 18:30 is still to come), Carla's every 4 from the 2nd (1, 5, 9 -> 2 by
    # now), Beat's every 5 from the 3rd at 07:00 (2, 7); washing (indexes): Anna 5, Carla
    # 3 and 7, Beat 4 (his next, index 10, is the 11th)
    count = {}
    for r in records:
        count[(r.kind, r.account)] = count.get((r.kind, r.account), 0) + 1
    assert count == {("ev", "muster"): 3, ("ev", "weber"): 2, ("ev", "keller"): 2,
                     ("laundry", "muster"): 1, ("laundry", "weber"): 2,
                     ("laundry", "keller"): 1}
    assert len({r.session_id for r in records}) == len(records)
    assert all(start <= r.start < r.stop < now and r.status == "completed"
               and r.flags == [h.FLAG] for r in records)
    assert all(r.charge_point != "SIM0002" for r in records)  # no calibrated charger
    sim1 = [r for r in records if r.charge_point == "SIM0001"]
    assert all(a.meter_stop_wh == b.meter_start_wh for a, b in zip(sim1, sim1[1:],
                                                                    strict=False))
    # billing reads them as the gateway's own reports
    for r in records:
        got = session_in("demo-gw", json.dumps(r.to_payload()))
        assert not isinstance(got, str), got
    drawn = sum((r.energy_wh for r in records), D(0)) / 1000
    load = sh.load(records)
    assert abs(sum(load.values()) - drawn) < D("0.001") * len(load)
    start_values = {"main": {h.IMPORT: D(0), h.EXPORT: D(0)}, "pv": {h.EXPORT: D(0)}}
    without = h.simulate(now, ZURICH, start_values, {}, "main", "pv")
    with_them = h.simulate(now, ZURICH, start_values, {}, "main", "pv", extra=load)
    assert with_them.last["main"][h.IMPORT] - with_them.last["main"][h.EXPORT] - (
        without.last["main"][h.IMPORT] - without.last["main"][h.EXPORT]) == sum(load.values())


def test_start_values_in_whole_wh_so_every_interval_balances() -> None:
    """The simulated meters' counters have finer digits than a reading keeps (1345.5575
    kWh: half a Wh, which a reading rounds up or down by the digit before it): the history
    starts from them rounded, so every quarter-hour's grid import is exactly the
    consumers' use minus the PV (no Wh of 'negative solar' on the bill)."""
    now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    raw = {"main": {h.IMPORT: D("1622.7765"), h.EXPORT: D("10.0005")},
           "pv": {h.EXPORT: D("681.4185")}, "apt-1": {h.IMPORT: D("1345.5575")},
           "apt-2": {h.IMPORT: D("1436.0165")}}
    start = h.start_values(raw, "main", "pv")
    assert start["apt-1"] == {h.IMPORT: D("1345.558")} and start["pv"] == {h.EXPORT: D("681.418")}
    hist = h.simulate(now, ZURICH, start, {"apt-1": 0.1, "apt-2": 0.1}, "main", "pv")
    series: dict[tuple[str, str], list[D]] = {}
    for r in hist.readings:
        series.setdefault((r.meter_id, r.quantity), []).append(r.value)

    def step(meter: str, reg: str, i: int) -> D:
        return series[(meter, reg)][i + 1] - series[(meter, reg)][i]

    for i in range(len(series[("main", h.IMPORT)]) - 1):
        used = step("apt-1", h.IMPORT, i) + step("apt-2", h.IMPORT, i)
        made = step("pv", h.EXPORT, i)
        assert step("main", h.IMPORT, i) - step("main", h.EXPORT, i) == used - made, i
