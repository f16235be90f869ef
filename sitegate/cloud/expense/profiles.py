"""Jurisdiction profiles as data: what a heating / hot-water split may be, how far an
estimate may go, and the figures the rules prescribe (calorific values, the hot-water
formula, degree-day weights, per-m² limits).

German profile: Heizkostenverordnung (HeizkostenV) as in force since 2009:
  §7(1), §8(1)  50-70 % of heating / hot-water costs by consumption, the rest by area;
  §9(2)         hot-water heat Q = 2.5 kWh/(m³·K) x V x (tw - 10 °C), tw = 60 °C unless
                measured, when no heat meter measures it;
  §9(3)         fuel of the hot water B = Q / Hi (Hi per fuel: oil 10 kWh/l, natural gas H
                10 kWh/m³, wood pellets 5 kWh/kg; a fuel billed in kWh has Hi = 1);
  §9a(2)        estimates for more than 25 % of the area: the consumption part by area;
  §9b           a tenant change without a reading: heating by degree-day weights
                (the usual monthly table, per mille of the year), hot water by days.
Czech profile: vyhláška 269/2015 Sb. as published in 2015 (later amendments 376/2021 and
274/2023 moved the shares: a new profile, not an edit of this one):
  §3   heating: base 40-50 % by floor area, the rest by allocator/meter readings; each
       unit's heating cost per m² between 80 % and 200 % of the building's average
       (-20 % / +100 %); outside, the unit is set to the limit and the difference goes
       to the others in proportion to their consumption parts;
  §4   hot water: base 10-30 % by floor area, the rest by hot-water meters;
  no volume formula for the hot-water heat: it is measured (a heat meter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction


class ProfileError(ValueError):
    """A split or method the profile does not allow; the message says which rule."""


@dataclass(frozen=True, slots=True)
class Range:
    low: Decimal  # % by consumption, inclusive
    high: Decimal

    def check(self, what: str, share: Decimal, profile: str, rule: str) -> None:
        if not self.low <= share <= self.high:
            raise ProfileError(f"{what}: {share} % by consumption is outside "
                               f"{self.low}-{self.high} % ({profile}, {rule})")


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    title: str
    heating: Range
    hot_water: Range
    heating_rule: str
    hot_water_rule: str
    # share of the area whose consumption may be estimated; beyond it the consumption
    # part is allocated by area for everyone (None: no cap)
    estimation_cap: Fraction | None = None
    # hot-water heat from volume: kWh per m³ and K, and the cold-water base temperature
    hot_water_formula: tuple[Decimal, Decimal] | None = None
    hot_water_temperature: Decimal = Decimal(60)
    # per-m² limits of a unit's heating cost against the average (low, high)
    per_m2_limits: tuple[Fraction, Fraction] | None = None
    calorific: dict[str, Decimal] = field(default_factory=dict)  # kWh per fuel unit
    degree_days: tuple[Fraction, ...] = ()  # per mille, January first


# The usual degree-day table (per mille of the heating year, January .. December); the
# three summer months share 40 per mille.
STANDARD_DEGREE_DAYS: tuple[Fraction, ...] = tuple(Fraction(x) for x in (
    170, 150, 130, 80, 40, Fraction(40, 3), Fraction(40, 3), Fraction(40, 3), 30, 80, 120,
    160))

CALORIFIC = {"kWh": Decimal(1), "l": Decimal(10), "m³": Decimal(10), "m3": Decimal(10),
             "kg": Decimal(5)}

PROFILES: dict[str, Profile] = {
    "de-heizkostenv": Profile(
        id="de-heizkostenv", title="Germany, Heizkostenverordnung",
        heating=Range(Decimal(50), Decimal(70)), hot_water=Range(Decimal(50), Decimal(70)),
        heating_rule="HeizkostenV §7(1)", hot_water_rule="HeizkostenV §8(1)",
        estimation_cap=Fraction(1, 4),
        hot_water_formula=(Decimal("2.5"), Decimal(10)),
        calorific=CALORIFIC, degree_days=STANDARD_DEGREE_DAYS),
    "cz-269-2015": Profile(
        id="cz-269-2015", title="Czech Republic, vyhláška 269/2015 Sb. (2015 text)",
        heating=Range(Decimal(50), Decimal(60)), hot_water=Range(Decimal(70), Decimal(90)),
        heating_rule="vyhláška 269/2015 §3(1)", hot_water_rule="vyhláška 269/2015 §4(1)",
        per_m2_limits=(Fraction(4, 5), Fraction(2)),
        calorific=CALORIFIC, degree_days=STANDARD_DEGREE_DAYS),
    # no statutory split: any share, no cap (a contract's own terms)
    "free": Profile(
        id="free", title="no statutory rules (contractual split)",
        heating=Range(Decimal(0), Decimal(100)), hot_water=Range(Decimal(0), Decimal(100)),
        heating_rule="contract", hot_water_rule="contract",
        hot_water_formula=(Decimal("2.5"), Decimal(10)),
        calorific=CALORIFIC, degree_days=STANDARD_DEGREE_DAYS),
}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ProfileError(f"unknown jurisdiction profile {name!r}; one of "
                           f"{', '.join(sorted(PROFILES))}") from None
