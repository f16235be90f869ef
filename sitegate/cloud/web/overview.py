"""The invoices overview as operators know it: per billing period, for the billing points
chosen, Amount, Collected, Balance and the count of invoices in each state and reminder
level; and the drill-down to the invoices behind a figure. Pure: summaries in, rows out.

An invoice is an account's for a period; the billing points it covers are the ones the
account occupied in that period (or owned while vacant), from the site model, so that the
overview needs no invoice document. The figures are ``ledger.overview``'s: each invoice is
added by ``ledger.tally``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sitegate.cloud.billing.ledger import (
    OVERVIEW_COUNTS,
    balance,
    overview_figures,
    overview_state,
    tally,
)
from sitegate.cloud.billing.periods import PeriodError, parse_period
from sitegate.cloud.billing.sitemodel import SiteModel, local_dt

COUNTS = STATES = OVERVIEW_COUNTS


@dataclass(frozen=True)
class Building:
    id: str
    name: str
    points: list[tuple[str, str]]  # (billing point id, name)


def buildings(model: SiteModel) -> list[Building]:
    """Billing points grouped by building, in the site model's order (the filter)."""
    return [Building(b.id, b.name, [(p.id, p.name) for p in model.billing_points
                                    if p.building == b.id]) for b in model.buildings]


class PointIndex:
    """Which billing points an account's invoice of a period covers."""

    def __init__(self, model: SiteModel) -> None:
        self.spans: dict[str, list[tuple[str, date, date | None]]] = {}
        for o in model.occupancy:
            end = local_dt(o.end, model.tz).date() if o.end is not None else None
            self.spans.setdefault(o.account, []).append(
                (o.billing_point, local_dt(o.start, model.tz).date(), end))
        for p in model.billing_points:  # billed to the owner while vacant
            self.spans.setdefault(p.owner, []).append((p.id, date.min, None))
        self._cache: dict[tuple[str, str], frozenset[str]] = {}
        self._periods: dict[str, tuple[date, date] | None] = {}

    def points(self, account: str, period: str) -> frozenset[str]:
        key = (account, period)
        found = self._cache.get(key)
        if found is None:
            span = self._period(period)
            found = frozenset() if span is None else frozenset(
                bp for bp, lo, hi in self.spans.get(account, ())
                if lo < span[1] and (hi is None or span[0] < hi))
            self._cache[key] = found
        return found

    def _period(self, label: str) -> tuple[date, date] | None:
        if label not in self._periods:
            try:
                per = parse_period(label)
                self._periods[label] = (per.first, per.end)
            except PeriodError:
                self._periods[label] = None
        return self._periods[label]


def _selected(rows: Iterable[dict[str, Any]], index: PointIndex,
              points: frozenset[str] | None) -> Iterable[dict[str, Any]]:
    for row in rows:
        if row["kind"] != "invoice":
            continue
        if points is None or index.points(row["account_id"], row["period"]) & points:
            yield row


def summarize(rows: list[dict[str, Any]], evs: dict[int, list[dict[str, Any]]],
              index: PointIndex, points: frozenset[str] | None = None
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(one row per period, newest first; the total over them), each invoice added as
    ``ledger.tally`` adds it. One pass over the rows."""
    by_period: dict[str, dict[str, Any]] = {}
    for row in _selected(rows, index, points):
        fig = by_period.get(row["period"])
        if fig is None:
            fig = by_period[row["period"]] = overview_figures()
        tally(fig, row, evs.get(row["id"], ()))
    out = [{"period": p, **v} for p, v in sorted(by_period.items(), reverse=True)]
    total = overview_figures()
    for r in out:
        for k in total:
            total[k] += r[k]
    return out, total


def drill_down(rows: list[dict[str, Any]], evs: dict[int, list[dict[str, Any]]],
               index: PointIndex, names: dict[str, str], points: frozenset[str] | None,
               state: str | None) -> list[dict[str, Any]]:
    """The invoices behind a figure of the overview (a state or reminder level, or all)."""
    out = []
    for row in _selected(rows, index, points):
        if state in ("R1", "R2", "R3"):
            if row["state"] != "issued" or f"R{row['reminder_level']}" != state:
                continue
        elif state is not None and overview_state(row["state"]) != state:
            continue
        out.append({**row, "account_name": names.get(row["account_id"], row["account_id"]),
                    "points": sorted(index.points(row["account_id"], row["period"])),
                    "balance": balance(row, evs.get(row["id"], []))})
    return out
