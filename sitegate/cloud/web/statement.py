"""The owner's annual statement of a site: per solution (electricity, charging, laundry,
expense statements, other), what was billed, credited, collected, written off (borne by the
owner) and cancelled (billing costs borne by the operator), plus the reminder fees.

Pure: invoice views (with documents and events) in, figures out, exact to the cent. An
invoice's amounts are split over the solutions of its lines in proportion to the lines'
net amounts; each split is rounded to the cent and the largest share takes the rest, so the
columns add up to the invoices' own figures.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sitegate.cloud.billing.periods import PeriodError, parse_period

CENT = Decimal("0.01")
SOLUTIONS = ("electricity", "charging", "laundry", "expense", "other")
COLUMNS = ("billed", "credited", "collected", "written_off", "cancelled")


EXPENSE = "expense_statement"  # the document kind of an expense statement (expense/)


def solution_of(line: dict[str, Any], kind: str | None = None) -> str:
    """The solution a line of a document of ``kind`` bills: every line of an expense
    statement is "expense" (its keys are the period's categories), else by the line."""
    if kind == EXPENSE:
        return "expense"
    key = str(line.get("key") or "")
    if key.startswith(("ev_", "ebike_")):
        return "charging"
    if key.startswith("laundry_"):
        return "laundry"
    if line.get("source") is not None or line.get("unit") in ("kWh", "kW", "month"):
        return "electricity"
    return "other"


def year_of(view: dict[str, Any]) -> int | None:
    """The year an invoice counts in: its billing period's first day's; an expense
    statement's ("expense:ID") its accounting period's; others (stays, jobs) none."""
    doc = view["document"]
    if doc.get("kind") == EXPENSE:
        return date.fromisoformat(doc["period_first"]).year
    try:
        return parse_period(view["period"]).first.year
    except PeriodError:
        return None


def allocate(amount: Decimal, weights: dict[str, Decimal]) -> dict[str, Decimal]:
    """``amount`` split in proportion to ``weights``, to the cent; the largest weight takes
    what rounding leaves (no weight at all: everything to "other")."""
    total = sum(weights.values(), Decimal(0))
    if not weights or total == 0:
        return {"other": amount}
    order = sorted(weights, key=lambda k: (abs(weights[k]), k))
    out: dict[str, Decimal] = {}
    rest = amount
    for k in order[:-1]:
        out[k] = (amount * weights[k] / total).quantize(CENT, ROUND_HALF_UP)
        rest -= out[k]
    out[order[-1]] = rest
    return out


def statement(views: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of a year's invoices (kind invoice; credit notes enter as the invoices'
    credit events)."""
    rows = {s: dict.fromkeys(COLUMNS, Decimal("0.00")) for s in SOLUTIONS}
    fees = Decimal("0.00")
    for v in views:
        if v["kind"] != "invoice" or v["state"] == "draft":
            continue
        weights: dict[str, Decimal] = {}
        for ln in v["document"]["lines"]:
            s = solution_of(ln, v["document"].get("kind"))
            weights[s] = weights.get(s, Decimal(0)) + Decimal(ln["amount"])
        due = Decimal(v["total_due"])
        if v["state"] == "cancelled":
            parts = {"cancelled": due}
        else:
            parts = {"billed": due}
            for e in v["events"]:
                amount = Decimal(e["amount"]) if e["amount"] is not None else Decimal(0)
                if e["kind"] == "credit":
                    parts["credited"] = parts.get("credited", Decimal(0)) + amount
                elif e["kind"] == "payment":
                    parts["collected"] = parts.get("collected", Decimal(0)) + amount
                elif e["kind"] == "write_off":
                    parts["written_off"] = parts.get("written_off", Decimal(0)) + amount
                elif e["kind"] == "reminder":
                    fees += amount
        for column, amount in parts.items():
            for s, share in allocate(amount, weights).items():
                rows[s][column] += share
    total = {c: sum((rows[s][c] for s in SOLUTIONS), Decimal("0.00")) for c in COLUMNS}
    return {"rows": [{"solution": s, **rows[s]} for s in SOLUTIONS
                     if any(rows[s].values())],
            "total": total, "reminder_fees": fees}
