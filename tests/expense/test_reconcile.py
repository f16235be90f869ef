"""Service-charge reconciliation by type: equal shares, water by meters (every target must
have one with consumption for the whole period), heating refused towards the run."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from houses import heat_meters, regs

from sitegate.cloud.expense.consumption import RunError
from sitegate.cloud.expense.reconcile import reconcile

Y0, Y1 = date(2025, 1, 1), date(2026, 1, 1)


def test_equal_shares_and_water_by_meters(site) -> None:
    model = site(**heat_meters("A", "B", "C", medium="water", prefix="w"))
    # 100.00 equally over three: 33.34, 33.33, 33.33 (the cent to the first, in order)
    r = reconcile(model, "other", D("100.00"), ["A", "B", "C"], Y0, Y1, {})
    assert [t["amount"] for t in r["targets"]] == ["33.34", "33.33", "33.33"]
    # water 120.00 by 10 : 20 : 30 m³ of 60: 20.00, 40.00, 60.00
    readings = regs(w_A={Y0: "0", Y1: "10"}, w_B={Y0: "5", Y1: "25"}, w_C={Y0: "1", Y1: "31"})
    r = reconcile(model, "water", D("120.00"), ["A", "B", "C"], Y0, Y1, readings)
    assert [t["amount"] for t in r["targets"]] == ["20.00", "40.00", "60.00"]
    with pytest.raises(RunError, match="statement rules"):
        reconcile(model, "heating", D("1.00"), ["A"], Y0, Y1, readings)


def test_water_needs_a_meter_with_consumption_for_every_target(site) -> None:
    model = site(**heat_meters("A", "B", medium="water", prefix="w"))
    readings = regs(w_A={Y0: "0", Y1: "10"}, w_B={Y0: "5", date(2025, 6, 1): "25"})
    with pytest.raises(RunError, match="^C has no water meter"):
        reconcile(model, "water", D("120.00"), ["A", "C"], Y0, Y1, readings)
    with pytest.raises(RunError, match="^B: water meter w-B has no reading around 2026-01-01"):
        reconcile(model, "water", D("120.00"), ["A", "B"], Y0, Y1, readings)
