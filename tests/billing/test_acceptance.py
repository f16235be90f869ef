"""Hand-worked billing cases. Every expected amount is worked out in the comments.

Conventions: line amount = quantity x price rounded half-up to 0.01; VAT per rate on the
net sum of that rate, rounded to 0.01; amount due rounded to 0.05 (the rounding is a line).
January 2026 in Zurich is UTC+1 without a DST change: 31 days x 96 intervals = 2976.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from sitegate.cloud.billing import solar
from sitegate.cloud.billing.compute import EXPORT, IMPORT, SessionIn, bill_site
from sitegate.cloud.billing.invoice import totals
from sitegate.cloud.billing.periods import parse_period
from sitegate.cloud.billing.units import kwh_to_units, units_to_kwh

JAN = parse_period("2026-01")
ZH = ZoneInfo("Europe/Zurich")
JAN_START = int(datetime(2026, 1, 1, tzinfo=ZH).timestamp())
U = kwh_to_units


def lines(doc: dict) -> list[tuple[str, str, str]]:
    return [(ln["key"], ln["quantity"], ln["amount"]) for ln in doc["lines"]]


# --- solar community: 3 consumers, 4 intervals, export and a battery --------------------
#
#        A    B    C   sum | import export charge discharge  PV | solar  autonomy
#  t1   10    5    5    20 |   20      0      0       0       0  |   0      0
#  t2    4    4    2    10 |    0     15      5       0      30  |  10      1
#  t3   12    4    4    20 |    5      0      0       0      15  |  15      0.75
#  t4    5   10    5    20 |   15      0      0       5       0  |   5      0.25
#  sum  31   23   16    70 |   40     15      5       5      45  |  30
#
# solar_used = sum - import (t4's 5 kWh come from the battery, charged from PV at t2).
# production check: 70 - 40 + 15 + 5 - 5 = 45 = PV meter.
# Solar parts per interval (consumption x autonomy):
#   A: 0 + 4 + 9    + 1.25 = 14.25   grid 31 - 14.25 = 16.75
#   B: 0 + 4 + 3    + 2.5  =  9.5    grid 23 -  9.5  = 13.5
#   C: 0 + 2 + 3    + 1.25 =  6.25   grid 16 -  6.25 =  9.75     solar 30, grid 40 = import
# Monthly sums first would give autonomy 30/70 = 3/7 to everyone:
#   A 31*3/7 = 13.2857..., B 9.857..., C 6.857... (A loses 0.96 kWh of sun it used).
CONS = {"a": [10, 4, 12, 5], "b": [5, 4, 4, 10], "c": [5, 2, 4, 5]}
GRID_IMPORT, GRID_EXPORT = [20, 0, 5, 15], [0, 15, 0, 0]
CHARGE, DISCHARGE, PV = [0, 5, 0, 0], [0, 0, 0, 5], [0, 30, 15, 0]


def _u(xs: list[int]) -> list[int]:
    return [U(D(x)) for x in xs]


def test_solar_allocation_per_interval_differs_from_monthly_sums() -> None:
    cons = {k: _u(v) for k, v in CONS.items()}
    total = solar.totals(list(cons.values()), 4)
    used = solar.solar_used(total, _u(GRID_IMPORT))
    assert [units_to_kwh(x) for x in used] == [D(0), D(10), D(15), D(5)]
    alloc = solar.Allocator(total, used)
    shares = {k: alloc.share(cons[k]) for k in sorted(cons)}
    assert [units_to_kwh(x) for x in shares["a"]] == [D(0), D(4), D(9), D("1.25")]
    assert units_to_kwh(sum(shares["a"])) == D("14.25")
    assert units_to_kwh(sum(shares["b"])) == D("9.5")
    assert units_to_kwh(sum(shares["c"])) == D("6.25")
    rec = solar.reconcile(total, used, _u(GRID_IMPORT), _u(GRID_EXPORT), _u(CHARGE),
                          _u(DISCHARGE), _u(PV))
    assert rec.solar + rec.grid == rec.consumption == U(D(70))
    assert rec.grid == rec.grid_import == U(D(40))  # every imported kWh is billed
    assert rec.production_derived == rec.production_metered == U(D(45))
    # The wrong way: one allocation on the month's sums.
    monthly_a = D(31) * D(30) / D(70)
    assert monthly_a.quantize(D("0.0001")) == D("13.2857")
    assert units_to_kwh(sum(shares["a"])) != monthly_a


def test_solar_allocation_shares_always_add_up_exactly() -> None:
    # 3 equal consumers sharing 1 kWh: 1/3 each is not representable; the floors
    # telescope: floor(1/3), floor(2/3) - floor(1/3), 1 - floor(2/3) (micro-kWh).
    cons = [[U(D(1))], [U(D(1))], [U(D(1))]]
    total = solar.totals(cons, 1)
    used = solar.solar_used(total, [U(D(2))])
    alloc = solar.Allocator(total, used)
    parts = [alloc.share(c)[0] for c in cons]
    assert parts == [333333, 333333, 333334]
    assert sum(parts) == U(D(1))


T0 = 14 * 96 + 44  # the 4 intervals: 15 January 11:00-12:00, zero elsewhere


def _community(site, register):  # type: ignore[no-untyped-def]
    def reg(values: list[int]) -> list[tuple[int, int]]:
        return register("2026-01", lambda i: D(values[i - T0]) if T0 <= i < T0 + 4 else D(0))

    readings = {f"m{k}": {IMPORT: reg(v)} for k, v in CONS.items()}
    readings["main"] = {IMPORT: reg(GRID_IMPORT), EXPORT: reg(GRID_EXPORT)}
    readings["batt"] = {IMPORT: reg(CHARGE), EXPORT: reg(DISCHARGE)}
    readings["pv"] = {EXPORT: reg(PV)}
    return readings, site(
        site_extra={"grid_meter": "main", "battery_meter": "batt", "pv_meters": ["pv"]},
        meters=[{"id": m, "gateway": "gw-1"} for m in ("ma", "mb", "mc", "main", "batt", "pv")],
        billing_points=[{"id": k, "building": "b1", "name": k.upper(), "tariff": "solar",
                         "owner": "owner"} for k in "abc"],
        meter_assignments=[{"billing_point": k, "meter": f"m{k}", "from": "2025-01-01"}
                           for k in "abc"],
        accounts=[{"id": "owner", "name": "Owner", "kind": "owner"}]
        + [{"id": f"t{k}", "name": f"Tenant {k}"} for k in "abc"],
        occupancy=[{"billing_point": k, "account": f"t{k}", "from": "2025-01-01"} for k in "abc"],
        tariffs=[{"id": "solar", "versions": [{"valid_from": "2025-01-01", "components": [
            {"key": "solar", "label": "Solarstrom", "applies": "solar", "price": "0.20"},
            {"key": "grid", "label": "Netzstrom", "applies": "grid", "price": "0.30"}]}]}],
    )


def test_solar_community_invoices(site, register) -> None:
    readings, model = _community(site, register)
    run = bill_site(model, JAN, readings)
    a, b, c = (run.documents[f"t{k}"] for k in "abc")
    # A: 14.25 x 0.20 = 2.85; 16.75 x 0.30 = 5.025 -> 5.03; net 7.88
    #    VAT 7.88 x 8.1 % = 0.63828 -> 0.64; 8.52 -> 8.50 (rounding -0.02)
    assert lines(a) == [("solar", "14.250", "2.85"), ("grid", "16.750", "5.03")]
    assert (a["net_total"], a["vat_total"], a["rounding"], a["total_due"]) == \
        ("7.88", "0.64", "-0.02", "8.50")
    # B: 9.5 x 0.20 = 1.90; 13.5 x 0.30 = 4.05; net 5.95; VAT 0.48195 -> 0.48;
    #    6.43 -> 6.45 (+0.02)
    assert lines(b) == [("solar", "9.500", "1.90"), ("grid", "13.500", "4.05")]
    assert (b["vat_total"], b["total_due"]) == ("0.48", "6.45")
    # C: 6.25 x 0.20 = 1.25; 9.75 x 0.30 = 2.925 -> 2.93; net 4.18; VAT 0.33858 -> 0.34;
    #    4.52 -> 4.50
    assert lines(c) == [("solar", "6.250", "1.25"), ("grid", "9.750", "2.93")]
    assert (c["vat_total"], c["total_due"]) == ("0.34", "4.50")
    e = run.summary["energy_kwh"]
    assert (e["consumption"], e["solar"], e["grid"], e["grid_import"], e["grid_export"]) == \
        ("70.000", "30.000", "40.000", "40.000", "15.000")
    assert e["production_derived"] == run.summary["production_metered_kwh"] == "45.000"
    assert "towner" not in run.documents and "owner" not in run.documents  # nothing to bill
    # The invoice's chart: A's month by day; all of it on 15 January (the 4 intervals),
    # split as the lines are: solar 14.25, grid 16.75; the other 30 days are 0.
    days = {d["day"]: (d["solar_kwh"], d["grid_kwh"]) for d in a["daily"]}
    assert len(days) == 31
    assert days["2026-01-15"] == ("14.250", "16.750")
    assert {v for k, v in days.items() if k != "2026-01-15"} == {("0.000", "0.000")}


def test_intervals_without_grid_data_are_billed_as_grid(site, register) -> None:
    # The grid meter's last reading is at the end of the community's 2nd interval: for the
    # 3rd and 4th (and the rest of the month) nobody knows the import, so no solar share.
    readings, model = _community(site, register)
    cut = JAN_START + (T0 + 2) * 900
    readings["main"] = {q: [(t, v) for t, v in rows if t <= cut]
                        for q, rows in readings["main"].items()}
    run = bill_site(model, JAN, readings)
    # Solar only in interval 2 (10 kWh used of 10 consumed): A 4, B 4, C 2.
    # A: solar 4 x 0.20 = 0.80; grid 27 x 0.30 = 8.10; net 8.90; VAT 0.7209 -> 0.72;
    #    9.62 -> 9.60
    # B: 0.80 + 19 x 0.30 = 5.70; net 6.50; VAT 0.5265 -> 0.53; 7.03 -> 7.05
    # C: 2 x 0.20 = 0.40; 14 x 0.30 = 4.20; net 4.60; VAT 0.3726 -> 0.37; 4.97 -> 4.95
    a, b, c = (run.documents[f"t{k}"] for k in "abc")
    assert lines(a) == [("solar", "4.000", "0.80"), ("grid", "27.000", "8.10")]
    assert (a["vat_total"], a["total_due"]) == ("0.72", "9.60")
    assert lines(b) == [("solar", "4.000", "0.80"), ("grid", "19.000", "5.70")]
    assert (b["vat_total"], b["total_due"]) == ("0.53", "7.05")
    assert lines(c) == [("solar", "2.000", "0.40"), ("grid", "14.000", "4.20")]
    assert (c["vat_total"], c["total_due"]) == ("0.37", "4.95")
    (unknown,) = [i for i in run.issues if i.kind == "solar_unknown"]
    assert unknown.meter == "main" and unknown.ts == cut
    # 2 of the community's intervals and the rest of the month after the cut: 2976 - (T0 + 2)
    assert run.summary["intervals_without_grid_data"] == 2976 - (T0 + 2)
    # production cannot be derived from a grid meter that did not report
    assert run.summary["energy_kwh"]["production_derived"] is None
    assert run.summary["unexplained_import_kwh"] is None


# --- a move mid-month, with the reading at the move missing ----------------------------
def test_move_mid_month(site, register) -> None:
    # 0.25 kWh every 15 min = 24 kWh a day. Anna until 16 Jan (exclusive), Ben from 16 Jan.
    # Anna: 15 days x 24 = 360 kWh x 0.30 = 108.00; fee 6.20 x 15/31 = 3.00; net 111.00
    #       VAT 111.00 x 8.1 % = 8.991 -> 8.99; 119.99 -> 120.00 (rounding +0.01)
    # Ben:  16 days x 24 = 384 kWh x 0.30 = 115.20; fee 6.20 x 16/31 = 3.20; net 118.40
    #       VAT 9.5904 -> 9.59; 127.99 -> 128.00 (rounding +0.01)
    rows = register("2026-01", lambda i: D("0.25"), start=D("1000"))
    move = int(datetime(2026, 1, 16, tzinfo=ZH).timestamp())
    rows = [r for r in rows if r[0] != move]  # the reading at the move instant is lost
    model = site(
        occupancy=[{"billing_point": "apt-1", "account": "anna", "from": "2024-06-01",
                    "to": "2026-01-16"},
                   {"billing_point": "apt-1", "account": "ben", "from": "2026-01-16"}],
        tariffs=[{"id": "res", "versions": [{"valid_from": "2025-01-01", "components": [
            {"key": "energy", "label": "Strom", "price": "0.30"}],
            "fees": [{"key": "meter", "label": "Messgebühr", "monthly": "6.20"}]}]}],
    )
    run = bill_site(model, JAN, {"m1": {IMPORT: rows}})
    anna, ben = run.documents["anna"], run.documents["ben"]
    assert lines(anna) == [("energy", "360.000", "108.00"), ("meter", "15/31", "3.00")]
    assert (anna["vat_total"], anna["rounding"], anna["total_due"]) == ("8.99", "0.01", "120.00")
    assert lines(ben) == [("energy", "384.000", "115.20"), ("meter", "16/31", "3.20")]
    assert (ben["vat_total"], ben["rounding"], ben["total_due"]) == ("9.59", "0.01", "128.00")
    # The chart by day follows the stays: Anna 1-15 January, Ben 16-31, 24 kWh a day
    # from the grid (no solar community).
    assert [d["day"] for d in anna["daily"]] == [f"2026-01-{k:02}" for k in range(1, 16)]
    assert [d["day"] for d in ben["daily"]] == [f"2026-01-{k:02}" for k in range(16, 32)]
    assert {(d["solar_kwh"], d["grid_kwh"]) for d in anna["daily"] + ben["daily"]} == \
        {("0.000", "24.000")}
    # The split reading was interpolated: each side has one estimated interval.
    assert anna["sources"][0]["estimated"] == 1 and ben["sources"][0]["estimated"] == 1
    assert "owner" not in run.documents


# --- a tariff change mid-month ---------------------------------------------------------
def test_tariff_change_mid_month_splits_the_line(site, register) -> None:
    # 24 kWh a day; 0.30 until 20 Jan, 0.33 from 21 Jan.
    # 1-20 Jan: 20 x 24 = 480 kWh x 0.30 = 144.00;  21-31 Jan: 11 x 24 = 264 kWh x 0.33 = 87.12
    # net 231.12; VAT 18.72072 -> 18.72; 249.84 -> 249.85 (+0.01)
    rows = register("2026-01", lambda i: D("0.25"))
    comp = {"key": "energy", "label": "Strom"}
    model = site(tariffs=[{"id": "res", "versions": [
        {"valid_from": "2025-01-01", "components": [{**comp, "price": "0.30"}]},
        {"valid_from": "2026-01-21", "components": [{**comp, "price": "0.33"}]}]}])
    doc = bill_site(model, JAN, {"m1": {IMPORT: rows}}).documents["anna"]
    assert lines(doc) == [("energy", "480.000", "144.00"), ("energy", "264.000", "87.12")]
    assert [(ln["from"], ln["to"]) for ln in doc["lines"]] == \
        [("2026-01-01", "2026-01-21"), ("2026-01-21", "2026-02-01")]
    assert (doc["vat_total"], doc["total_due"]) == ("18.72", "249.85")


# --- peak / off-peak ----------------------------------------------------------------------
def test_peak_and_off_peak(site, register) -> None:
    # Peak Mon-Fri 07:00-20:00; 1 and 2 January are holidays (off-peak all day).
    # January 2026 starts on a Thursday: Thu 5, Fri 5, Mon 4, Tue 4, Wed 4 = 22 weekdays,
    # minus the 2 holidays = 20 peak days x 13 h x 1 kWh/h = 260 kWh peak;
    # 31 x 24 = 744 kWh in all, so 744 - 260 = 484 kWh off-peak.
    # 260 x 0.32 = 83.20; 484 x 0.22 = 106.48; net 189.68; VAT 15.36408 -> 15.36;
    # 205.04 -> 205.05 (+0.01)
    rows = register("2026-01", lambda i: D("0.25"))
    model = site(tariffs=[{"id": "res", "tou": {"holidays": ["2026-01-01", "2026-01-02"]},
                           "versions": [{"valid_from": "2025-01-01", "components": [
        {"key": "peak", "label": "Hochtarif", "tou": "peak", "price": "0.32"},
        {"key": "offpeak", "label": "Niedertarif", "tou": "offpeak", "price": "0.22"}]}]}])
    doc = bill_site(model, JAN, {"m1": {IMPORT: rows}}).documents["anna"]
    assert lines(doc) == [("peak", "260.000", "83.20"), ("offpeak", "484.000", "106.48")]
    assert (doc["vat_total"], doc["total_due"]) == ("15.36", "205.05")


# --- a meter replacement ----------------------------------------------------------------
def test_meter_replacement(site, register) -> None:
    # Old meter m1 until 10 Jan 10:00, 1000.000 -> end reading 1226.000 (904 intervals x
    # 0.25 = 226 kWh); new meter m2 from 10 Jan 10:00 at 0.000, 2072 intervals x 0.25 =
    # 518 kWh. 226 + 518 = 744 kWh x 0.30 = 223.20; VAT 18.0792 -> 18.08; 241.28 -> 241.30.
    # The old meter's readings after removal (it reads 0 on the workbench) and the new
    # meter's factory test reading before installation are outside their assignments.
    swap = int(datetime(2026, 1, 10, 10, tzinfo=ZH).timestamp())
    grow = register("2026-01", lambda i: D("0.25"))
    old = [(t, v + U(D(1000))) for t, v in grow if t <= swap] + [(swap + 3600, 0)]
    new = [(t, v - U(D(226))) for t, v in grow if t >= swap] + [(swap - 86400, U(D(5)))]
    model = site(
        meters=[{"id": "m1", "gateway": "gw-1"}, {"id": "m2", "gateway": "gw-1"}],
        meter_assignments=[
            {"billing_point": "apt-1", "meter": "m1", "from": "2025-01-01",
             "to": "2026-01-10T10:00:00", "end_reading": "1226.000"},
            {"billing_point": "apt-1", "meter": "m2", "from": "2026-01-10T10:00:00",
             "start_reading": "0.000"}])
    run = bill_site(model, JAN, {"m1": {IMPORT: old}, "m2": {IMPORT: new}})
    doc = run.documents["anna"]
    assert lines(doc) == [("energy", "744.000", "223.20")]
    assert (doc["vat_total"], doc["total_due"]) == ("18.08", "241.30")
    meters = doc["sources"][0]["meters"]
    assert [(m["meter"], m["end_reading"], m["start_reading"]) for m in meters] == \
        [("m1", "1226.000", None), ("m2", None, "0.000")]
    assert not [i for i in run.issues if i.kind in ("backwards", "missing")]


# --- a charging session across midnight -------------------------------------------------
def test_charging_session_across_midnight(site) -> None:
    # 14 Jan 22:30 -> 15 Jan 01:15 = 2.75 h, 18 500 Wh, badge of Anna.
    # 18.5 kWh x 0.45 = 8.325 -> 8.33; 1 session x 1.00; 2.75 h x 0.50 = 1.375 -> 1.38
    # net 10.71; VAT 0.86751 -> 0.87; 11.58 -> 11.60 (+0.02)
    # A session 31 Jan 23:00 -> 1 Feb 01:00 ends in February: not on January's invoice.
    def ts(*a: int) -> int:
        return int(datetime(*a, tzinfo=ZH).timestamp())

    sessions = [
        SessionIn("s1", "gw-1", "cp-1", 1, "ev", "04A1B2", ts(2026, 1, 14, 22, 30),
                  ts(2026, 1, 15, 1, 15), D("18500")),
        SessionIn("s2", "gw-1", "cp-1", 1, "ev", "04A1B2", ts(2026, 1, 31, 23),
                  ts(2026, 2, 1, 1), D("7000")),
        SessionIn("s3", "gw-1", "cp-1", 1, "ev", "FFFF", ts(2026, 1, 20, 8),
                  ts(2026, 1, 20, 9), D("1000")),
    ]
    model = site(
        meter_assignments=[], badges=[{"tag": "04A1B2", "account": "anna"}],
        session_tariffs=[{"kind": "ev", "valid_from": "2025-01-01", "label": "Laden",
                          "per_kwh": "0.45", "per_session": "1.00", "per_hour": "0.50"}])
    run = bill_site(model, JAN, {}, sessions)
    doc = run.documents["anna"]
    assert lines(doc) == [("ev_per_kwh", "18.5", "8.33"), ("ev_per_session", "1", "1.00"),
                          ("ev_per_hour", "2.7500", "1.38")]
    assert doc["lines"][0]["sessions"] == ["s1"]
    assert (doc["net_total"], doc["vat_total"], doc["total_due"]) == ("10.71", "0.87", "11.60")
    assert [i.detail for i in run.issues if i.kind == "unbilled_session"] == \
        ["s3: unknown badge 'FFFF'"]
    feb = bill_site(model, parse_period("2026-02"), {}, sessions).documents["anna"]
    assert feb["lines"][0]["sessions"] == ["s2"]  # 7 kWh x 0.45 = 3.15
    assert feb["lines"][0]["amount"] == "3.15"


# --- VAT per rate and 0.05 rounding, advances ---------------------------------------------
def test_vat_per_rate_and_cash_rounding() -> None:
    # 8.1 %: 12.34 + 7.66 = 20.00 -> VAT 1.62; 0 %: 3.00 -> VAT 0.00; gross 24.62
    # advances 10.00 -> 14.62 due -> 14.60 (rounding -0.02)
    ls = [{"amount": "12.34", "vat_rate": "8.1"}, {"amount": "7.66", "vat_rate": "8.1"},
          {"amount": "3.00", "vat_rate": "0"}]
    t = totals(ls, advances=D("10.00"))
    assert t["vat"] == [{"rate": "0", "net": "3.00", "vat": "0.00"},
                        {"rate": "8.1", "net": "20.00", "vat": "1.62"}]
    assert (t["gross_total"], t["rounding"], t["total_due"]) == ("24.62", "-0.02", "14.60")
    # 0.025 rounds half away from zero: 10.025 -> 10.05; negative (credit) -10.81 -> -10.80
    assert totals([{"amount": "9.27", "vat_rate": "8.1"}])["total_due"] == "10.00"  # 10.02
    assert totals([{"amount": "-10.00", "vat_rate": "8.1"}])["total_due"] == "-10.80"


def test_days_of_a_month_with_a_clock_change() -> None:
    # March 2026 in Zurich: the clocks go forward on Sunday 29 March (a 23-hour day, 92
    # intervals); October 25 goes back (25 hours, 100 intervals).
    from sitegate.cloud.billing.daily import day_bounds
    from sitegate.cloud.billing.periods import grid_for

    march = day_bounds(grid_for(parse_period("2026-03"), ZH))
    assert len(march) == 31
    sizes = {d.day: i1 - i0 for d, i0, i1 in march}
    assert sizes[29] == 92 and {v for k, v in sizes.items() if k != 29} == {96}
    assert march[-1][2] == 30 * 96 + 92  # the days tile the grid exactly
    october = day_bounds(grid_for(parse_period("2026-10"), ZH))
    assert {d.day: i1 - i0 for d, i0, i1 in october}[25] == 100


def test_heat_and_water_meters_of_a_flat_are_not_billed_as_its_electricity(site,
                                                                           register) -> None:
    # apt-1 has its electricity meter m1 (0.25 kWh an interval) and, for the expense
    # statement, a heat meter (1 kWh an interval) and a water meter (0.01 m³). The billing
    # core bills its electricity alone: 2976 x 0.25 = 744 kWh x 0.30 = 223.20; VAT 8.1 %
    # 18.0792 -> 18.08; 241.28 -> 241.30 (rounding +0.02). Adding the heat meter would
    # have billed 3720 kWh.
    model = site(
        meters=[{"id": "m1", "gateway": "gw-1"},
                {"id": "h1", "gateway": "gw-1", "medium": "heat",
                 "import_quantity": "heat_energy"},
                {"id": "w1", "gateway": "gw-1", "medium": "water", "import_quantity": "volume"}],
        meter_assignments=[{"billing_point": "apt-1", "meter": m, "from": "2025-01-01"}
                           for m in ("h1", "m1", "w1")],
    )
    run = bill_site(model, JAN, {
        "m1": {IMPORT: register("2026-01", lambda i: D("0.25"))},
        "h1": {"heat_energy": register("2026-01", lambda i: D(1))},
        "w1": {"volume": register("2026-01", lambda i: D("0.01"))},
    })
    doc = run.documents["anna"]
    assert lines(doc) == [("energy", "744.000", "223.20")]
    assert (doc["vat_total"], doc["rounding"], doc["total_due"]) == ("18.08", "0.02", "241.30")
