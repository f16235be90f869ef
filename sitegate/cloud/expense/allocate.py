"""Exact shares of an amount: the parts add up to the total to the cent.

The largest-remainder rule (Hamilton): each part's exact share (a Fraction) is cut down to
whole cents (floor, also for negative shares), then the cents still missing go one each to
the parts with the largest cut-off remainders; equal remainders go in the order the parts
were given (the caller passes them sorted by id, so a run repeats to the cent). No part
moves by more than one cent from its exact share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction

CENTS = 100


def to_fraction(x: Decimal | Fraction | int) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(x)


def cents(x: Decimal | Fraction | int) -> int:
    """An amount that is whole cents, as an int (a ValueError otherwise)."""
    c = to_fraction(x) * CENTS
    if c.denominator != 1:
        raise ValueError(f"{x} is not an amount in whole cents")
    return int(c)


def money(c: int) -> Decimal:
    return (Decimal(c) / CENTS).quantize(Decimal("0.01"))


def round_cents(x: Fraction) -> int:
    """Half away from zero, as the billing core's ``round_money``."""
    c = abs(x) * CENTS
    n = math.floor(c + Fraction(1, 2))
    return n if x >= 0 else -n


def split_exact(total: Decimal | Fraction | int,
                shares: Mapping[str, Fraction]) -> dict[str, Decimal]:
    """``total`` (whole cents) split in proportion to ``shares`` (weights >= 0, not all
    zero): every part to the cent, their sum exactly ``total``."""
    weights = {k: to_fraction(w) for k, w in shares.items()}
    if any(w < 0 for w in weights.values()):
        raise ValueError("a weight is negative")
    s = sum(weights.values(), Fraction(0))
    if s == 0:
        raise ValueError("nothing to allocate by: every weight is zero")
    return distribute(cents(total), {k: w / s for k, w in weights.items()})


def distribute(total_cents: int, exact: Mapping[str, Fraction]) -> dict[str, Decimal]:
    """Exact parts (Fractions of a cent-whole ``total_cents``; they add up to it, any
    signs) rounded to cents by the largest remainder."""
    parts = {k: v * total_cents for k, v in exact.items()}
    return {k: money(c) for k, c in round_parts(total_cents, parts).items()}


def round_parts(total_cents: int, parts: Mapping[str, Fraction]) -> dict[str, int]:
    """Parts in cents (exact Fractions summing to ``total_cents``) to whole cents."""
    if sum(parts.values(), Fraction(0)) != total_cents:
        raise ValueError("the exact parts do not add up to the total")
    floors = {k: math.floor(v) for k, v in parts.items()}
    left = total_cents - sum(floors.values())
    order = sorted(parts, key=lambda k: -(parts[k] - floors[k]))  # stable: given order
    for k in order[:left]:
        floors[k] += 1
    return floors
