"""An invoice document as typed values: its lines (``lines.Line``), its totals (Decimal),
who it is for, the trace of where its numbers come from and the tenant's chart. It becomes
JSON (decimals as plain strings) only when stored (``to_json``), and is read back as the
same types (``Invoice.of``); a stored document round-trips to the same JSON.

Credit notes, stays settlements and job invoices carry more fields (a title, the line a
credit note credits, ...): whatever is not modelled here travels in ``extra`` untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sitegate.cloud.billing.lines import Line, plain
from sitegate.cloud.billing.units import CENT, round_money


@dataclass(frozen=True, slots=True)
class VatRow:
    rate: Decimal  # percent
    net: Decimal
    vat: Decimal

    def to_json(self) -> dict[str, str]:
        return {"rate": plain(self.rate), "net": plain(self.net), "vat": plain(self.vat)}

    @classmethod
    def of(cls, d: Mapping[str, str]) -> VatRow:
        return cls(Decimal(d["rate"]), Decimal(d["net"]), Decimal(d["vat"]))


@dataclass(frozen=True, slots=True)
class Totals:
    """VAT once per rate on the rate's net sum (not per line); the amount due rounded to
    the smallest cash unit, the difference its own visible row."""

    vat: tuple[VatRow, ...]
    net_total: Decimal
    vat_total: Decimal
    gross_total: Decimal
    advances: Decimal
    rounding: Decimal
    total_due: Decimal

    @classmethod
    def compute(cls, amounts: Iterable[tuple[Decimal, Decimal]],
                advances: Decimal = Decimal("0"),
                cash_unit: Decimal = Decimal("0.05")) -> Totals:
        """From (VAT rate, net amount) per line."""
        by_rate: dict[Decimal, Decimal] = {}
        for rate, amount in amounts:
            by_rate[rate] = by_rate.get(rate, Decimal("0")) + amount
        rows = []
        for rate in sorted(by_rate):
            net = by_rate[rate].quantize(CENT)
            rows.append(VatRow(rate, net, round_money(net * rate / 100)))
        net_total = sum((r.net for r in rows), Decimal("0.00"))
        vat_total = sum((r.vat for r in rows), Decimal("0.00"))
        gross = net_total + vat_total
        due_raw = gross - advances
        due = round_money(due_raw, cash_unit)
        return cls(tuple(rows), net_total, vat_total, gross, advances.quantize(CENT),
                   (due - due_raw).quantize(CENT), due)

    def to_json(self) -> dict[str, Any]:
        return {"vat": [r.to_json() for r in self.vat], "net_total": plain(self.net_total),
                "vat_total": plain(self.vat_total), "gross_total": plain(self.gross_total),
                "advances": plain(self.advances), "rounding": plain(self.rounding),
                "total_due": plain(self.total_due)}

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Totals:
        return cls(tuple(VatRow.of(v) for v in d["vat"]), Decimal(d["net_total"]),
                   Decimal(d["vat_total"]), Decimal(d["gross_total"]),
                   Decimal(d["advances"]), Decimal(d["rounding"]), Decimal(d["total_due"]))


TOTALS_KEYS = ("vat", "net_total", "vat_total", "gross_total", "advances", "rounding",
               "total_due")


@dataclass(frozen=True, slots=True)
class Recipient:
    id: str
    name: str
    delivery: str | None = None
    email: str | None = None
    address: dict[str, Any] | None = None  # the site model's address, as JSON

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "delivery": self.delivery,
                "email": self.email, "address": self.address}

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Recipient:
        return cls(d["id"], d["name"], d.get("delivery"), d.get("email"), d.get("address"))


@dataclass(frozen=True, slots=True)
class Day:
    """A day of the tenant's chart: solar and grid kWh."""

    day: date
    solar: Decimal
    grid: Decimal

    def to_json(self) -> dict[str, str]:
        return {"day": self.day.isoformat(), "solar_kwh": plain(self.solar),
                "grid_kwh": plain(self.grid)}

    @classmethod
    def of(cls, d: Mapping[str, str]) -> Day:
        return cls(date.fromisoformat(d["day"]), Decimal(d["solar_kwh"]),
                   Decimal(d["grid_kwh"]))


_KNOWN = {"site", "site_name", "currency", "period", "period_first", "period_last",
          "account", "lines", "sources", "daily", "interim", *TOTALS_KEYS}


@dataclass(frozen=True, slots=True)
class Invoice:
    site: str
    site_name: str
    currency: str
    period: str  # the period's label
    period_first: date
    period_last: date
    account: Recipient
    lines: tuple[Line, ...]
    totals: Totals
    sources: tuple[dict[str, Any], ...] = ()  # the trace explain shows, as JSON
    daily: tuple[Day, ...] = ()
    interim: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # fields of other documents

    @property
    def total_due(self) -> Decimal:
        return self.totals.total_due

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "site": self.site, "site_name": self.site_name, "currency": self.currency,
            "period": self.period, "period_first": self.period_first.isoformat(),
            "period_last": self.period_last.isoformat(), "account": self.account.to_json(),
            "lines": [ln.to_json() for ln in self.lines], "sources": list(self.sources),
            "daily": [d.to_json() for d in self.daily], **self.totals.to_json(),
            **self.extra,
        }
        if self.interim:
            out["interim"] = True
        return out

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Invoice:
        """A stored document, typed again."""
        return cls(
            d["site"], d["site_name"], d["currency"], d["period"],
            date.fromisoformat(d["period_first"]), date.fromisoformat(d["period_last"]),
            Recipient.of(d["account"]), tuple(Line.of(ln) for ln in d["lines"]),
            Totals.of(d), tuple(d.get("sources", ())),
            tuple(Day.of(x) for x in d.get("daily", ())), bool(d.get("interim", False)),
            {k: v for k, v in d.items() if k not in _KNOWN})
