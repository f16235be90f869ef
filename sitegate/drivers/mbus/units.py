"""pymbusparser's UCUM-style units -> the gateway's SI-style units, with exact factors.

Energy in Wh (or J), volume m3, power W, flow m3/h, temperatures °C (differences K),
durations in seconds. Units we do not know pass through unchanged.
"""

from __future__ import annotations

from decimal import Decimal

_ONE = Decimal(1)

UNITS: dict[str, tuple[str, Decimal]] = {
    "W.h": ("Wh", _ONE), "J": ("J", _ONE), "m3": ("m3", _ONE), "kg": ("kg", _ONE),
    "W": ("W", _ONE), "J.h-1": ("J/h", _ONE), "m3.h-1": ("m3/h", _ONE),
    "m3.min-1": ("m3/h", Decimal(60)), "m3.s-1": ("m3/h", Decimal(3600)),
    "kg.h-1": ("kg/h", _ONE), "Cel": ("°C", _ONE), "K": ("K", _ONE), "bar": ("bar", _ONE),
    "s": ("s", _ONE), "min": ("s", Decimal(60)), "h": ("s", Decimal(3600)),
    "d": ("s", Decimal(86400)), "V": ("V", _ONE), "A": ("A", _ONE),
    "%": ("%", _ONE), "Hz": ("Hz", _ONE), "VA": ("VA", _ONE), "var": ("var", _ONE),
}


def canonical(unit: str | None) -> tuple[str, Decimal]:
    """(SI-style unit, factor to multiply the value by)."""
    if not unit:
        return "", _ONE
    return UNITS.get(unit, (unit, _ONE))
