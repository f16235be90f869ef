"""The RFID relay points as a table, for ``sitegate relay list`` and ``sitegate status``."""

from __future__ import annotations

from typing import Any

from sitegate.common.output import table


def point_rows(points: list[dict[str, Any]]) -> str:
    rows = [[p["point"], p["kind"], f"{p['device']}/{p['channel']}", p["relay"] or "?",
             p["power_w"] or "", p["state"],
             f"{p['session']['badge']} {p['session']['energy_wh']} Wh" if p["session"] else "",
             p["last_error"] or ""] for p in points]
    return table(rows, ["point", "kind", "relay", "state", "W", "status", "session", "error"])
