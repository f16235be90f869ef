"""More hand-worked statements: the Czech per-m² limits, a tenant change with and without
a reading at the move, vacancy, failed meters under and over the estimation cap, the
template's required categories. Exact to the cent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from houses import SITE, heat_meters, regs

from sitegate.cloud.expense.consumption import RunError
from sitegate.cloud.expense.statement import AdvancePaid, Cost, run

Y0, APR, JUL, Y1 = date(2025, 1, 1), date(2025, 4, 1), date(2025, 7, 1), date(2026, 1, 1)


def by_key(res, acc: str) -> dict[str, str]:
    out: dict[str, D] = {}
    for ln in res.documents[acc]["lines"]:
        out[ln["key"]] = out.get(ln["key"], D(0)) + D(ln["amount"])
    return {k: str(v) for k, v in out.items()}


def czech(site, areas: dict[str, str]):
    bps = [{"id": k, "building": "h", "name": k, "area_m2": v, "tariff": "t", "owner": "owner"}
           for k, v in areas.items()]
    names = ["anna", "ben", "carla", "dora"]
    return site(billing_points=bps, accounts=SITE["accounts"],
                occupancy=[{"billing_point": k, "account": names[i], "from": "2020-01-01"}
                           for i, k in enumerate(areas)])


CZ_HEATING = [{"id": "teplo", "label": "Vytápění", "kind": "heating", "key": "allocators",
               "consumption_share": "50", "base_key": "area"}]


def hca(values: dict[str, str]) -> list[dict]:
    return [{"billing_point": k, "allocators": [{"id": f"{k}-1", "reading": v}]}
            for k, v in values.items()]


def test_czech_unit_above_200_percent_is_capped(site, period) -> None:
    """269/2015 §3: 20000.00, 50 % base by area (A 20, B 90, C 90 = 200 m²; average
    100.00/m²), 50 % by allocators (A 360, B 320, C 320 of 1000: 10.00 a unit).
      A 1000 + 3600 = 4600 (230.00/m²: above 200 %) -> 200 x 20 = 4000.00 (-600.00)
      B, C 4500 + 3200 = 7700; the 600.00 goes to them by consumption, 320:320 -> +300.00
      each: 8000.00 (88.9 % of the average, inside)."""
    model = czech(site, {"A": "20", "B": "90", "C": "90"})
    spec = period(model, head={"profile": "cz-269-2015"}, categories=CZ_HEATING,
                  units=hca({"A": "360", "B": "320", "C": "320"}))
    res = run(model, spec, [Cost("teplo", D("20000.00"))], [], {})
    assert by_key(res, "anna") == {"teplo.base": "1000.00", "teplo.consumption": "3600.00",
                                   "teplo.correction": "-600.00"}
    assert by_key(res, "ben") == {"teplo.base": "4500.00", "teplo.consumption": "3200.00",
                                  "teplo.correction": "300.00"}
    assert res.documents["carla"]["total_due"] == "8000.00"
    assert any("A lowered to 200 %" in n for n in res.site["notes"])


def test_czech_units_below_80_percent_are_raised_first(site, period) -> None:
    """30000.00 over A 50, B 50, C 100, D 100 m² (average 100.00/m²); base 15000 by area
    (A 2500, B 2500, C 5000, D 5000); 15000 by allocators A 50, B 1700, C 250, D 1000 of
    3000 (5.00 a unit: A 250, B 8500, C 1250, D 5000).
      A 2750 (55 %) and C 6250 (62.5 %) are below 80 %: raised to 4000 and 8000 first;
      B (220 %) and D keep their base; the 30000 - 12000 - 7500 = 10500 left goes by
      consumption 1700:1000 -> B 6611.11.., D 3888.88..: B 9111.11 (182 %), D 8888.89,
      both inside, so B is not capped.
      corrections A +1250.00, C +1750.00, B -1888.888.., D -1111.111..: in cents the
      floors are -188889 and -111112, one cent short of 0; D's remainder (0.89) beats
      B's (0.11): D -1111.11, B -1888.89."""
    model = czech(site, {"A": "50", "B": "50", "C": "100", "D": "100"})
    spec = period(model, head={"profile": "cz-269-2015"}, categories=CZ_HEATING,
                  units=hca({"A": "50", "B": "1700", "C": "250", "D": "1000"}))
    res = run(model, spec, [Cost("teplo", D("30000.00"))], [], {})
    totals = {a: d["total_due"] for a, d in res.documents.items()}
    assert totals == {"anna": "4000.00", "ben": "9111.11", "carla": "8000.00",
                      "dora": "8888.89"}
    assert by_key(res, "dora")["teplo.correction"] == "-1111.11"


MOVE = [{"billing_point": "A", "account": "anna", "from": "2020-01-01", "to": "2025-04-01"},
        {"billing_point": "A", "account": "dora", "from": "2025-04-01"},
        {"billing_point": "B", "account": "ben", "from": "2020-01-01"}]
HEAT_70 = [{"id": "heizung", "label": "Heizung", "kind": "heating", "key": "heat",
            "consumption_share": "70", "base_key": "area"}]


def two_flats(site, occupancy=MOVE):
    bps = [dict(b, area_m2="50") for b in SITE["billing_points"][:2]]
    return site(billing_points=bps, occupancy=occupancy, **heat_meters("A", "B"))


def test_tenant_change_with_a_reading_at_the_move(site, period) -> None:
    """Heating 3650.00, 30 % by area (A, B 50 m² each), 70 % by heat meters.
      base 1095.00: A 547.50, B 547.50; consumption 2555.00: A 1000 of 2500 kWh -> 1022.00,
      B 1500 -> 1533.00.
    A: Anna to 31 March (90 days), Dora from 1 April (275 of 365 days).
      base by days: Anna 547.50 x 90/365 = 135.00, Dora 412.50
      consumption by the reading at the move (5600 kWh: Anna 600, Dora 400 of 1000):
        Anna 1022.00 x 0.6 = 613.20, Dora 408.80."""
    model = two_flats(site)
    spec = period(model, categories=HEAT_70, units=[{"billing_point": "A"},
                                                   {"billing_point": "B"}])
    readings = regs(heat_A={Y0: "5000", APR: "5600", Y1: "6000"}, heat_B={Y0: "0", Y1: "1500"})
    res = run(model, spec, [Cost("heizung", D("3650.00"))], [], readings)
    assert by_key(res, "anna") == {"heizung.base": "135.00", "heizung.consumption": "613.20"}
    assert by_key(res, "dora") == {"heizung.base": "412.50", "heizung.consumption": "408.80"}
    assert by_key(res, "ben") == {"heizung.base": "547.50", "heizung.consumption": "1533.00"}
    line = next(ln for ln in res.documents["anna"]["lines"] if ln["part"] == "consumption")
    assert "by readings at the move" in line["basis"] and line["quantity"] == "600.000"


def test_tenant_change_without_a_reading_uses_degree_days(site, period) -> None:
    """The same without the reading on 1 April: the heat is split by the standard
    degree-day table (per mille): January 170 + February 150 + March 130 = 450 for Anna,
    550 for Dora: Anna 1022.00 x 0.45 = 459.90, Dora 562.10 (base still by days)."""
    model = two_flats(site)
    spec = period(model, categories=HEAT_70, units=[{"billing_point": "A"},
                                                   {"billing_point": "B"}])
    readings = regs(heat_A={Y0: "5000", Y1: "6000"}, heat_B={Y0: "0", Y1: "1500"})
    res = run(model, spec, [Cost("heizung", D("3650.00"))], [], readings)
    assert by_key(res, "anna") == {"heizung.base": "135.00", "heizung.consumption": "459.90"}
    assert by_key(res, "dora") == {"heizung.base": "412.50", "heizung.consumption": "562.10"}


def test_vacancy_is_borne_by_the_owner_and_advances_net_to_balances(site, period) -> None:
    """Caretaker 730.00 in equal shares over A and B: 365.00 each. B: Ben until 30 June
    (181 days), then vacant (184 days): Ben 365.00 x 181/365 = 181.00, the owner 184.00.
    Ben paid 200.00 in advances: refund 19.00; Anna paid 300.00: due 65.00."""
    occ = [MOVE[0] | {"to": None}, {"billing_point": "B", "account": "ben",
                                    "from": "2020-01-01", "to": "2025-07-01"}]
    occ[0] = {k: v for k, v in occ[0].items() if v is not None}
    model = two_flats(site, occ)
    cats = [{"id": "hauswart", "label": "Hauswart", "kind": "caretaker", "key": "equal"}]
    spec = period(model, categories=cats, units=[{"billing_point": "A"},
                                                {"billing_point": "B"}])
    res = run(model, spec, [Cost("hauswart", D("730.00"))],
              [AdvancePaid("ben", "B", D("200.00")), AdvancePaid("anna", "A", D("300.00"))],
              {})
    assert res.documents["ben"]["total_due"] == "-19.00"
    assert res.documents["anna"]["total_due"] == "65.00"
    assert res.documents["owner"]["total_due"] == "184.00"
    owner_line = res.documents["owner"]["lines"][0]
    assert owner_line["vacant"] is True and owner_line["from"] == "2025-07-01"


def three_heat(site):
    return site(**heat_meters("A", "B", "C"))


def test_failed_meter_under_the_cap_is_estimated_from_comparable_units(site, period) -> None:
    """C's heat meter sent nothing after 1 July: estimated. C is 50 of 200 m² = 25 %,
    not more than HeizkostenV §9a's 25 %: comparable units, A 3000 + B 4500 kWh over
    60 + 90 m² = 50 kWh/m² -> C 2500 kWh (flagged).
    Heating 2000.00: base 600.00 by area: A 180.00, B 270.00, C 150.00;
    consumption 1400.00 by 3000:4500:2500 of 10000: A 420.00, B 630.00, C 350.00."""
    model = three_heat(site)
    spec = period(model, categories=HEAT_70)
    readings = regs(heat_A={Y0: "0", Y1: "3000"}, heat_B={Y0: "0", Y1: "4500"},
                    heat_C={Y0: "0", JUL: "1000"})
    res = run(model, spec, [Cost("heizung", D("2000.00"))], [], readings)
    assert by_key(res, "carla") == {"heizung.base": "150.00", "heizung.consumption": "350.00"}
    assert by_key(res, "anna") == {"heizung.base": "180.00", "heizung.consumption": "420.00"}
    line = next(ln for ln in res.documents["carla"]["lines"] if ln["part"] == "consumption")
    assert line["estimated"] == "comparable_units"
    assert res.site["units"][2]["consumption"]["heat"]["total"] == "2500.000"


def test_failed_meter_over_the_cap_allocates_the_consumption_part_by_area(site, period) -> None:
    """B's meter failed: 90 of 200 m² = 45 % > 25 %: the consumption part goes by area
    for everyone, and the statement says so: 1400.00 x 60/200 = 420.00 (A),
    630.00 (B), 350.00 (C)."""
    model = three_heat(site)
    spec = period(model, categories=HEAT_70)
    readings = regs(heat_A={Y0: "0", Y1: "3000"}, heat_C={Y0: "0", Y1: "9000"})
    res = run(model, spec, [Cost("heizung", D("2000.00"))], [], readings)
    assert by_key(res, "carla") == {"heizung.base": "150.00", "heizung.consumption": "350.00"}
    assert by_key(res, "ben") == {"heizung.base": "270.00", "heizung.consumption": "630.00"}
    assert any("more than the 25 %" in n and "by Fläche for everyone" in n
               for n in res.site["notes"])
    assert res.site["categories"][0]["parts"][1]["by_area_instead_of"] == "heat"


def test_template_missing_category_refuses_naming_it(site, period) -> None:
    model = three_heat(site)
    cats = HEAT_70 + [{"id": "wasser", "label": "Kaltwasser", "kind": "water", "key": "area"}]
    spec = period(model, head={"require": ["heating", "water"]}, categories=cats)
    readings = regs(heat_A={Y0: "0", Y1: "3000"}, heat_B={Y0: "0", Y1: "4500"},
                    heat_C={Y0: "0", Y1: "100"})
    with pytest.raises(RunError, match="requires a water category with costs"):
        run(model, spec, [Cost("heizung", D("2000.00"))], [], readings)
    # with the water invoice it runs
    run(model, spec, [Cost("heizung", D("2000.00")), Cost("wasser", D("300.00"))], [],
        readings)
