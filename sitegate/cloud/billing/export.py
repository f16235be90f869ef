"""CSV / JSON export of invoices and of each billing point's consumption per period."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

INVOICE_FIELDS = ("number", "kind", "account", "account_name", "period", "state",
                  "reminder_level", "issue_date", "due_date", "total_due", "balance")
CONSUMPTION_FIELDS = ("number", "account", "period", "billing_point", "key", "label", "from",
                      "to", "quantity", "unit", "unit_price", "amount", "vat_rate")


def invoice_rows(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v.get(k) for k in INVOICE_FIELDS} for v in views]


def consumption_rows(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per energy line (kWh): who consumed what, where, when."""
    out = []
    for v in views:
        for ln in v["document"]["lines"]:
            if ln["unit"] in ("kWh", "m³") and ln.get("billing_point"):
                out.append({"number": v["number"], "account": v["account"],
                            "period": v["period"],
                            **{k: ln[k] for k in CONSUMPTION_FIELDS[3:]}})
    return out


def render(rows: list[dict[str, Any]], fields: tuple[str, ...], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
