"""Printing for the CLI: the same result as readable text or as JSON (``--json``)."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def plain(value: Any) -> Any:
    """A decimal (or its text) in plain digits, as a person reads a meter: 50, not 5E+1;
    0.0000001, not 1E-7. Anything else as it is."""
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except ArithmeticError:
            return value
        return format(number, "f") if number.is_finite() else value
    if isinstance(value, Decimal) and value.is_finite():
        return format(value, "f")
    return value


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return plain(o)
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, set | tuple):
        return list(o)
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    """Print ``data`` as JSON, or ``text`` (a readable rendering of the same data)."""
    if as_json or text is None:  # no readable rendering: the JSON is the readable one
        json.dump(data, sys.stdout, default=_default, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain aligned text table, readable in any terminal."""
    cells = [header] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
