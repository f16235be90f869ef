"""Meter readings of accommodation units: entered per unit, or in bulk for all units of a
type (a list: unit, meter, value). Each value is checked against the unit's last value
before it (never backwards, never an implausible jump for the days between) and its next
one after; a value marked as a start (a new meter, a reset) starts the count again. The
whole list is stored or nothing, and every problem names its line."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sitegate.cloud.billing.manual import ProblemsError
from sitegate.cloud.stays.setup import StaySetup

MAX_BYTES = 1024 * 1024
MAX_ROWS = 10_000
MAX_VALUE = Decimal(10) ** 9  # a register beyond this is a typing error
SOURCES = ("manual", "bulk", "gateway")


class BulkError(ProblemsError):
    """The list cannot be stored."""

    outcome = "nothing stored"


@dataclass(frozen=True, slots=True)
class StayReading:
    unit: str
    meter: str
    ts: datetime  # aware, UTC
    value: Decimal
    start: bool = False  # marked as a start value: the count begins again here
    source: str = "manual"
    entered_by: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class Entry:
    """A checked reading with the usage since the unit's last value (None: the first)."""

    reading: StayReading
    previous: StayReading | None
    usage: Decimal | None


def rows_of(name: str, data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """(line, row) of a CSV list (header ``unit,meter,value[,start]``) or a JSON list of
    objects; bounded in bytes and rows before anything is parsed further."""
    if len(data) > MAX_BYTES:
        raise BulkError([f"{name}: {len(data)} bytes, more than {MAX_BYTES}"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BulkError([f"{name}: not UTF-8 text ({exc.reason})"]) from None
    if text.lstrip()[:1] in ("[", "{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise BulkError([f"{name}: not JSON ({exc})"]) from None
        items = doc.get("readings") if isinstance(doc, dict) else doc
        if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
            raise BulkError([f"{name}: expected a list of objects (unit, meter, value)"])
        if len(items) > MAX_ROWS:
            raise BulkError([f"{name}: {len(items)} rows, more than {MAX_ROWS}"])
        return list(enumerate(items, 1))
    reader = csv.DictReader(io.StringIO(text))
    missing = [f for f in ("unit", "meter", "value") if f not in (reader.fieldnames or [])]
    if missing:
        raise BulkError([f"{name}: line 1: header lacks {', '.join(missing)} (expected "
                         "unit,meter,value[,start])"])
    out = []
    for row in reader:
        if len(out) >= MAX_ROWS:
            raise BulkError([f"{name}: more than {MAX_ROWS} rows"])
        out.append((reader.line_num, row))
    return out


def _value(text: Any) -> Decimal | None:
    try:
        d = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() and 0 <= d < MAX_VALUE else None


def parse_bulk(rows: list[tuple[int, dict[str, Any]]], setup: StaySetup,
               unit_type: str | None, at: datetime, source: str,
               entered_by: str) -> list[StayReading]:
    """Rows into readings at ``at`` (UTC), each naming a unit (of ``unit_type`` when given)
    and one of its meters; BulkError lists every bad line."""
    problems: list[str] = []
    out: list[StayReading] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in rows:
        unit_id = str(row.get("unit") or "").strip()
        meter_id = str(row.get("meter") or "").strip()
        unit = setup.unit(unit_id)
        if unit is None:
            problems.append(f"line {line}: unknown unit {unit_id[:64]!r}")
            continue
        if unit_type is not None and unit.type != unit_type:
            problems.append(f"line {line}: unit {unit_id} is a {unit.type}, not a "
                            f"{unit_type}")
            continue
        if meter_id not in {m.id for m in unit.meters}:
            problems.append(f"line {line}: unit {unit_id} has no meter {meter_id[:64]!r} "
                            f"(it has {', '.join(m.id for m in unit.meters) or 'none'})")
            continue
        value = _value(row.get("value"))
        if value is None:
            problems.append(f"line {line}: {unit_id} {meter_id}: not a meter value: "
                            f"{str(row.get('value'))[:40]!r}")
            continue
        start = str(row.get("start") or "").strip().lower() in ("1", "true", "yes", "start")
        if (unit_id, meter_id) in seen:
            problems.append(f"line {line}: {unit_id} {meter_id} already on line "
                            f"{seen[(unit_id, meter_id)]}")
            continue
        seen[(unit_id, meter_id)] = line
        out.append(StayReading(unit_id, meter_id, at, value, start, source, entered_by, line))
    if problems:
        raise BulkError(problems)
    return out


def check(new: list[StayReading], setup: StaySetup,
          before: dict[tuple[str, str], StayReading],
          after: dict[tuple[str, str], StayReading]) -> list[Entry]:
    """Each new reading against its register's last value before it and next after it
    (``before`` / ``after`` by (unit, meter)): usage never negative, never more than the
    rate's ``max_per_day`` for the days between (at least one day). BulkError lists all."""
    problems: list[str] = []
    out: list[Entry] = []
    for r in new:
        unit = setup.unit(r.unit)
        assert unit is not None  # parse_bulk checked it
        meter = next(m for m in unit.meters if m.id == r.meter)
        limit = setup.max_per_day(unit, meter)
        prev = before.get((r.unit, r.meter))
        nxt = after.get((r.unit, r.meter))
        where = f"line {r.line}: {r.unit} {r.meter}" if r.line else f"{r.unit} {r.meter}"
        if prev is not None and prev.ts == r.ts:
            problems.append(f"{where}: already read at {r.ts.isoformat()} ({prev.value})")
            continue
        usage = None if prev is None or r.start else r.value - prev.value
        if usage is not None:
            days = max(Decimal(1), Decimal((r.ts - prev.ts).total_seconds()) / 86400)
            if usage < 0:
                problems.append(f"{where}: {r.value} {meter.unit} is below the last value "
                                f"{prev.value} of {prev.ts.date()} (the meter does not run "
                                "backwards; mark a new meter's first value as start)")
            elif usage > limit * days:
                problems.append(f"{where}: {usage} {meter.unit} since {prev.ts.date()} is "
                                f"more than {limit} {meter.unit} a day: implausible jump")
        if nxt is not None and not nxt.start and nxt.value < r.value:
            problems.append(f"{where}: {r.value} {meter.unit} is above the later value "
                            f"{nxt.value} of {nxt.ts.date()}")
        out.append(Entry(r, prev, usage))
    if problems:
        raise BulkError(problems)
    return out
