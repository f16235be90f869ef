"""Invoice amounts: lines priced to the cent; totals (``document.Totals``) of JSON lines."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sitegate.cloud.billing.document import Totals
from sitegate.cloud.billing.units import round_money


def line_amount(quantity: Decimal, unit_price: Decimal) -> Decimal:
    return round_money(quantity * unit_price)


def totals(
    lines: Sequence[dict[str, Any]],
    advances: Decimal = Decimal("0"),
    cash_unit: Decimal = Decimal("0.05"),
) -> dict[str, Any]:
    """``document.Totals`` of lines in their JSON form, as JSON (stays, jobs, expense
    statements and credit notes build their documents as JSON)."""
    return Totals.compute(((Decimal(ln["vat_rate"]), Decimal(ln["amount"])) for ln in lines),
                          advances, cash_unit).to_json()
