"""``sitegate meters import CSV``: many meters into the site file at once.

One row per meter: ``serial, bus, unit`` (Modbus) or ``address`` / ``secondary`` (M-Bus),
``profile``, ``billing_point``; optional ``id`` (default: the serial number), ``interval``
and ``role``. Every row is checked against the site file it goes into (the bus exists and
speaks the protocol the row's addressing needs, the profile exists for it, no id, serial,
unit or address twice, in the file or in the CSV) and every problem is named with its CSV
line; with any problem nothing is written. The rows become ``[[meters]]`` tables after the
file's last meter (``sitefile_edit``: comments and layout kept) and the whole result is
checked like ``check-config`` before it replaces the file.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from sitegate.common.sitecheck import ProfileLookup, ProfileProblem

MAX_CSV_BYTES = 2 * 1024 * 1024
MAX_ROWS = 10_000
MAX_FIELD = 200  # characters in one cell

COLUMNS = ("serial", "bus", "unit", "address", "secondary", "profile", "billing_point",
           "id", "interval", "role")
REQUIRED = ("serial", "bus", "profile")
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
SECONDARY = re.compile(r"^[0-9A-Fa-f]{8}([0-9A-Fa-f]{8})?$")
ROLES = ("consumer", "producer", "grid")


@dataclass(frozen=True)
class RowProblem:
    line: int | None
    message: str
    column: str = ""

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "(file)"
        return f"{where}: {self.column + ': ' if self.column else ''}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column or None, "message": self.message}


@dataclass
class Plan:
    meters: list[dict[str, Any]]
    problems: list[RowProblem]


def read_rows(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[RowProblem]]:
    """(CSV line, cells by column) of every data row; the header decides the columns.
    Blank lines and lines starting with ``#`` are skipped."""
    if len(text.encode("utf-8")) > MAX_CSV_BYTES:
        return [], [RowProblem(None, f"larger than {MAX_CSV_BYTES // 1024 // 1024} MiB")]
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), start=1)
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return [], [RowProblem(None, "no header line (serial,bus,unit,profile,...)")]
    dialect = _dialect(lines[0][1])
    header_no, header_line = lines[0]
    header = [h.strip().lower() for h in next(csv.reader([header_line], dialect))]
    problems = [RowProblem(header_no, f"unknown column {h!r} (misspelt?); columns: "
                           f"{', '.join(COLUMNS)}") for h in header if h not in COLUMNS]
    problems += [RowProblem(header_no, f"column {c!r} is missing") for c in REQUIRED
                 if c not in header]
    if not any(c in header for c in ("unit", "address", "secondary")):
        problems.append(RowProblem(header_no, "no addressing column: 'unit' (Modbus), "
                                              "'address' or 'secondary' (M-Bus)"))
    if len(set(header)) != len(header):
        problems.append(RowProblem(header_no, "a column appears twice"))
    if problems:
        return [], problems
    rows: list[tuple[int, dict[str, str]]] = []
    if len(lines) - 1 > MAX_ROWS:
        return [], [RowProblem(None, f"{len(lines) - 1} rows; at most {MAX_ROWS} at once")]
    for no, line in lines[1:]:
        cells = next(csv.reader([line], dialect), [])
        if len(cells) > len(header):
            problems.append(RowProblem(no, f"{len(cells)} cells, the header has "
                                           f"{len(header)}"))
            continue
        if any(len(c) > MAX_FIELD for c in cells):
            problems.append(RowProblem(no, f"a cell longer than {MAX_FIELD} characters"))
            continue
        rows.append((no, {h: c.strip() for h, c in zip(header, cells, strict=False)}))
    return rows, problems


def _dialect(header: str) -> type[csv.Dialect]:
    """Comma, or semicolon (a spreadsheet saved in a German or French locale)."""
    return _Semicolon if header.count(";") > header.count(",") else csv.excel


class _Semicolon(csv.excel):
    delimiter = ";"


def plan(text: str, site: dict[str, Any], lookup: ProfileLookup) -> Plan:
    """The ``[[meters]]`` entries the CSV adds to ``site`` (the parsed site file), or the
    problems found; never both."""
    rows, problems = read_rows(text)
    protocols = {b.get("name"): str(b.get("protocol", "modbus"))
                 for b in site.get("buses") or [] if isinstance(b, dict)}
    taken = _Taken.of(site)
    out = []
    for no, row in rows:
        entry, found = _row(no, row, protocols, lookup)
        if not found and entry is not None:
            found = taken.claim(no, entry)
        problems += found
        if entry is not None and not found:
            out.append(entry)
    if problems:
        return Plan([], problems)
    return Plan(out, [])


def _row(no: int, row: dict[str, str], protocols: dict[Any, str],
         lookup: ProfileLookup) -> tuple[dict[str, Any] | None, list[RowProblem]]:
    bad: list[RowProblem] = []

    def problem(column: str, message: str) -> None:
        bad.append(RowProblem(no, message, column))

    serial, bus, profile = row.get("serial", ""), row.get("bus", ""), row.get("profile", "")
    if not serial:
        problem("serial", "empty: the serial number on the meter's label")
    elif len(serial) > 32 or not serial.isprintable():
        problem("serial", f"{serial!r}: at most 32 printable characters")
    mid = row.get("id") or serial
    if mid and not IDENTIFIER.match(mid):
        problem("id", f"{mid!r} is not a meter id (letters, digits, _ . : -; at most 64)"
                + ("" if row.get("id") else ": give an 'id' column"))
    protocol = protocols.get(bus)
    if not bus:
        problem("bus", "empty")
    elif protocol is None:
        problem("bus", f"{bus!r} is not a bus of the site file; known: "
                       f"{', '.join(str(b) for b in protocols) or 'none'}")
    entry: dict[str, Any] = {"id": mid, "bus": bus}
    if protocol == "modbus":
        for c in ("address", "secondary"):
            if row.get(c):
                problem(c, f"bus {bus!r} is Modbus: give the unit id in 'unit'")
        entry["unit"] = _int(row.get("unit", ""), 1, 247, "unit", "a Modbus unit id", problem)
    elif protocol == "mbus":
        if row.get("unit"):
            problem("unit", f"bus {bus!r} is M-Bus: give 'address' (primary) or 'secondary'")
        address, secondary = row.get("address", ""), row.get("secondary", "")
        if bool(address) == bool(secondary):
            problem("address", "an M-Bus meter needs exactly one of 'address' (primary "
                               "1-250) or 'secondary' (8-digit id)")
        elif address:
            entry["address"] = _int(address, 1, 250, "address", "an M-Bus primary address",
                                    problem)
        elif not SECONDARY.match(secondary):
            problem("secondary", f"{secondary!r}: 8 hex digits (the id on the label), or 16")
        else:
            entry["secondary"] = secondary.upper()
    entry["profile"] = profile
    if not profile:
        problem("profile", "empty (see `sitegate modbus profiles`, `sitegate mbus profiles`)")
    elif protocol is not None:
        try:
            lookup(protocol, profile)
        except ProfileProblem as exc:
            problem("profile", str(exc))
    if row.get("interval"):
        entry["interval"] = _int(row["interval"], 1, 86400, "interval", "seconds", problem)
    if row.get("billing_point"):
        entry["billing_point"] = row["billing_point"]
    entry["serial"] = serial
    if row.get("role"):
        if row["role"] not in ROLES:
            problem("role", f"{row['role']!r}: one of {', '.join(ROLES)}")
        elif row["role"] != "consumer":  # the default: left out of the file
            entry["role"] = row["role"]
    return (None, bad) if bad else (entry, [])


def _int(text: str, lo: int, hi: int, column: str, what: str, problem: Any) -> int | None:
    try:
        value = int(text)
    except ValueError:
        problem(column, f"{text!r} is not {what} ({lo}-{hi})" if text else f"empty: {what}")
        return None
    if not lo <= value <= hi:
        problem(column, f"{value} is not {what} ({lo}-{hi})")
        return None
    return value


class _Taken:
    """Ids, serial numbers and bus addresses in use: the site file's, then each row's."""

    def __init__(self) -> None:
        self.where: dict[tuple[str, ...], str] = {}

    @classmethod
    def of(cls, site: dict[str, Any]) -> _Taken:
        t = cls()
        for i, m in enumerate(site.get("meters") or []):
            if isinstance(m, dict):
                for key in _keys(m):
                    t.where.setdefault(key, f"meter {m.get('id')!r} of the site file "
                                            f"([[meters]] #{i + 1})")
        return t

    def claim(self, no: int, entry: dict[str, Any]) -> list[RowProblem]:
        found = []
        for key in _keys(entry):
            if key in self.where:
                found.append(RowProblem(no, f"{_what(key)} is already {self.where[key]}",
                                        key[0]))
        if not found:
            for key in _keys(entry):
                self.where[key] = f"on line {no}"
        return found


def _keys(m: dict[str, Any]) -> list[tuple[str, ...]]:
    keys = [("id", str(m.get("id")))]
    if m.get("serial"):
        keys.append(("serial", str(m["serial"])))
    bus = str(m.get("bus"))
    if m.get("unit") is not None:
        keys.append(("unit", bus, str(m["unit"])))
    if m.get("address") is not None:
        keys.append(("address", bus, str(m["address"])))
    if m.get("secondary"):
        keys.append(("secondary", str(m["secondary"]).upper()[:8]))
    return keys


def _what(key: tuple[str, ...]) -> str:
    kind = key[0]
    if kind in ("unit", "address"):
        return f"{'unit' if kind == 'unit' else 'primary address'} {key[2]} on bus {key[1]!r}"
    return f"{kind} {key[-1]!r}"


def csv_text(data: bytes) -> str:
    """The CSV's text: UTF-8 (a BOM from a spreadsheet dropped), else Latin-1."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def sample(rows: list[dict[str, Any]]) -> str:
    """A CSV of ``rows`` (for tests and the README's example)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[c for c in COLUMNS if any(c in r for r in rows)])
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
