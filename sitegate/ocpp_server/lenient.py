"""Lenient reading of billing messages: take what a quirky charger meant, note what was odd.

Every function returns its result plus a list of problems (empty when the input was
conformant); it never raises on charger input, because a billing record must be acknowledged
and kept whatever the charger's firmware got wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

ENERGY = "Energy.Active.Import.Register"

# Units we convert to the base unit of their dimension; anything else is kept as sent.
_SCALE = {
    "wh": ("Wh", Decimal(1)), "kwh": ("Wh", Decimal(1000)),
    "w": ("W", Decimal(1)), "kw": ("W", Decimal(1000)),
    "a": ("A", Decimal(1)), "v": ("V", Decimal(1)),
    "varh": ("varh", Decimal(1)), "kvarh": ("varh", Decimal(1000)),
    "var": ("var", Decimal(1)), "kvar": ("var", Decimal(1000)),
    "percent": ("Percent", Decimal(1)), "celsius": ("Celsius", Decimal(1)),
}
_DEFAULT_UNIT = {"Energy": "Wh", "Power": "W", "Current": "A", "Voltage": "V", "SoC": "Percent"}


@dataclass(frozen=True, slots=True)
class MeterValue:
    ts: datetime
    measurand: str
    phase: str
    context: str
    value: Decimal
    unit: str

    def row(self) -> tuple[datetime, str, str, str, Decimal, str]:
        return (self.ts, self.measurand, self.phase, self.context, self.value, self.unit)


def parse_ts(raw: Any, problems: list[str], fallback: datetime | None = None) -> datetime:
    """An aware UTC datetime; a missing zone is taken as UTC, garbage falls back to now."""
    if isinstance(raw, str):
        text = raw.strip()
        if text.endswith("z") or text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            problems.append(f"unreadable timestamp {raw!r}")
        else:
            if dt.tzinfo is None:
                problems.append(f"timestamp without time zone {raw!r}, taken as UTC")
                dt = dt.replace(tzinfo=UTC)
            return dt.astimezone(UTC)
    else:
        problems.append(f"missing or non-text timestamp {raw!r}")
    return fallback or datetime.now(UTC)


def parse_decimal(raw: Any, problems: list[str], what: str) -> Decimal | None:
    if isinstance(raw, bool) or raw is None:
        problems.append(f"{what}: missing or not a number: {raw!r}")
        return None
    try:
        value = Decimal(str(raw).strip().replace(",", "."))
    except InvalidOperation:
        problems.append(f"{what}: not a number: {raw!r}")
        return None
    if not value.is_finite():
        problems.append(f"{what}: not finite: {raw!r}")
        return None
    return value


def parse_int(raw: Any, problems: list[str], what: str, default: int = 0) -> int:
    d = parse_decimal(raw, problems, what)
    if d is None:
        return default
    if d != d.to_integral_value():
        problems.append(f"{what}: not an integer: {raw!r}")
    return int(d)


def normalize_unit(measurand: str, unit: Any, value: Decimal, multiplier: Any,
                   problems: list[str]) -> tuple[Decimal, str]:
    """Value in the base unit (Wh, W, A...) of its measurand."""
    if multiplier not in (None, 0):
        if isinstance(multiplier, int) and -9 <= multiplier <= 9:
            value = value.scaleb(multiplier)
        else:
            problems.append(f"bad unit multiplier {multiplier!r}")
    if unit is None or unit == "":
        unit = _DEFAULT_UNIT.get(measurand.split(".")[0], "")
    if not isinstance(unit, str):
        problems.append(f"bad unit {unit!r}")
        return value, str(unit)
    known = _SCALE.get(unit.strip().lower())
    if known is None:
        problems.append(f"unknown unit {unit!r}")
        return value, unit
    base, factor = known
    if unit != base and factor == 1:
        problems.append(f"unit {unit!r} in the wrong case")
    return value * factor, base


def parse_meter_values(items: Any, version: str, problems: list[str]) -> list[MeterValue]:
    """OCPP 1.6 or 2.0.1 ``meterValue`` lists to flat, unit-normalized values."""
    out: list[MeterValue] = []
    if not isinstance(items, list):
        if items is not None:
            problems.append("meterValue is not a list")
        return out
    for mv in items:
        if not isinstance(mv, dict):
            problems.append(f"meterValue entry is not an object: {mv!r}")
            continue
        ts = parse_ts(mv.get("timestamp"), problems)
        for sv in mv.get("sampledValue") or []:
            if not isinstance(sv, dict):
                problems.append(f"sampledValue is not an object: {sv!r}")
                continue
            measurand = sv.get("measurand") or ENERGY
            if not isinstance(measurand, str):
                problems.append(f"bad measurand {measurand!r}")
                continue
            if sv.get("format") == "SignedData":
                continue  # signed blobs are kept in the raw message, not as a number
            value = parse_decimal(sv.get("value"), problems, measurand)
            if value is None:
                continue
            if version == "1.6":
                unit, multiplier = sv.get("unit"), None
            else:
                uom = sv.get("unitOfMeasure") or {}
                unit, multiplier = uom.get("unit"), uom.get("multiplier")
            value, unit = normalize_unit(measurand, unit, value, multiplier, problems)
            out.append(MeterValue(ts, measurand.strip(), str(sv.get("phase") or ""),
                                  str(sv.get("context") or ""), value, unit))
    return out


def energy_register(values: list[MeterValue]) -> tuple[Decimal, datetime] | None:
    """The latest total (not per-phase) import energy register, in Wh."""
    best: tuple[Decimal, datetime] | None = None
    for v in values:
        if v.measurand == ENERGY and v.unit == "Wh" and v.phase in ("", "N"):
            if best is None or v.ts >= best[1]:
                best = (v.value, v.ts)
    return best


def currents(values: list[MeterValue]) -> dict[int, Decimal]:
    """Latest imported current per phase (1..3) found in the values."""
    out: dict[int, Decimal] = {}
    for v in values:
        if v.measurand == "Current.Import" and v.unit == "A":
            phase = {"L1": 1, "L2": 2, "L3": 3, "L1-N": 1, "L2-N": 2, "L3-N": 3}.get(v.phase)
            if phase is not None:
                out[phase] = v.value
    return out
