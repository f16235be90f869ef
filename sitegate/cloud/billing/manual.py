"""Register readings from outside the gateway: hand-noted start/end readings, a utility's
meter file, a technician's photo reading. Read from CSV or JSON (bounded), checked against
the site model (meter, unit), against each other (duplicates) and against the register's
neighbours (never backwards, never faster than MAX_KW), then billed beside the gateway's
readings: at the same instant the gateway's reading wins and the conflict is listed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sitegate.cloud.billing.consumption import MAX_KW, MAX_RATE, Issue
from sitegate.cloud.billing.registers import Register
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.billing.units import kwh_to_units, units_to_kwh

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000
FIELDS = ("meter", "quantity", "timestamp", "value", "unit", "source", "note")
MAX_FIELD = {"meter": 64, "quantity": 64, "timestamp": 40, "value": 40, "unit": 16,
             "source": 32, "note": 500}


class ProblemsError(ValueError):
    """Input refused whole; ``problems`` lists every reason (with its line), the message the
    first five."""

    outcome = "nothing imported"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s), {self.outcome}: "
                         + "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
        self.problems = problems


class ImportError_(ProblemsError):
    """The file cannot be imported."""


@dataclass(frozen=True, slots=True)
class Manual:
    """One reading entered from outside: a site meter's register at an instant."""

    meter: str
    quantity: str
    ts: int  # epoch s
    value: Decimal  # as entered, in ``unit``
    unit: str
    source: str
    entered_by: str
    note: str | None = None
    line: int = 0  # in the file it came from

    @property
    def units(self) -> int:
        return kwh_to_units(self.value, self.unit)

    def key(self) -> tuple[str, str, int]:
        return self.meter, self.quantity, self.ts


def _rows(name: str, data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """(line, raw row) of a CSV (header line first) or JSON (a list of objects, or
    {"readings": [...]}) file."""
    if len(data) > MAX_BYTES:
        raise ImportError_([f"{name}: {len(data)} bytes, more than {MAX_BYTES}"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportError_([f"{name}: not UTF-8 text ({exc.reason})"]) from None
    if name.lower().endswith(".json") or text.lstrip()[:1] in ("[", "{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ImportError_([f"{name}: not JSON ({exc})"]) from None
        items = doc.get("readings") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise ImportError_([f"{name}: expected a list of readings"])
        return [(k, it) for k, it in enumerate(items, 1)]
    reader = csv.DictReader(io.StringIO(text))
    missing = [f for f in ("meter", "timestamp", "value", "unit")
               if f not in (reader.fieldnames or [])]
    if missing:
        raise ImportError_([f"{name}: header lacks {', '.join(missing)} (columns: "
                            f"{', '.join(FIELDS)})"])
    return [(reader.line_num, row) for row in reader]


def _field(row: dict[str, Any], key: str, where: str, problems: list[str],
           required: bool = True) -> str | None:
    v = row.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            problems.append(f"{where}: {key} missing")
        return None
    v = str(v).strip()
    if len(v) > MAX_FIELD[key]:
        problems.append(f"{where}: {key} longer than {MAX_FIELD[key]} characters")
        return None
    return v


def _when(text: str, model: SiteModel) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int((dt if dt.tzinfo else dt.replace(tzinfo=model.tz)).astimezone(UTC).timestamp())


def parse(name: str, data: bytes, model: SiteModel, entered_by: str,
          default_source: str = "manual") -> list[Manual]:
    """Every reading of the file, typed and checked against the site model; every problem
    of the file at once (ImportError_), or none."""
    rows = _rows(name, data)
    if len(rows) > MAX_ROWS:
        raise ImportError_([f"{name}: {len(rows)} readings, more than {MAX_ROWS}"])
    if not entered_by.strip() or len(entered_by) > 128:
        raise ImportError_(["who entered the readings must be named (at most 128 characters)"])
    meters = {m.id: m for m in model.meters}
    problems: list[str] = []
    out: list[Manual] = []
    seen: dict[tuple[str, str, int], int] = {}
    for line, row in rows:
        where = f"{name}:{line}" if not name.lower().endswith(".json") else f"{name}[{line}]"
        if not isinstance(row, dict):
            problems.append(f"{where}: not an object")
            continue
        f = {k: _field(row, k, where, problems, k in ("meter", "timestamp", "value", "unit"))
             for k in FIELDS}
        if None in (f["meter"], f["timestamp"], f["value"], f["unit"]):
            continue
        meter = meters.get(f["meter"])
        if meter is None:
            problems.append(f"{where}: unknown meter {f['meter']!r}")
            continue
        try:
            ts = _when(f["timestamp"], model)
        except (ValueError, OverflowError):
            problems.append(f"{where}: timestamp {f['timestamp']!r} is not ISO 8601")
            continue
        try:
            value = Decimal(f["value"])
            if not value.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            problems.append(f"{where}: value {f['value']!r} is not a number")
            continue
        r = Manual(meter.id, f["quantity"] or meter.import_quantity, ts, value, f["unit"],
                   f["source"] or default_source, entered_by.strip(), f["note"], line)
        try:
            r.units  # noqa: B018 - the unit and range check
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if (r.unit in ("m³", "m3")) != (meter.unit == "m³"):
            problems.append(f"{where}: unit {r.unit} does not fit meter {meter.id} "
                            f"({meter.medium}, {meter.unit})")
            continue
        if r.key() in seen:
            problems.append(f"{where}: the same meter, quantity and time as line "
                            f"{seen[r.key()]}")
            continue
        seen[r.key()] = line
        out.append(r)
    if problems:
        raise ImportError_(problems)
    return out


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def check(new: list[Manual], gateway: Mapping[str, Mapping[str, Register]],
          stored: Iterable[Manual]) -> tuple[list[Manual], list[str], list[str]]:
    """New readings against what is there: (to store, problems, notes). A reading already
    entered with the same value is skipped (noted); with another value it is a problem.
    Each register must rise with time, never faster than MAX_KW, counting the gateway's
    readings, the stored and the new ones. A gateway reading at the same instant wins
    (the new one is kept, noted as a conflict)."""
    have = {r.key(): r for r in stored}
    problems, notes, keep = [], [], []
    for r in new:
        old = have.get(r.key())
        if old is None:
            keep.append(r)
        elif old.units == r.units:
            notes.append(f"line {r.line}: already entered by {old.entered_by}: skipped")
        else:
            problems.append(f"line {r.line}: {r.meter} at {_iso(r.ts)} was entered as "
                            f"{old.value} {old.unit} by {old.entered_by}")
    kept = {r.key() for r in keep}
    by_reg: dict[tuple[str, str], list[Manual]] = {}
    for r in {**have, **{x.key(): x for x in keep}}.values():
        by_reg.setdefault((r.meter, r.quantity), []).append(r)
    for (m, q), outside in by_reg.items():
        gw = gateway.get(m, {}).get(q)
        gw_at = dict(zip(gw.ts, gw.values, strict=True)) if gw is not None else {}
        rows: list[tuple[int, int, str, Manual | None]] = [
            (ts, v, "gateway reading", None) for ts, v in gw_at.items()]
        for r in outside:
            if r.ts not in gw_at:
                rows.append((r.ts, r.units, f"{r.source} reading", r))
            elif r.key() in kept:
                notes.append(f"line {r.line}: the gateway's reading "
                             f"{units_to_kwh(gw_at[r.ts])} kWh at {_iso(r.ts)} wins over "
                             f"this one ({r.value} {r.unit})")
        rows.sort(key=lambda x: x[0])
        for k, (ts, v, _what, r) in enumerate(rows):
            if r is None or r.key() not in kept:
                continue
            for nb, later in ((rows[k - 1] if k else None, False),
                              (rows[k + 1] if k + 1 < len(rows) else None, True)):
                if nb is not None and (why := _implausible(ts, v, nb, later)):
                    problems.append(f"line {r.line}: {r.meter} {r.value} {r.unit} at "
                                    f"{_iso(ts)}: {why}")
    return keep, problems, notes


def _implausible(ts: int, v: int, nb: tuple, later: bool) -> str | None:
    nts, nv, what, _ = nb
    lo, hi = ((ts, v), (nts, nv)) if later else ((nts, nv), (ts, v))
    if hi[1] < lo[1]:
        return (f"{'above' if later else 'below'} the {what} {units_to_kwh(nv)} kWh at "
                f"{_iso(nts)} (a register never runs backwards)")
    if (hi[1] - lo[1]) * 3600 > MAX_RATE * (hi[0] - lo[0]):
        return (f"more than {MAX_KW} kW from the {what} {units_to_kwh(nv)} kWh at "
                f"{_iso(nts)}")
    return None


def merge(readings: dict[str, dict[str, Register]], manual: Iterable[Manual],
          issues: list[Issue]) -> dict[str, dict[int, dict[str, Any]]]:
    """Outside readings into the gateway's registers (a gateway reading at the same
    instant wins; the conflict is an issue); returns, per meter, what explain shows of
    each outside reading used."""
    notes: dict[str, dict[int, dict[str, Any]]] = {}
    by_reg: dict[tuple[str, str], list[Manual]] = {}
    for r in manual:
        by_reg.setdefault((r.meter, r.quantity), []).append(r)
    for (m, q), rows in sorted(by_reg.items()):
        reg = readings.setdefault(m, {}).setdefault(q, Register())
        gw_at = dict(zip(reg.ts, reg.values, strict=True))
        for r in rows:
            if r.ts in gw_at:
                issues.append(Issue("manual_conflict", m, r.ts,
                                    f"{r.source} reading {r.value} {r.unit} by "
                                    f"{r.entered_by}: the gateway's "
                                    f"{units_to_kwh(gw_at[r.ts])} kWh is used"))
                continue
            reg.append(r.ts, r.units)
            notes.setdefault(m, {})[r.ts] = {
                "at": _iso(r.ts), "value": str(units_to_kwh(r.units)), "source": r.source,
                "entered_by": r.entered_by, "note": r.note}
        reg.sort()
    return notes
