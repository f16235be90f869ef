"""Invoice totals: lines priced to the cent, VAT per rate, advances, cash rounding."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sitegate.cloud.billing.units import CENT, round_money


def line_amount(quantity: Decimal, unit_price: Decimal) -> Decimal:
    return round_money(quantity * unit_price)


def totals(
    lines: Sequence[dict[str, Any]],
    advances: Decimal = Decimal("0"),
    cash_unit: Decimal = Decimal("0.05"),
) -> dict[str, Any]:
    """VAT is computed once per rate on the rate's net sum (not per line), then the amount
    due is rounded to the smallest cash unit; the difference is its own visible line."""
    by_rate: dict[Decimal, Decimal] = {}
    for ln in lines:
        rate = Decimal(ln["vat_rate"])
        by_rate[rate] = by_rate.get(rate, Decimal("0")) + Decimal(ln["amount"])
    vat_rows = []
    for rate in sorted(by_rate):
        net = by_rate[rate].quantize(CENT)
        vat_rows.append({"rate": str(rate), "net": str(net),
                         "vat": str(round_money(net * rate / 100))})
    net_total = sum((Decimal(r["net"]) for r in vat_rows), Decimal("0.00"))
    vat_total = sum((Decimal(r["vat"]) for r in vat_rows), Decimal("0.00"))
    gross = net_total + vat_total
    due_raw = gross - advances
    due = round_money(due_raw, cash_unit)
    return {
        "vat": vat_rows,
        "net_total": str(net_total),
        "vat_total": str(vat_total),
        "gross_total": str(gross),
        "advances": str(advances.quantize(CENT)),
        "rounding": str((due - due_raw).quantize(CENT)),
        "total_due": str(due),
    }
