"""Telegrams of one read -> readings and events for the buffer.

Status-byte errors flag every value of the telegram ("suspect"; "invalid" on a permanent
error); a telegram read in part flags its values "partial_frame" and adds an event with
the raw bytes; values the meter sent as unreadable (error BCD) become events, not numbers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sitegate.drivers.base import ReadResult
from sitegate.drivers.mbus.decode import Telegram
from sitegate.drivers.mbus.profile import Profile, apply
from sitegate.sync.protocol import GOOD, INVALID, SUSPECT, Reading


def quality_of(flags: list[str]) -> str:
    if "meter_permanent_error" in flags:
        return INVALID
    return SUSPECT if flags else GOOD


def to_result(meter_id: str, telegrams: list[Telegram], profile: Profile,
              scheduled: datetime, read_at: datetime) -> ReadResult:
    result = ReadResult(readings=[])
    seen: set[str] = set()
    for t in telegrams:
        base_flags = list(t.flags)
        if t.partial:
            base_flags.append("partial_frame")
            result.events.append(event(meter_id, "mbus_partial_frame", "warning",
                                       "; ".join(t.problems), t.raw_hex))
        if t.flags:
            result.events.append(event(meter_id, "mbus_meter_status", "warning",
                                       f"meter status byte reports {', '.join(t.flags)}", ""))
        for rec in t.records:
            if rec.value is None:
                result.events.append(event(
                    meter_id, "mbus_unreadable_value", "warning",
                    f"record {rec.index} ({rec.quantity}, storage {rec.storage}) carries no "
                    f"readable value", rec.raw_hex))
                continue
            mapped = apply(profile, rec)
            if mapped is None:
                continue
            name, value, unit = mapped
            if name in seen:  # a later telegram repeating a record: keep the first
                continue
            seen.add(name)
            flags = base_flags + [f for f in rec.flags if f != "plain_text_unit"]
            if rec.function == "error":
                flags.append("error_state_value")
            result.readings.append(Reading(meter_id, scheduled, name, value, unit,
                                           quality_of(flags), read_at, tuple(flags)))
    return result


def event(meter_id: str, kind: str, severity: str, message: str, raw_hex: str) -> dict[str, Any]:
    e: dict[str, Any] = {"kind": kind, "severity": severity, "meter_id": meter_id,
                         "message": message}
    if raw_hex:
        e["raw_hex"] = raw_hex
    return e
