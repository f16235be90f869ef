"""Heating and water settled for the demo's tenants: an accounting period from the 1st of
the month to today, the house's heating and water invoices, the tenants' advance
payments, one statement per tenant (issued, its PDF in the demo directory), as an
operator would with ``sitegate-cloud expense period create | invoice add | advances | run``
and ``invoice issue``.

The costs follow from the simulated use (``heat_water``): heat at HEAT_PRICE a kWh, water
and waste water at WATER_PRICE a m³. Each meter uses a fixed amount a day, so a tenant's
share is the same fraction every day: heat 3 : 4 : 5, water 2 : 3 : 1 (apartments 1-3).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sitegate.cloud.billing import ops as billing_ops
from sitegate.cloud.expense import ops
from sitegate.cloud.store import expense as store
from sitegate.cloud.store.billing import DB as Engine
from sitegate.demo.mbus_meters import METERS
from sitegate.demo.site import ACCOUNTS

HEAT_PRICE = Decimal("0.12")  # CHF per kWh of district heat
WATER_PRICE = Decimal("4.50")  # CHF per m³ of water and waste water
# advance payments a day: Anna Muster pays more than she uses (a refund), the others less
ADVANCES = {"muster": Decimal("4.00"), "weber": Decimal("4.50"), "keller": Decimal("4.50")}
ENTERED_BY = "sitegate demo"


def period_text(pid: str, first: date, end: date) -> str:
    """The accounting period's file (``sitegate-cloud expense period create FILE``)."""
    return f"""# The demo's accounting period for heating and water, made by sitegate demo.
# Billing points, tenants and the heat and water meters come from billing-site.toml.
[period]
id = "{pid}"
from = {first.isoformat()}
to = {end.isoformat()}                 # exclusive: the statement is made once it has ended
profile = "free"                      # no statutory split: all by the meters
require = ["heating", "water"]

[[categories]]
id = "heating"
label = "Heating"
kind = "heating"
key = "heat"                          # the heat meters, kWh

[[categories]]
id = "water"
label = "Water and waste water"
kind = "water"
key = "water"                         # the water meters, m³
"""


def costs(days: int) -> dict[str, tuple[Decimal, Decimal, str, str]]:
    """The house's invoices for ``days`` of the simulated use: category -> (amount,
    quantity, unit, supplier)."""
    heat = sum((m.per_day for m in METERS if m.medium == "heat"), Decimal(0)) * days
    water = sum((m.per_day for m in METERS if m.medium == "water"), Decimal(0)) * days
    return {"heating": ((heat * HEAT_PRICE).quantize(Decimal("0.01")), heat, "kWh",
                        "Demo district heating"),
            "water": ((water * WATER_PRICE).quantize(Decimal("0.01")), water, "m³",
                      "Demo waterworks")}


def settle(engine: Engine, site: str, pid: str, first: date, end: date,
           workdir: Path) -> dict[str, Any]:
    """The period defined, its costs and advances entered (again: a re-run in the same
    directory replaces the demo's own), the statements run and issued, their PDFs
    written. Issued statements that the new run changes are cancelled and replaced."""
    text = period_text(pid, first, end)
    (workdir / "expense-period.toml").write_text(text)
    ops.create_period(engine, site, "expense-period.toml", text)
    with engine.begin() as conn:
        for c in store.costs(conn, site, pid):
            if c["entered_by"] == ENTERED_BY:
                store.delete_cost(conn, site, pid, c["id"])
    days = (end - first).days
    for category, (amount, qty, unit, supplier) in costs(days).items():
        ops.add_cost(engine, site, pid, category, str(amount), ENTERED_BY, str(qty), unit,
                     end, supplier)
    apartments = {m.apartment for m in METERS}
    for account, _name, apt, _badge in ACCOUNTS:
        if apt in apartments:
            ops.set_advance(engine, site, pid, account, apt, str(ADVANCES[account] * days))
    result = ops.run_statements(engine, site, pid)
    replaced = [d["number"] for d in result["issued_differs"]]
    if replaced:
        for number in replaced:
            billing_ops.act(engine, site, number, "cancel")
        result = ops.run_statements(engine, site, pid)
    out = []
    for account, number in sorted(result["statements"].items(), key=lambda x: x[1]):
        view = ops.statement(engine, site, pid, account)
        if view["state"] == "draft":
            billing_ops.act(engine, site, number, "issue")
            view = ops.statement(engine, site, pid, account)
        path = workdir / f"statement-{pid}-{number}.pdf"
        path.write_bytes(ops.pdf(engine, site, pid, account))
        out.append((path, view))
    return {"period": pid, "from": first, "to": end, "statements": out,
            "cancelled": replaced, "total_costs": result["total_costs"],
            "issues": result["issues"]}
