"""A failed meter estimated from the unit's previous period: the last run of the period
just before, from the store."""

from __future__ import annotations

from datetime import date

from houses import SITE, heat_meters, ingest

from sitegate.cloud.billing import ops as billing_ops
from sitegate.cloud.billing.sitemodel import parse_site
from sitegate.cloud.expense import ops
from sitegate.cloud.store.db import make_engine, upgrade

Y22, Y23, Y24 = date(2022, 1, 1), date(2023, 1, 1), date(2024, 1, 1)


def period(pid: str, first: date, end: date) -> str:
    return f"""
[period]
id = "{pid}"
from = {first}
to = {end}
[[categories]]
id = "heizung"
label = "Heizung"
kind = "heating"
key = "heat"
consumption_share = "70"
base_key = "area"
"""


def test_failed_meter_estimated_from_the_previous_period(tmp_path) -> None:
    """2022: A 3000, B 4500, C 2000 kWh, all measured. 2023: C's meter sent nothing at
    the end: estimated from its 2022 consumption, 2000 x 365/365 = 2000 kWh (comparable
    units would give 50 kWh/m² x 50 m² = 2500).
    2023 heating 2000.00: base 600.00 by area: A 180.00, B 270.00, C 150.00;
    consumption 1400.00 by 3000 : 4500 : 2000 of 9500: 442.105.., 663.157.., 294.736..;
    floors 442.10 + 663.15 + 294.73 = 1399.98, two cents to the largest remainders
    (B 0.79, C 0.68; A 0.53 gets none): A 442.10, B 663.16, C 294.74."""
    db = str(tmp_path / "cloud.db")
    upgrade(db)
    engine = make_engine(db)
    billing_ops.import_site(engine, parse_site(dict(SITE, **heat_meters("A", "B", "C"))))
    q = "heat_energy"
    ingest(engine, "gw-haus", [
        ("heat-A", q, Y22, "0", "kWh"), ("heat-A", q, Y23, "3000", "kWh"),
        ("heat-A", q, Y24, "6000", "kWh"),
        ("heat-B", q, Y22, "0", "kWh"), ("heat-B", q, Y23, "4500", "kWh"),
        ("heat-B", q, Y24, "9000", "kWh"),
        ("heat-C", q, Y22, "0", "kWh"), ("heat-C", q, Y23, "2000", "kWh")])
    for pid, a, b in (("2022", Y22, Y23), ("2023", Y23, Y24)):
        ops.create_period(engine, None, "p.toml", period(pid, a, b))
        ops.add_cost(engine, None, pid, "heizung", "2000.00", "test")
    ops.run_statements(engine, None, "2022", today=date(2024, 2, 1))
    ops.run_statements(engine, None, "2023", today=date(2024, 2, 1))
    carla = ops.statement(engine, None, "2023", "carla")["document"]
    cons = next(ln for ln in carla["lines"] if ln["part"] == "consumption")
    assert (cons["amount"], cons["quantity"], cons["estimated"]) == \
        ("294.74", "2000.000", "previous_period")
    due = {a: ops.statement(engine, None, "2023", a)["total_due"]
           for a in ("anna", "ben", "carla")}
    assert due == {"anna": "622.10", "ben": "933.16", "carla": "444.74"}
    engine.dispose()
