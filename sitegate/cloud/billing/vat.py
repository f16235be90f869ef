"""Statutory VAT rates as dated data: a tariff item names a category (``standard``) and
gets the rate in force on its service date, so a change of the statutory rate is one new
row in ``vat_rates``, not a copy of every tariff. An item with a number keeps it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Protocol

from sitegate.cloud.billing.sitemodel import SiteModel, Tariff


class Taxed(Protocol):
    vat: Decimal
    vat_category: str | None


def rate_on(model: SiteModel, category: str, day: date) -> Decimal:
    """The category's rate on ``day``; before its first date, its first rate (the site
    model's check makes sure the category exists)."""
    rows = sorted((r for r in model.vat_rates if r.category == category),
                  key=lambda r: r.valid_from)
    rate = rows[0].rate
    for r in rows:
        if r.valid_from <= day:
            rate = r.rate
    return rate


def vat_of(item: Taxed, model: SiteModel, day: date) -> Decimal:
    return item.vat if item.vat_category is None else rate_on(model, item.vat_category, day)


def categories(tariff: Tariff) -> set[str]:
    return {x.vat_category for v in tariff.versions for x in (*v.components, *v.fees,
                                                              *v.demand)
            if x.vat_category is not None}


def change_dates(model: SiteModel, cats: Iterable[str]) -> list[date]:
    """Days a rate of one of the categories changes on (its first date is no change)."""
    out: set[date] = set()
    for c in set(cats):
        rows = sorted(r.valid_from for r in model.vat_rates if r.category == c)
        out.update(rows[1:])
    return sorted(out)
