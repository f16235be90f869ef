"""The export of individual consumptions per unit and category (CSV, JSON)."""

from __future__ import annotations

from sitegate.cloud.billing.export import render

CONSUMPTION_FIELDS = ("billing_point", "category", "key", "consumption", "unit", "estimated",
                      "amount")

__all__ = ["CONSUMPTION_FIELDS", "render"]
