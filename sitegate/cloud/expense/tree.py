"""A received invoice distributed down the site's hierarchy (complex -> buildings ->
units): each child gets the parent's amount in proportion to its metered consumption
over the invoice's period; what the children's meters do not explain stays at the parent
as unmetered consumption (losses), reported, not charged. Each level adds up to its
parent's amount to the cent (largest remainder, the loss being one of the parts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sitegate.cloud.billing.lines import plain
from sitegate.cloud.expense.allocate import cents, money, round_cents, round_parts

LOSS = "(unmetered)"


class TreeError(ValueError):
    """The hierarchy cannot carry the invoice; the message names the node."""


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    parent: str | None
    consumption: Decimal | None  # over the invoice's period; None: no meter


@dataclass
class Share:
    node: str
    amount: Decimal
    consumption: Decimal
    loss_consumption: Decimal = Decimal(0)
    loss_amount: Decimal = Decimal(0)
    children: list[Share] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.node, "amount": plain(self.amount),
                               "consumption": plain(self.consumption)}
        if self.children:
            out["unmetered_consumption"] = plain(self.loss_consumption)
            out["unmetered_amount"] = plain(self.loss_amount)
            out["children"] = [c.to_json() for c in self.children]
        return out


def distribute(nodes: Mapping[str, Node], root: str, amount: Decimal,
               consumption: Decimal) -> Share:
    """``amount`` billed at ``root`` for ``consumption`` (the invoice's own figure),
    down to every metered descendant."""
    kids: dict[str, list[str]] = {}
    for n in nodes.values():
        if n.parent is not None:
            kids.setdefault(n.parent, []).append(n.id)
    return _down(nodes, kids, root, cents(amount), Fraction(consumption))


def _down(nodes: Mapping[str, Node], kids: dict[str, list[str]], node: str, amount: int,
          consumption: Fraction) -> Share:
    share = Share(node, money(amount), Decimal(consumption.numerator) /
                  Decimal(consumption.denominator))
    children = sorted(kids.get(node, []))
    if not children:
        return share
    missing = [c for c in children if nodes[c].consumption is None]
    if missing:
        raise TreeError(f"{', '.join(missing)} under {node} has no metered consumption for "
                        "the period")
    got = {c: Fraction(nodes[c].consumption) for c in children}  # type: ignore[arg-type]
    metered = sum(got.values(), Fraction(0))
    if metered > consumption:
        raise TreeError(f"the meters under {node} measured {metered} against its "
                        f"{consumption}: more than the parent")
    if consumption == 0:
        raise TreeError(f"{node} consumed nothing: nothing to distribute by")
    parts = {c: amount * v / consumption for c, v in got.items()}
    parts[LOSS] = amount * (consumption - metered) / consumption
    rounded = round_parts(amount, parts)
    share.loss_consumption = Decimal((consumption - metered).numerator) / Decimal(
        (consumption - metered).denominator)
    share.loss_amount = money(rounded[LOSS])
    share.children = [_down(nodes, kids, c, rounded[c], got[c]) for c in children]
    return share


def provisional(nodes: Mapping[str, Node], root: str, price: Decimal) -> Share:
    """Before the invoice's period has ended: every metered node's consumption so far at
    the tariff price (each rounded to the cent on its own: a provisional figure, not a
    split of an invoice)."""
    kids: dict[str, list[str]] = {}
    for n in nodes.values():
        if n.parent is not None:
            kids.setdefault(n.parent, []).append(n.id)

    def down(node: str) -> Share:
        cons = nodes[node].consumption or Decimal(0)
        share = Share(node, money(round_cents(Fraction(cons) * Fraction(price))), cons)
        share.children = [down(c) for c in sorted(kids.get(node, []))]
        metered = sum((c.consumption for c in share.children), Decimal(0))
        if share.children:
            share.loss_consumption = cons - metered
            share.loss_amount = share.amount - sum((c.amount for c in share.children),
                                                   Decimal(0))
        return share

    return down(root)
