"""Compare our decoding of a libmbus test frame with libmbus's normalised output.

libmbus and we state the same facts in different words; these normalisations are the only
ones applied: SI units (kWh -> Wh, l -> m3), libmbus's '-' for 'no unit', UTF-8 '°C' read as
ISO-8859-1, the 'Z' libmbus appends to meter-local date-times, spaces in hex dumps, and
libmbus's printf("%f") rounding of values to 6 decimals.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sitegate.drivers.mbus.decode import Record

LIBMBUS_UNITS: dict[str, tuple[str, Decimal]] = {
    "m^3": ("m3", Decimal(1)), "m^3/h": ("m3/h", Decimal(1)), "Â°C": ("°C", Decimal(1)),
    "°C": ("°C", Decimal(1)), "-": ("", Decimal(1)), "": ("", Decimal(1)),
    "kWh": ("Wh", Decimal(1000)), "l": ("m3", Decimal("0.001")),
    "Units for H.C.A.": ("", Decimal(1)),  # heat cost allocator units are dimensionless
}
RAW_FUNCTIONS = ("manufacturer_specific", "more_records_follow")


def differences(records: list[Record], expected: list[dict[str, Any]]) -> dict[str, str]:
    """{record index (or 'count'): what differs}."""
    out: dict[str, str] = {}
    if len(records) != len(expected):
        out["count"] = f"{len(records)} records, libmbus {len(expected)}"
    for ours, exp in zip(records, expected, strict=False):
        unit, factor = LIBMBUS_UNITS.get(exp.get("Unit", ""), (exp.get("Unit", ""), Decimal(1)))
        text = exp.get("Value", "")
        problems = []
        try:
            if ours.function in RAW_FUNCTIONS:
                raise InvalidOperation  # a hex dump, even when it looks like a number
            want: Decimal | str = Decimal(text) * factor
        except InvalidOperation:
            want = text.strip().removesuffix("Z")
            if ours.function in RAW_FUNCTIONS:
                want = want.replace(" ", "")
        if isinstance(want, Decimal):
            if not isinstance(ours.value, Decimal) or abs(ours.value - want) > Decimal(
                    "0.0000005") * factor + abs(want) * Decimal("1e-9"):
                problems.append(f"value {ours.value} != {text}")
            if ours.unit != unit:
                problems.append(f"unit {ours.unit!r} != {exp.get('Unit')!r}")
        elif str(ours.value).strip() != want:
            problems.append(f"value {ours.value} != {text}")
        if str(ours.storage) != exp.get("StorageNumber", "0"):
            problems.append(f"storage {ours.storage} != {exp.get('StorageNumber')}")
        if str(ours.tariff) != exp.get("Tariff", "0"):
            problems.append(f"tariff {ours.tariff} != {exp.get('Tariff')}")
        if problems:
            out[str(ours.index)] = "; ".join(problems)
    return out
