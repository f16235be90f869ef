"""Interval consumption from cumulative registers: rollover, faults, gaps."""

from __future__ import annotations

from decimal import Decimal as D

from sitegate.cloud.billing.consumption import ESTIMATED, MISSING, interval_consumption
from sitegate.cloud.billing.units import kwh_to_units as U


def test_rollover_is_unwrapped() -> None:
    # A 6-digit register wraps at 100000 kWh: 99999.5 -> 99999.75 -> 0.0 -> 0.25
    rows = [(0, U(D("99999.5"))), (900, U(D("99999.75"))), (1800, 0), (2700, U(D("0.25")))]
    s = interval_consumption(rows, 0, 3, "m", rollover=U(D(100000)))
    assert list(s.values) == [U(D("0.25"))] * 3
    assert [i.kind for i in s.issues] == ["rollover"]


def test_backwards_reading_is_flagged_and_not_counted_twice() -> None:
    # 10 -> 11 -> (glitch 3) -> 12: the glitch is dropped, its boundary interpolated
    rows = [(0, U(D(10))), (900, U(D(11))), (1800, U(D(3))), (2700, U(D(12)))]
    s = interval_consumption(rows, 0, 3, "m")
    assert list(s.values) == [U(D(1)), U(D("0.5")), U(D("0.5"))]
    assert [i.kind for i in s.issues] == ["backwards", "estimated"]
    assert s.flags == {1: ESTIMATED, 2: ESTIMATED}
    assert sum(s.values) == U(D(2))  # 12 - 10: nothing gained or lost


def test_gap_interpolated_and_unknown_edges_missing() -> None:
    # readings at 0 and 3600 only: 4 intervals of 1 kWh each, estimated; nothing after
    rows = [(0, U(D(100))), (3600, U(D(104)))]
    s = interval_consumption(rows, 0, 5, "m")
    assert list(s.values) == [U(D(1))] * 4 + [0]
    assert s.flags == {0: ESTIMATED, 1: ESTIMATED, 2: ESTIMATED, 3: ESTIMATED, 4: MISSING}


def test_register_keeps_readings_compact_and_in_order() -> None:
    from sitegate.cloud.billing.registers import Register

    # out of order, with a duplicate instant: sorted by (time, value) like the tuples were
    rows = [(1800, 30), (0, 10), (900, 25), (900, 20)]
    reg = Register.of(rows)
    assert list(reg) == sorted(rows) and len(reg) == 4
    assert (reg.ts.itemsize, reg.values.itemsize) == (8, 8)  # 16 bytes a reading
    assert reg.span(900, 1800) == (1, 4) and reg[1] == (900, 20)
    assert Register.of(reg) is reg
    # the consumption is the same from a Register as from the plain list
    a = interval_consumption(rows, 0, 2, "m")
    b = interval_consumption(reg, 0, 2, "m")
    assert list(a.values) == list(b.values) == [10, 10]


def test_registers_sharing_their_times_copy_before_changing() -> None:
    from array import array

    from sitegate.cloud.billing.registers import Register

    # The load gives a site's meters one array of times; a reading entered by hand on one
    # meter must not appear on the other.
    times = array("q", [0, 900])
    a = Register(times, array("q", [10, 20]), shared=True)
    b = Register(times, array("q", [30, 40]), shared=True)
    a.append(450, 15)
    a.sort()
    assert list(a) == [(0, 10), (450, 15), (900, 20)]
    assert list(b) == [(0, 30), (900, 40)] and b.ts is times
