"""The expense statement run: the period's costs per category allocated to the units by
their keys, each unit's share divided over its occupants (vacancy: the owner), advances
netted to a balance per account. Exact: every category's parts add up to its costs to
the cent (``allocate``), and so do the occupants' parts of each unit's share.

Order of the rules: (1) costs per category; (2) combined boiler: the hot water's share of
the fuel moves to the hot-water category; (3) consumption per unit and key (estimates
for failed meters; over the profile's cap the consumption part goes by area);
(4) base / consumption split and the keys; (5) per-m² limits (Czech profile);
(6) occupants; (7) statements per account with advances.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sitegate.cloud.billing.invoice import totals
from sitegate.cloud.billing.lines import Line, plain
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.expense.allocate import cents, money, round_cents, round_parts
from sitegate.cloud.expense.consumption import (
    CONSUMPTION_KEYS_SET,
    KEY_UNIT,
    Measured,
    RunError,
    as_decimal,
    estimate,
    measure,
)
from sitegate.cloud.expense.profiles import Profile, profile
from sitegate.cloud.expense.registers import Readings, value_at
from sitegate.cloud.expense.shares import Segment, last_day, segments, weights
from sitegate.cloud.expense.spec import Category, PeriodSpec, Unit
from sitegate.cloud.i18n import text


def part_label(lang: str, part: str) -> str:
    """A part's name in a line's label, in the site's language ("all": none)."""
    return "" if part == "all" else text(lang, f"expense_part_{part}")


def key_label(lang: str, key: str) -> str:
    """An allocation key's name (heat meters, area, ...) in the site's language."""
    return text(lang, f"expense_key_{key}")


@dataclass(frozen=True, slots=True)
class Cost:
    """An invoice entered for a category: amount (whole cents), the fuel's quantity and
    unit where it matters (a combined boiler), date and supplier for the statement."""

    category: str
    amount: Decimal
    quantity: Decimal | None = None
    unit: str | None = None
    day: date | None = None
    supplier: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class AdvancePaid:
    account: str
    billing_point: str
    amount: Decimal


@dataclass
class Result:
    site: dict[str, Any]  # the owner's overall statement
    documents: dict[str, dict[str, Any]]  # account -> statement document
    consumption: list[dict[str, Any]]  # export rows: unit, category, key, units, amount


def _units(model: SiteModel, spec: PeriodSpec) -> dict[str, Unit]:
    if spec.units:
        return {u.billing_point: u for u in spec.units}
    return {b.id: Unit(billing_point=b.id) for b in model.billing_points if b.kind == "unit"}


def _check_template(spec: PeriodSpec, costs: list[Cost]) -> None:
    with_costs = {c.category for c in costs}
    for kind in spec.period.require:
        have = [c.id for c in spec.categories if c.kind == kind and
                (c.id in with_costs or _receives(spec, c.id))]
        if not have:
            raise RunError(f"the template requires a {kind} category with costs: there is "
                           "none; nothing was made")
        if len(have) > 1:
            raise RunError(f"the template requires exactly one {kind} category: "
                           f"{', '.join(have)}; nothing was made")


def _receives(spec: PeriodSpec, cid: str) -> bool:
    return any(c.combined_with == cid for c in spec.categories)


def run(model: SiteModel, spec: PeriodSpec, costs: list[Cost],
        advances: list[AdvancePaid], readings: Mapping[str, Readings]) -> Result:
    prof = profile(spec.period.profile)
    known = {c.id for c in spec.categories}
    for c in costs:
        if c.category not in known:
            raise RunError(f"a cost names unknown category {c.category!r}")
    _check_template(spec, costs)
    first, end = spec.period.first, spec.period.end
    units = _units(model, spec)
    if not units:
        raise RunError("no units to allocate to (list them under [[units]])")
    bps = {b.id: b for b in model.billing_points}
    area: dict[str, Fraction] = {}
    heated: dict[str, Fraction] = {}
    for u in units.values():
        a = u.area_m2 if u.area_m2 is not None else bps[u.billing_point].area_m2
        area[u.billing_point] = Fraction(a) if a is not None else Fraction(0)
        heated[u.billing_point] = (Fraction(u.heated_area_m2) if u.heated_area_m2 is not None
                                   else area[u.billing_point])
    segs = {u: segments(model, u, bps[u].owner, first, end) for u in units}
    totals_c: dict[str, int] = {c.id: 0 for c in spec.categories}
    for c in costs:
        totals_c[c.category] += cents(c.amount)
    notes: list[str] = []
    measured: dict[str, dict[str, Measured]] = {}
    estimated: dict[str, list[str]] = {}

    def consumption(key: str) -> dict[str, Measured]:
        if key not in measured:
            ms = {u: measure(model, spec, units[u], key, segs[u], readings, prof.degree_days)
                  for u in sorted(units)}
            base = heated if key in ("heat", "allocators") else area
            estimated[key] = estimate(ms, units, key, base, segs, prof.degree_days)
            measured[key] = ms
        return measured[key]

    site_cats: list[dict[str, Any]] = []
    hot_water_moves = _combined(spec, prof, costs, totals_c, consumption, readings, model,
                                site_cats, notes)
    allocations: dict[str, dict[str, dict[str, int]]] = {}  # cat -> part -> unit -> cents
    part_info: dict[tuple[str, str], dict[str, Any]] = {}
    for cat in spec.categories:
        total = totals_c[cat.id]
        if total == 0 and cat.key != "fixed":
            continue
        parts = _parts(cat, total, units)
        exact: dict[str, dict[str, Fraction]] = {}
        for part, key, part_total in parts:
            if key == "fixed":
                w = {u: Fraction(1) for u in sorted(units)}
            else:
                w = _weights(key, sorted(units), area, heated, units, consumption)
                if part == "consumption" and key in CONSUMPTION_KEYS_SET:
                    w = _capped(cat, key, w, area, heated, estimated, prof, notes,
                                part_info, cat.base_key or "area", units, consumption,
                                model.site.language)
            s = sum(w.values(), Fraction(0))
            if s == 0:
                raise RunError(f"category {cat.id}: every unit has 0 by key {key}: "
                               "nothing to allocate by")
            exact[part] = {u: part_total * w[u] / s for u in w}
            part_info.setdefault((cat.id, part), {}).update(
                {"key": key, "total_cents": part_total, "weights": w, "sum": s})
        if prof.per_m2_limits is not None and cat.kind == "heating" and "consumption" in exact:
            exact["correction"] = _limits(exact, area, prof, notes, cat)
            part_info[(cat.id, "correction")] = {"key": "area", "total_cents": 0,
                                                 "weights": area, "sum": sum(area.values())}
        allocations[cat.id] = {p: round_parts(part_info[(cat.id, p)]["total_cents"], ex)
                               for p, ex in exact.items()}
        site_cats.append(_site_category(cat, total, allocations[cat.id], part_info, units,
                                        hot_water_moves.get(cat.id)))
    docs, rows = _documents(model, spec, prof, units, segs, allocations, part_info,
                            consumption, measured, advances, area, heated)
    site = {"site": model.site.id, "site_name": model.site.name, "period": spec.period.id,
            "from": first.isoformat(), "to": end.isoformat(), "profile": prof.id,
            "profile_title": prof.title, "currency": model.site.currency,
            "categories": site_cats, "notes": notes,
            "total_costs": plain(money(sum(cents(c["total"]) for c in site_cats))),
            "units": [_unit_summary(u, units, area, heated, segs, measured)
                      for u in sorted(units)],
            "accounts": {a: {"name": d["account"]["name"], "total": d["gross_total"],
                             "advances": d["advances"], "balance": d["total_due"]}
                         for a, d in sorted(docs.items())}}
    return Result(site, docs, rows)


def _parts(cat: Category, total: int, units: dict[str, Unit]) -> list[tuple[str, str, int]]:
    if cat.key == "fixed":
        return [("fixed", "fixed", cents(cat.fixed_amount or 0) * len(units))]
    if cat.consumption_share is None:
        return [("all", cat.key, total)]
    base = round_cents(Fraction(total, 100) * (100 - Fraction(cat.consumption_share)) / 100)
    return [("base", cat.base_key or "area", base), ("consumption", cat.key, total - base)]


def _weights(key: str, ids: list[str], area, heated, units, consumption) -> dict:
    if key == "area":
        return {u: area[u] for u in ids}
    if key == "heated_area":
        return {u: heated[u] for u in ids}
    if key == "equal":
        return {u: Fraction(1) for u in ids}
    if key == "persons":
        return {u: Fraction(units[u].persons) for u in ids}
    ms = consumption(key)
    return {u: ms[u].total for u in ids}


def _capped(cat: Category, key: str, w: dict, area, heated, estimated, prof: Profile,
            notes: list[str], part_info, base_key: str, units, consumption,
            lang: str) -> dict:
    """Over the profile's estimation cap the consumption part goes by area for all."""
    est = estimated.get(key, [])
    if not est:
        return w
    base = heated if key in ("heat", "allocators") else area
    share = sum((base[u] for u in est), Fraction(0)) / sum(base.values())
    if prof.estimation_cap is None or share <= prof.estimation_cap:
        notes.append(f"{cat.id}: consumption of {', '.join(est)} estimated "
                     f"({as_decimal(share * 100, 1)} % of the area)")
        return w
    notes.append(f"{cat.id}: consumption estimated for {as_decimal(share * 100, 1)} % of "
                 f"the area, more than the {as_decimal(prof.estimation_cap * 100, 0)} % "
                 f"{prof.id} allows: the consumption part is allocated by "
                 f"{key_label(lang, base_key)} for everyone")
    part_info.setdefault((cat.id, "consumption"), {})["by_area_instead_of"] = key
    return _weights(base_key, sorted(w), area, heated, units, consumption)


def _limits(exact: dict[str, dict[str, Fraction]], area, prof: Profile, notes: list[str],
            cat: Category) -> dict[str, Fraction]:
    """Each unit's heating cost per m² inside [low, high] x the average: a unit beyond is
    set to the limit, the difference goes to the units inside in proportion to their
    consumption parts (repeated until every unit is inside)."""
    low, high = prof.per_m2_limits  # type: ignore[misc]
    ids = sorted(exact["consumption"])
    cur = {u: exact["base"][u] + exact["consumption"][u] for u in ids}
    total = sum(cur.values(), Fraction(0))
    avg = total / sum(area[u] for u in ids)
    fixed: dict[str, Fraction] = {}
    for _ in range(2 * len(ids) + 1):
        # units below the floor first: raising them lowers the others, which may bring
        # a unit above the ceiling back inside (fixing both at once can be infeasible)
        below = [u for u in ids if u not in fixed and area[u] and cur[u] < low * avg * area[u]]
        above = [u for u in ids if u not in fixed and area[u] and cur[u] > high * avg * area[u]]
        if not below and not above:
            break
        for u in below or above:
            fixed[u] = (low if below else high) * avg * area[u]
        free = [u for u in ids if u not in fixed]
        if not free:
            raise RunError(f"{cat.id}: the per-m² limits of {prof.id} cannot all be met")
        rest = total - sum(fixed.values(), Fraction(0))
        cons = {u: exact["consumption"][u] for u in free}
        wsum = sum(cons.values(), Fraction(0))
        base_sum = sum((exact["base"][u] for u in free), Fraction(0))
        # the free units keep their base parts; the rest of the total goes by consumption
        for u in free:
            share = cons[u] / wsum if wsum else area[u] / sum(area[x] for x in free)
            cur[u] = exact["base"][u] + (rest - base_sum) * share
        for u, v in fixed.items():
            cur[u] = v
    for u in sorted(fixed):
        what = "raised to" if fixed[u] > exact["base"][u] + exact["consumption"][u] else \
            "lowered to"
        notes.append(f"{cat.id}: {u} {what} {as_decimal(fixed[u] / area[u] / avg * 100, 0)} % "
                     f"of the average cost per m² ({prof.heating_rule})")
    return {u: cur[u] - exact["base"][u] - exact["consumption"][u] for u in ids}


def _combined(spec: PeriodSpec, prof: Profile, costs: list[Cost], totals_c: dict[str, int],
              consumption, readings: Mapping[str, Readings], model: SiteModel,
              site_cats: list, notes: list[str]) -> dict[str, dict[str, Any]]:
    """One boiler for heating and hot water: the hot water's share of the fuel, from the
    heat meter on the hot-water circuit (Q kWh) or from the hot-water volume by the
    profile's formula (Q = 2.5 kWh/(m³·K) x V x (tw - 10 °C)); the fuel's energy from
    the invoices' quantities x calorific value (B = Q / Hi of the fuel); the share
    Q / fuel energy of the heating costs moves to the hot-water category."""
    out: dict[str, dict[str, Any]] = {}
    for cat in spec.categories:
        if cat.combined_with is None or totals_c[cat.id] == 0:
            continue
        fuel = Fraction(0)
        for c in costs:
            if c.category != cat.id:
                continue
            if c.quantity is None or c.unit is None:
                raise RunError(f"category {cat.id} makes hot water too: its invoice of "
                               f"{c.amount} ({c.day or 'no date'}) needs the fuel quantity "
                               "and unit")
            hi = prof.calorific.get(c.unit)
            if hi is None:
                raise RunError(f"fuel unit {c.unit!r} of {cat.id} has no calorific value "
                               f"in {prof.id} (one of {', '.join(prof.calorific)})")
            fuel += Fraction(c.quantity) * Fraction(hi)
        tz = model.tz
        info: dict[str, Any] = {"from": cat.id, "to": cat.combined_with,
                                "fuel_kwh": plain(as_decimal(fuel, 3))}
        if cat.hot_water_meter is not None:
            from sitegate.cloud.billing.periods import local_midnight

            rows = readings.get(cat.hot_water_meter, ())
            tol = model.site.handover_tolerance_minutes * 60
            a = value_at(rows, local_midnight(spec.period.first, tz), tol)
            b = value_at(rows, local_midnight(spec.period.end, tz), tol)
            if a is None or b is None:
                raise RunError(f"hot-water heat meter {cat.hot_water_meter} has no reading "
                               f"around {spec.period.first if a is None else spec.period.end}")
            q = Fraction(b.value) - Fraction(a.value)
            info.update({"method": "heat_meter", "meter": cat.hot_water_meter,
                         "start": str(a.value), "end": str(b.value),
                         "estimated": a.estimated or b.estimated})
        else:
            if prof.hot_water_formula is None:
                raise RunError(f"{prof.title} prescribes no volume formula: name the heat "
                               f"meter of the hot-water circuit (hot_water_meter of {cat.id})")
            k, t_cold = prof.hot_water_formula
            tw = cat.hot_water_temperature or prof.hot_water_temperature
            vol = sum((m.total for m in consumption("hot_water").values()
                       if m.total is not None), Fraction(0))
            q = Fraction(k) * vol * (Fraction(tw) - Fraction(t_cold))
            info.update({"method": "formula", "volume_m3": plain(as_decimal(vol, 3)),
                         "temperature": plain(tw),
                         "formula": f"Q = {k} kWh/(m³·K) x {as_decimal(vol, 3)} m³ x "
                                    f"({tw} - {t_cold}) K"})
        if fuel <= 0 or q < 0 or q > fuel:
            raise RunError(f"hot water's heat {as_decimal(q, 3)} kWh does not fit the fuel's "
                           f"{as_decimal(fuel, 3)} kWh of {cat.id}")
        moved = round_cents(Fraction(totals_c[cat.id], 100) * q / fuel)
        info.update({"q_kwh": plain(as_decimal(q, 3)),
                     "share": plain(as_decimal(q / fuel * 100, 4)),
                     "heating_costs": plain(money(totals_c[cat.id])),
                     "amount": plain(money(moved))})
        totals_c[cat.id] -= moved
        totals_c[cat.combined_with] += moved
        notes.append(f"{cat.id}: hot water's share {info['share']} % of the fuel "
                     f"({info['q_kwh']} of {info['fuel_kwh']} kWh) = {info['amount']} to "
                     f"{cat.combined_with}")
        out[cat.id] = out[cat.combined_with] = info
    return out


def _site_category(cat: Category, total: int, alloc: dict[str, dict[str, int]],
                   part_info, units, combined) -> dict[str, Any]:
    parts = []
    for part, by_unit in alloc.items():
        pi = part_info[(cat.id, part)]
        key = pi["key"]
        parts.append({
            "part": part, "key": key, "total": plain(money(pi["total_cents"])),
            "key_total": plain(as_decimal(pi["sum"], 3)), "unit": KEY_UNIT[key],
            **({"by_area_instead_of": pi["by_area_instead_of"]}
               if "by_area_instead_of" in pi else {}),
            "units": {u: plain(money(c)) for u, c in sorted(by_unit.items())}})
    out = {"id": cat.id, "label": cat.label, "kind": cat.kind, "group": cat.settlement_group,
           "key": cat.key, "vat": plain(cat.vat),
           "total": plain(money(sum(pi for p in alloc.values() for pi in p.values()))),
           "parts": parts}
    if cat.consumption_share is not None:
        out["consumption_share"] = plain(cat.consumption_share)
        out["base_key"] = cat.base_key
    if combined is not None:
        out["combined"] = combined
    return out


def _seg_weights(part: str, key: str, m: Measured | None, segs: list[Segment],
                 table) -> list[Fraction]:
    if part in ("consumption", "correction", "all") and m is not None and m.segments:
        w = list(m.segments)
    else:
        w = weights(segs, "days", table)
    return w if sum(w, Fraction(0)) else weights(segs, "days", table)


def _documents(model, spec, prof, units, segs, allocations, part_info, consumption,
               measured, advances, area, heated):
    accounts = {a.id: a for a in model.accounts}
    total_days = (spec.period.end - spec.period.first).days
    lines: dict[str, list[Line]] = {}
    rows: list[dict[str, Any]] = []
    for u in sorted(units):
        for cat in spec.categories:
            alloc = allocations.get(cat.id)
            if alloc is None:
                continue
            unit_total = 0
            for part, by_unit in alloc.items():
                pi = part_info[(cat.id, part)]
                key = pi["key"]
                m = measured.get(key, {}).get(u) if key in CONSUMPTION_KEYS_SET else None
                if part == "correction":
                    m = measured.get(cat.key, {}).get(u)
                c = by_unit[u]
                unit_total += c
                if c == 0:
                    continue
                w = _seg_weights(part, key, m, segs[u], prof.degree_days)
                s = sum(w, Fraction(0))
                seg_cents = round_parts(c, {str(i): c * x / s for i, x in enumerate(w)})
                unit_units = pi["weights"][u]
                price = Fraction(pi["total_cents"], 100) / pi["sum"] if pi["sum"] else 0
                for i, seg in enumerate(segs[u]):
                    sc = seg_cents[str(i)]
                    if sc == 0:
                        continue
                    qty = unit_units * w[i] / s
                    basis = (f"{money(pi['total_cents'])} x {as_decimal(unit_units, 3)} / "
                             f"{as_decimal(pi['sum'], 3)} {KEY_UNIT[key]} "
                             f"({key_label(model.site.language, key)})")
                    if len(segs[u]) > 1:
                        how = ("readings at the move" if m is not None and m.split == "readings"
                               and part != "base" else
                               "degree-day weights" if m is not None and part != "base"
                               and m.split == "degree_days" else "days")
                        basis += (f"; {seg.days} of {total_days} days, share "
                                  f"{as_decimal(w[i] / s * 100, 2)} % by {how}")
                    # the same as data, for a document in the site's language (the PDF)
                    spread: dict[str, Any] = {
                        "total": str(money(pi["total_cents"])),
                        "units": str(as_decimal(unit_units, 3)),
                        "sum": str(as_decimal(pi["sum"], 3)), "unit": KEY_UNIT[key],
                        "key": key}
                    if len(segs[u]) > 1:
                        spread.update(days=seg.days, of_days=total_days,
                                      share=str(as_decimal(w[i] / s * 100, 2)),
                                      by={"readings at the move": "readings",
                                          "degree-day weights": "degree_days"}.get(how, "days"))
                    if part == "correction":
                        basis = f"per-m² limits ({prof.heating_rule})"
                        spread = {"rule": prof.heating_rule}
                    extra: dict[str, Any] = {"category": cat.id, "part": part, "basis": basis,
                                             "spread": spread}
                    if m is not None and m.estimated:
                        extra["estimated"] = m.estimated
                    if seg.vacant:
                        extra["vacant"] = True
                    if "by_area_instead_of" in pi:
                        extra["by_area_instead_of"] = pi["by_area_instead_of"]
                    name = part_label(model.site.language, part)
                    label = cat.label + (f" {name}" if name else "")
                    lines.setdefault(seg.account, []).append(Line(
                        f"{cat.id}.{part}", label, seg.first.isoformat(), seg.end.isoformat(),
                        as_decimal(qty, 3), KEY_UNIT[key], as_decimal(Fraction(price), 6)
                        if price else Decimal(0), money(sc), cat.vat, u, None, None, extra))
            mm = measured.get(cat.key, {}).get(u) if cat.key in CONSUMPTION_KEYS_SET else None
            rows.append({"billing_point": u, "category": cat.id, "key": cat.key,
                         "consumption": plain(as_decimal(mm.total, 3))
                         if mm is not None and mm.total is not None else None,
                         "unit": KEY_UNIT[cat.key],
                         "estimated": mm.estimated if mm is not None else None,
                         "amount": plain(money(unit_total))})
    paid: dict[str, list[AdvancePaid]] = {}
    for a in advances:
        paid.setdefault(a.account, []).append(a)
    docs = {}
    for acc in sorted(set(lines) | set(paid)):
        account = accounts.get(acc)
        if account is None:
            raise RunError(f"advance of unknown account {acc!r}")
        ls = [ln.to_json() | {"n": k} for k, ln in enumerate(lines.get(acc, []), 1)]
        adv = sum((a.amount for a in paid.get(acc, [])), Decimal(0))
        t = totals(ls, adv, spec.period.cash_unit or model.site.cash_unit)
        docs[acc] = {
            "kind": "expense_statement", "site": model.site.id, "site_name": model.site.name,
            "period": f"expense:{spec.period.id}", "period_id": spec.period.id,
            "period_first": spec.period.first.isoformat(),
            "period_last": last_day(spec.period.end).isoformat(), "profile": prof.id,
            "currency": model.site.currency,
            "account": {"id": acc, "name": account.name, "address": (
                account.address.model_dump(mode="json") if account.address else None)},
            "lines": ls, **t, "sources": [],
            "advances_paid": [{"billing_point": a.billing_point, "amount": plain(a.amount)}
                              for a in paid.get(acc, [])],
            "refund": Decimal(t["total_due"]) < 0}
    return docs, rows


def _unit_summary(u, units, area, heated, segs, measured) -> dict[str, Any]:
    out: dict[str, Any] = {
        "billing_point": u, "area_m2": plain(as_decimal(area[u], 3)),
        "heated_area_m2": plain(as_decimal(heated[u], 3)), "persons": units[u].persons,
        "occupants": [{"account": s.account, "from": s.first.isoformat(),
                       "to": s.end.isoformat(), "days": s.days, "vacant": s.vacant}
                      for s in segs[u]],
        "consumption": {}}
    for key, ms in sorted(measured.items()):
        m = ms[u]
        out["consumption"][key] = {
            "total": None if m.total is None else plain(as_decimal(m.total, 3)),
            "unit": KEY_UNIT[key], "estimated": m.estimated, "split": m.split,
            "occupants": [plain(as_decimal(x, 3)) for x in m.segments], "meters": m.meters}
    return out
