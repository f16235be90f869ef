"""Exact units: energy as integer micro-kWh inside the hot loops, money as Decimal.

Interval arithmetic over a month of 15-min data for thousands of billing points runs on
plain ints (exact and fast); values cross back to Decimal only when a line is priced.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

UNITS_PER_KWH = 10**6
_UNIT = Decimal(1) / UNITS_PER_KWH
CENT = Decimal("0.01")


def kwh_to_units(value: Decimal, unit: str = "kWh") -> int:
    """A register value (kWh or Wh) as integer micro-kWh; finer digits are rounded."""
    if unit == "Wh":
        value = value / 1000
    elif unit not in ("kWh", ""):
        raise ValueError(f"unsupported energy unit {unit!r} (expected kWh or Wh)")
    return int((value / _UNIT).to_integral_value(rounding=ROUND_HALF_UP))


def units_to_kwh(n: int) -> Decimal:
    """Exact Decimal kWh, without trailing zeros beyond three decimals (Wh)."""
    d = Decimal(n) / UNITS_PER_KWH
    q = d.quantize(Decimal("0.001"))
    return q if q == d else d.normalize()


def round_money(x: Decimal, step: Decimal = CENT) -> Decimal:
    """Commercial rounding (half away from zero) to a multiple of ``step``."""
    return ((x / step).to_integral_value(rounding=ROUND_HALF_UP) * step).quantize(CENT)
