"""Check-out settlement of a stay: usage per utility meter between the stay's start and
end readings, priced per rate, the fixed administration costs per utility, VAT per line,
the deposit settled against the amount incl. VAT (the remainder is charged, or refunded),
cash rounding. The document is a billing invoice (``billing.invoice.totals``), so its
lifecycle, payments, explain and PDF are the billing core's.

The run (``select``) goes through every unit and settles the checked-in reservation of
an eligible category; it lists every unit it skipped and why."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sitegate.cloud.billing.invoice import line_amount, totals
from sitegate.cloud.billing.lines import Line, plain
from sitegate.cloud.billing.periods import local_midnight
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.billing.vat import vat_of
from sitegate.cloud.stays.readings import StayReading
from sitegate.cloud.stays.reservations import Reservation
from sitegate.cloud.stays.setup import LABEL_OF, StayMeter, StaySetup, Unit

PERIOD_PREFIX = "stay:"  # invoice period label: never parsed as a billing period


@dataclass(frozen=True, slots=True)
class Skip:
    unit: str
    reason: str  # no_parent_reservation wrong_status ineligible_category missing_start_reading
    detail: str  # missing_end_reading no_meters meter_backwards
    reservation: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "reservation": self.reservation, "reason": self.reason,
                "detail": self.detail}


class Skipped(Exception):
    def __init__(self, skip: Skip) -> None:
        super().__init__(skip.detail)
        self.skip = skip


@dataclass(slots=True)
class Settlement:
    reservation: Reservation
    document: dict[str, Any]
    first: date  # from the readings: the start reading's day
    last: date  # the end reading's day
    notes: list[str] = field(default_factory=list)


def select(setup: StaySetup, reservations: Iterable[Reservation], day: date,
           unit_type: str | None = None) -> tuple[list[Reservation], list[Skip]]:
    """Per unit (of ``unit_type``): the reservation to settle on ``day``, or why not.
    The unit's parent reservation covering ``day`` must be checked in and of an eligible
    category; its checked-in stays are settled (a parent without stays: itself)."""
    by_unit: dict[str, list[Reservation]] = {}
    for r in reservations:
        by_unit.setdefault(r.unit or "", []).append(r)
    todo: list[Reservation] = []
    skips: list[Skip] = []
    for unit in setup.units:
        if unit_type is not None and unit.type != unit_type:
            continue
        rows = by_unit.get(unit.id, [])
        parents = sorted((r for r in rows if r.parent is None and r.covers(day)),
                         key=lambda r: r.status == "cancelled")  # a live one first
        if not parents:
            skips.append(Skip(unit.id, "no_parent_reservation",
                              f"no parent reservation on {day}"))
            continue
        parent = parents[0]
        if parent.status != "checked_in":
            skips.append(Skip(unit.id, "wrong_status", f"parent reservation {parent.id} is "
                              f"{parent.status}, not checked_in", parent.id))
            continue
        stays = [r for r in rows if r.parent == parent.id]
        if not stays:
            candidates = [parent]
        else:
            candidates = [s for s in stays if s.status == "checked_in" and s.start <= day]
            if not candidates:
                states = ", ".join(f"{s.id} {s.status}" for s in sorted(
                    stays, key=lambda s: s.start))
                skips.append(Skip(unit.id, "wrong_status", f"no checked-in stay of "
                                  f"{parent.id} on {day} ({states})", parent.id))
                continue
        for r in candidates:
            if not setup.eligible(r.category or ""):
                skips.append(Skip(unit.id, "ineligible_category", f"category {r.category} "
                                  "is not billed for energy", r.id))
            elif not unit.meters:
                skips.append(Skip(unit.id, "no_meters", "the unit has no meters", r.id))
            else:
                todo.append(r)
    return todo, skips


def _utc(day: date, model: SiteModel) -> datetime:
    return datetime.fromtimestamp(local_midnight(day, model.tz), UTC)


def pick(readings: list[StayReading], arrival: date, departure: date,
         model: SiteModel) -> tuple[StayReading | None, StayReading | None]:
    """A meter's start and end reading for a stay (readings in time order): the start is a
    value marked as start during the stay, else the last value up to the end of the
    arrival day; the end is the last value after it up to the end of the departure day."""
    lo = _utc(arrival, model)
    arrival_end = _utc(arrival + timedelta(days=1), model)
    departure_end = _utc(departure + timedelta(days=1), model)
    marked = [r for r in readings if r.start and lo <= r.ts < departure_end]
    before = [r for r in readings if r.ts < arrival_end]
    start = marked[-1] if marked else (before[-1] if before else None)
    if start is None:
        return None, None
    after = [r for r in readings if start.ts < r.ts < departure_end]
    return start, (after[-1] if after else None)


def _local_day(ts: datetime, model: SiteModel) -> date:
    return ts.astimezone(model.tz).date()


def _seen(r: StayReading, model: SiteModel) -> dict[str, Any]:
    return {"value": plain(r.value), "at": r.ts.astimezone(model.tz).isoformat(),
            "source": r.source, "entered_by": r.entered_by, "start": r.start}


def settle(model: SiteModel, setup: StaySetup, res: Reservation, departure: date,
           readings: dict[str, list[StayReading]],
           gateway: Callable[[StayMeter, date, date], tuple[StayReading | None,
                                                             StayReading | None]]
           | None = None) -> Settlement:
    """The settlement document of ``res`` checking out on ``departure``; Skipped when a
    reading is missing. ``readings``: the unit's values by meter, in time order;
    ``gateway``: start and end values from the gateway's readings, for meters it reads."""
    unit = setup.unit(res.unit or "")
    assert unit is not None and res.guest is not None
    if departure < res.start:
        raise Skipped(Skip(unit.id, "wrong_status", f"departure {departure} is before the "
                           f"arrival {res.start}", res.id))
    picked: list[tuple[StayMeter, StayReading, StayReading]] = []
    for m in unit.meters:
        start, end = pick(readings.get(m.id, []), res.start, departure, model)
        if (start is None or end is None) and m.gateway and gateway is not None:
            gs, ge = gateway(m, res.start, departure)
            start, end = start or gs, end or ge
        if start is None:
            raise Skipped(Skip(unit.id, "missing_start_reading",
                               f"no start reading of meter {m.id} on or before {res.start}",
                               res.id))
        if end is None:
            raise Skipped(Skip(unit.id, "missing_end_reading",
                               f"no end reading of meter {m.id} after "
                               f"{_local_day(start.ts, model)} up to {departure}", res.id))
        if end.value < start.value:
            raise Skipped(Skip(unit.id, "meter_backwards", f"meter {m.id}: end {end.value} "
                               f"is below start {start.value}", res.id))
        picked.append((m, start, end))
    first = min(_local_day(s.ts, model) for _, s, _ in picked)
    last = max(_local_day(e.ts, model) for _, _, e in picked)
    lines = _lines(model, setup, unit, picked, first, last, departure)
    return Settlement(res, document(model, res, unit, lines, first, last, departure),
                      first, last)


def _lines(model: SiteModel, setup: StaySetup, unit: Unit,
           picked: list[tuple[StayMeter, StayReading, StayReading]], first: date,
           last: date, day: date) -> list[Line]:
    out: list[Line] = []
    fees: dict[str, Any] = {}
    for m, start, end in picked:
        rate = setup.rate_for(unit, m)
        assert rate is not None  # the setup's check
        usage = end.value - start.value
        out.append(Line(
            key=m.utility, label=rate.label or LABEL_OF[m.utility],
            start=_local_day(start.ts, model).isoformat(),
            end=(_local_day(end.ts, model) + timedelta(days=1)).isoformat(),
            quantity=usage, unit=m.unit, unit_price=rate.price,
            amount=line_amount(usage, rate.price), vat_rate=vat_of(rate, model, day),
            billing_point=f"{unit.id} {m.id}",
            extra={"readings": {"meter": m.id, "start": _seen(start, model),
                                "end": _seen(end, model)}}))
        if rate.admin_fee:
            fees.setdefault(rate.id, rate)
    for rate in fees.values():  # once per stay and rate (one rate per utility and type)
        out.append(Line(
            key=f"admin_{rate.utility}",
            label=f"Verwaltungskosten {LABEL_OF[rate.utility]}",
            start=first.isoformat(), end=(last + timedelta(days=1)).isoformat(),
            quantity=Decimal(1), unit="", unit_price=rate.admin_fee,
            amount=line_amount(Decimal(1), rate.admin_fee),
            vat_rate=vat_of(rate, model, day), billing_point=unit.id))
    return [replace(ln, n=k) for k, ln in enumerate(out, 1)]


def document(model: SiteModel, res: Reservation, unit: Unit, lines: list[Line], first: date,
             last: date, departure: date) -> dict[str, Any]:
    """The settlement as an invoice document; the deposit is settled like an advance
    (after VAT): a deposit larger than the amount gives a refund."""
    guest = res.guest
    assert guest is not None
    js = [ln.to_json() for ln in lines]
    t = totals(js, res.deposit, model.site.cash_unit)
    due = Decimal(t["total_due"])
    doc: dict[str, Any] = {
        "site": model.site.id, "site_name": model.site.name,
        "currency": model.site.currency,
        "period": f"{PERIOD_PREFIX}{first}..{last}", "period_first": first.isoformat(),
        "period_last": last.isoformat(),
        "account": {"id": res.account or res.id, "name": guest.name,
                    **({"address": guest.address.model_dump(mode="json")}
                       if guest.address else {}),
                    **({"email": guest.email} if guest.email else {})},
        "title": "Abrechnung Aufenthalt", "advances_label": "Kaution",
        "period_text": f"{unit.id} {first:%d.%m.%Y}-{last:%d.%m.%Y}",
        "stay": {"reservation": res.id, "parent": res.parent, "unit": unit.id,
                 "unit_type": unit.type, "category": res.category,
                 "arrival": res.start.isoformat(), "departure": departure.isoformat()},
        "lines": js, "sources": [], **t,
        "deposit": plain(res.deposit.quantize(Decimal("0.01"))),
        "refund": plain(-due) if due < 0 else "0.00",
    }
    return doc
