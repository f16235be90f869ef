"""An invoice line as a typed value: exact quantities (a Decimal, or a Fraction for a
fee prorated by days), Decimal prices, amounts and VAT rates. It becomes JSON (decimals as
plain strings, never "4.5E+3") only when a document is stored, and is read back typed."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

Quantity = Decimal | Fraction


def plain(d: Decimal) -> str:
    """A decimal as stored and shown: positional notation, its own digits
    (Decimal("4.5E+3") -> "4500", Decimal("0.250") -> "0.250")."""
    return format(d, "f")


@dataclass(frozen=True, slots=True)
class Days:
    """A fee's share of a month: ``days`` of the ``of`` days the month has."""

    days: int
    of: int

    @property
    def fraction(self) -> Fraction:
        return Fraction(self.days, self.of)

    def __str__(self) -> str:  # as the tenant reads it: 15/31, 28/28
        return f"{self.days}/{self.of}"

    @classmethod
    def parse(cls, text: str) -> Days:
        days, _, of = text.partition("/")
        return cls(int(days), int(of))


@dataclass(frozen=True, slots=True)
class Line:
    key: str
    label: str
    start: str  # "from": a local date, or date-time where a move cut the day
    end: str  # "to", exclusive
    quantity: Decimal | Days
    unit: str
    unit_price: Decimal
    amount: Decimal
    vat_rate: Decimal
    billing_point: str | None = None
    source: str | None = None
    n: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # sessions, estimated, credits_line

    @property
    def exact_quantity(self) -> Quantity:
        q = self.quantity
        return q.fraction if isinstance(q, Days) else q

    @property
    def prorated(self) -> bool:
        return isinstance(self.quantity, Days)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "billing_point": self.billing_point, "key": self.key, "label": self.label,
            "from": self.start, "to": self.end,
            "quantity": str(self.quantity) if isinstance(self.quantity, Days)
            else plain(self.quantity),
            "unit": self.unit, "unit_price": plain(self.unit_price),
            "amount": plain(self.amount), "vat_rate": plain(self.vat_rate),
            "source": self.source, **self.extra,
        }
        if self.n is not None:
            out["n"] = self.n
        return out

    @classmethod
    def of(cls, d: dict[str, Any]) -> Line:
        """A stored line, typed again; a quantity "15/31" (or "-15/31" on a credit note)
        is a share of a month."""
        q = d["quantity"]
        qty: Decimal | Days = Days.parse(q) if "/" in q else Decimal(q)
        known = {"billing_point", "key", "label", "from", "to", "quantity", "unit",
                 "unit_price", "amount", "vat_rate", "source", "n"}
        return cls(d["key"], d["label"], d["from"], d["to"], qty, d["unit"],
                   Decimal(d["unit_price"]), Decimal(d["amount"]), Decimal(d["vat_rate"]),
                   d.get("billing_point"), d.get("source"), d.get("n"),
                   {k: v for k, v in d.items() if k not in known})
