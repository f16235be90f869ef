"""Hand-worked expense statements over the pure rules (no store): every amount worked out
in the comments, exact to the cent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from fractions import Fraction

import pytest
from houses import SITE, heat_meters, merged, regs

from sitegate.cloud.expense.allocate import split_exact
from sitegate.cloud.expense.consumption import RunError
from sitegate.cloud.expense.spec import SpecError
from sitegate.cloud.expense.statement import AdvancePaid, Cost, run

Y0, Y1 = date(2025, 1, 1), date(2026, 1, 1)


def amounts(res, account: str) -> dict[str, str]:
    """key -> amount of one account's statement lines (summed per key)."""
    out: dict[str, D] = {}
    for ln in res.documents[account]["lines"]:
        out[ln["key"]] = out.get(ln["key"], D(0)) + D(ln["amount"])
    return {k: str(v) for k, v in out.items()}


def test_largest_remainder_gives_the_cent_to_the_largest_remainder() -> None:
    # 0.10 in thirds: 0.0333.. each; floors 0.03 x 3 = 0.09, one cent left: all three
    # remainders are equal (1/3 cent), so it goes to the first in the given order.
    assert split_exact(D("0.10"), {"a": Fraction(1), "b": Fraction(1), "c": Fraction(1)}) == \
        {"a": D("0.04"), "b": D("0.03"), "c": D("0.03")}
    # 100.00 by 1:2:4 -> 14.2857.., 28.5714.., 57.1428..; floors 14.28 + 28.57 + 57.14 =
    # 99.99; remainders 0.57, 0.14, 0.28 (of a cent): a gets the cent -> 14.29.
    assert split_exact(D("100.00"), {"a": Fraction(1), "b": Fraction(2), "c": Fraction(4)}) \
        == {"a": D("14.29"), "b": D("28.57"), "c": D("57.14")}


HCA_UNITS = [
    {"billing_point": "A", "allocators": [{"id": "A-1", "rating": "1.0", "reading": "400"},
                                          {"id": "A-2", "rating": "2.0", "reading": "100"}]},
    {"billing_point": "B", "allocators": [{"id": "B-1", "rating": "1.25", "reading": "800"}]},
    {"billing_point": "C", "allocators": [{"id": "C-1", "rating": "1.0", "reading": "400"}]},
]
HEATING_30_70 = [{"id": "heizung", "label": "Heizung", "kind": "heating", "key": "allocators",
                  "consumption_share": "70", "base_key": "heated_area"}]


def test_german_heating_30_70_with_heat_cost_allocators(site, period) -> None:
    """Costs 6000.00 + 4000.01 = 10000.01; 30 % by heated area (60, 90, 50 of 200 m²),
    70 % by allocator units x rating factor.
      base = round(10000.01 x 0.30) = round(3000.003) = 3000.00; consumption 7000.01
      allocators: A 400 x 1.0 + 100 x 2.0 = 600, B 800 x 1.25 = 1000, C 400 x 1 = 400;
                  of 2000
      base: A 3000 x 60/200 = 900.00, B 1350.00, C 750.00
      consumption: A 7000.01 x 0.3 = 2100.003, B x 0.5 = 3500.005, C x 0.2 = 1400.002
        floors 2100.00 + 3500.00 + 1400.00 = 7000.00: one cent left, to the largest
        remainder (B, 0.5 of a cent): B 3500.01
      A 3000.00, B 4850.01, C 2150.00: 10000.01 in all.
    Advances: Anna paid 3100.00 -> refund 100.00; Ben 4500.00 -> due 350.01."""
    model = site()
    spec = period(model, units=HCA_UNITS, categories=HEATING_30_70)
    res = run(model, spec, [Cost("heizung", D("6000.00")), Cost("heizung", D("4000.01"))],
              [AdvancePaid("anna", "A", D("3100.00")), AdvancePaid("ben", "B", D("4500.00"))],
              {})
    assert amounts(res, "anna") == {"heizung.base": "900.00", "heizung.consumption": "2100.00"}
    assert amounts(res, "ben") == {"heizung.base": "1350.00",
                                   "heizung.consumption": "3500.01"}
    assert amounts(res, "carla") == {"heizung.base": "750.00",
                                     "heizung.consumption": "1400.00"}
    assert res.documents["anna"]["total_due"] == "-100.00"
    assert res.documents["anna"]["refund"] is True
    assert res.documents["ben"]["total_due"] == "350.01"
    assert res.documents["carla"]["total_due"] == "2150.00"  # no advances
    cat = res.site["categories"][0]
    assert cat["total"] == "10000.01"
    assert [p["total"] for p in cat["parts"]] == ["3000.00", "7000.01"]
    assert res.site["units"][0]["consumption"]["allocators"]["total"] == "600.000"


def test_split_outside_the_profile_range_is_refused(site, period) -> None:
    # HeizkostenV §7(1): 50-70 % by consumption; 80 % is refused, naming the key and rule
    cats = [dict(HEATING_30_70[0], consumption_share="80")]
    with pytest.raises(SpecError, match=r"categories\[0\].consumption_share: 80 % .* "
                                        r"50-70 % \(de-heizkostenv, HeizkostenV §7\(1\)\)"):
        period(site(), units=HCA_UNITS, categories=cats)


COMBINED = [
    {"id": "heizung", "label": "Heizung", "kind": "heating", "key": "heat",
     "consumption_share": "50", "base_key": "area", "combined_with": "warmwasser"},
    {"id": "warmwasser", "label": "Warmwasser", "kind": "hot_water", "key": "hot_water",
     "consumption_share": "70", "base_key": "area"},
]


def test_combined_heating_and_hot_water_by_the_volume_formula(site, period) -> None:
    """One oil boiler: 5000 l for 4500.00; Hi of oil 10 kWh/l -> fuel 50000 kWh.
    Hot water (HeizkostenV §9(2)): V = A 20 + B 30 = 50 m³ (hot-water meters),
      Q = 2.5 x 50 x (60 - 10) = 6250 kWh; share 6250 / 50000 = 12.5 %
      -> hot water 4500.00 x 0.125 = 562.50, heating 3937.50.
    Heating 50/50, area A 60, B 90 (150 m²), heat meters A 3000, B 5000 kWh:
      base 1968.75: A 787.50, B 1181.25
      consumption 1968.75: A x 3/8 = 738.28125, B x 5/8 = 1230.46875; floors 738.28 +
        1230.46 = 1968.74, the cent to B (remainder 0.875 > 0.125): B 1230.47
    Hot water 30/70: base round(562.50 x 0.3) = 168.75: A 67.50, B 101.25;
      consumption 393.75 by m³: A x 20/50 = 157.50, B 236.25.
    A 787.50 + 738.28 + 67.50 + 157.50 = 1750.78; B 1181.25 + 1230.47 + 101.25 + 236.25
    = 2749.22; together 4500.00."""
    model = site(occupancy=SITE["occupancy"][:2],
                 **merged(heat_meters("A", "B"), heat_meters("A", "B", medium="water",
                                                             prefix="ww")))
    spec = period(model, units=[{"billing_point": "A"}, {"billing_point": "B"}],
                  categories=COMBINED, hot_water_meters=["ww-A", "ww-B"])
    readings = regs(heat_A={Y0: "1000", Y1: "4000"}, heat_B={Y0: "0", Y1: "5000"},
                    ww_A={Y0: "100", Y1: "120"}, ww_B={Y0: "7", Y1: "37"})
    res = run(model, spec, [Cost("heizung", D("4500.00"), D(5000), "l")], [], readings)
    assert amounts(res, "anna") == {"heizung.base": "787.50", "heizung.consumption": "738.28",
                                    "warmwasser.base": "67.50",
                                    "warmwasser.consumption": "157.50"}
    assert amounts(res, "ben") == {"heizung.base": "1181.25", "heizung.consumption": "1230.47",
                                   "warmwasser.base": "101.25",
                                   "warmwasser.consumption": "236.25"}
    assert res.documents["anna"]["total_due"] == "1750.78"
    assert res.documents["ben"]["total_due"] == "2749.22"
    combined = res.site["categories"][0]["combined"]
    assert (combined["q_kwh"], combined["fuel_kwh"], combined["share"], combined["amount"]) == \
        ("6250.000", "50000.000", "12.5000", "562.50")
    # without the fuel quantity the share cannot be found: refused, naming the invoice
    with pytest.raises(RunError, match="needs the fuel quantity"):
        run(model, spec, [Cost("heizung", D("4500.00"))], [], readings)
