"""Exact units: energy as integer micro-kWh inside the hot loops, money as Decimal.

Interval arithmetic over a month of 15-min data for thousands of billing points runs on
plain ints (exact and fast); values cross back to Decimal only when a line is priced.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

UNITS_PER_KWH = 10**6
_UNIT = Decimal(1) / UNITS_PER_KWH
CENT = Decimal("0.01")
# Registers and interval series are int64 arrays. Any register value must fit with room to
# spare, so that unwrapping a rollover or subtracting two values cannot overflow either:
# 2**62 micro-kWh is 4.6e12 kWh, far beyond any real meter (a garbage float32 is 3.4e38).
MAX_UNITS = 2**62


# Register units and their factor to the unit billing counts in (kWh, or m³ for volumes):
# both are held as integer millionths.
FACTORS = {"kWh": Decimal(1), "": Decimal(1), "Wh": Decimal("0.001"),
           "m³": Decimal(1), "m3": Decimal(1)}


def kwh_to_units(value: Decimal, unit: str = "kWh") -> int:
    """A register value (kWh, Wh; m³ for water and gas) as integer millionths of kWh
    (or m³); finer digits are rounded. A value no int64 register can hold is a ValueError
    (a bad reading, not a crash)."""
    if unit == "Wh":
        value = value / 1000
    elif unit not in FACTORS:
        raise ValueError(f"unsupported energy unit {unit!r} (expected kWh or Wh; m³ for "
                         "water and gas)")
    else:
        value = value * FACTORS[unit]
    n = int((value / _UNIT).to_integral_value(rounding=ROUND_HALF_UP))
    if not -MAX_UNITS < n < MAX_UNITS:
        raise ValueError(f"register value {value} {unit or 'kWh'} is out of range")
    return n


def units_to_kwh(n: int) -> Decimal:
    """Exact Decimal kWh, without trailing zeros beyond three decimals (Wh)."""
    n = int(n)  # numpy's int64 too
    if n % 1000 == 0:  # whole Wh (most values): the three decimals directly, no division
        return Decimal(n // 1000).scaleb(-3)
    d = Decimal(n) / UNITS_PER_KWH
    q = d.quantize(Decimal("0.001"))
    return q if q == d else d.normalize()


def round_money(x: Decimal, step: Decimal = CENT) -> Decimal:
    """Commercial rounding (half away from zero) to a multiple of ``step``."""
    return ((x / step).to_integral_value(rounding=ROUND_HALF_UP) * step).quantize(CENT)
