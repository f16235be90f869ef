"""Expense statement operations over one database, shared by the CLI and the HTTP API:
each opens one transaction and returns plain JSON-ready data. A run that fails stores
nothing (its transaction is rolled back)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sitegate.cloud.billing import ledger
from sitegate.cloud.billing.consumption import Issue
from sitegate.cloud.billing.manual import merge as merge_manual
from sitegate.cloud.billing.periods import local_midnight
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.billing.sites import NotFound, canonical, load_site_model
from sitegate.cloud.billing.units import units_to_kwh
from sitegate.cloud.expense.consumption import RunError
from sitegate.cloud.expense.explain import explain
from sitegate.cloud.expense.export import CONSUMPTION_FIELDS, render
from sitegate.cloud.expense.pdf import overall_pdf, statement_pdf
from sitegate.cloud.expense.received import Hierarchy, alerts, parse_hierarchy
from sitegate.cloud.expense.reconcile import reconcile
from sitegate.cloud.expense.registers import Readings, value_at
from sitegate.cloud.expense.spec import (
    PeriodSpec,
    Unit,
    load_spec_text,
    parse_spec,
    spec_to_json,
)
from sitegate.cloud.expense.statement import AdvancePaid, Cost, run
from sitegate.cloud.expense.tree import Node, distribute, provisional
from sitegate.cloud.store import billing as billing_store
from sitegate.cloud.store import expense as store
from sitegate.cloud.store import manual as manual_store
from sitegate.cloud.store.billing import DB as Engine
from sitegate.cloud.store.readings import load_readings

MAX_AMOUNT = Decimal(10) ** 9  # a cost of a billion is a typing error
MAX_TEXT = 200


def label(pid: str) -> str:
    """The billing core's period label of a period's statements (never a billing period:
    the electricity bills' overlap check and late-readings report leave it alone)."""
    return f"expense:{pid}"


def _spec(conn: Any, model: SiteModel, pid: str) -> PeriodSpec:
    row = store.period(conn, model.site.id, pid)
    if row is None:
        raise NotFound(f"no accounting period {pid!r} at site {model.site.id!r}: create it "
                       "with 'sitegate-cloud expense period create FILE'")
    return parse_spec(json.loads(row["spec"]), model)


def _text(value: str | None, what: str) -> str:
    v = (value or "").strip()
    if len(v) > MAX_TEXT:
        raise ValueError(f"{what} is longer than {MAX_TEXT} characters")
    return v


def _decimal(text: str, what: str, places: int | None = None) -> Decimal:
    try:
        d = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"{what}: not a number: {text!r}") from None
    if not d.is_finite() or abs(d) >= MAX_AMOUNT:
        raise ValueError(f"{what}: {text!r} is out of range")
    if places is not None and d != d.quantize(Decimal(1).scaleb(-places)):
        raise ValueError(f"{what}: {text} has more than {places} decimals")
    return d


# -- periods, costs, advances ---------------------------------------------------------------


def create_period(engine: Engine, site: str | None, name: str, text: str) -> dict[str, Any]:
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        spec = load_spec_text(name, text, model)
        replaced = store.put_period(conn, model.site.id, spec.period.id,
                                    canonical(spec_to_json(spec)), datetime.now(UTC))
    return {"site": model.site.id, "period": spec.period.id, "replaced": replaced,
            "from": spec.period.first.isoformat(), "to": spec.period.end.isoformat(),
            "profile": spec.period.profile, "categories": [c.id for c in spec.categories]}


def list_periods(engine: Engine, site: str | None) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        out = []
        for row in store.periods(conn, model.site.id):
            spec = json.loads(row["spec"])
            out.append({"period": row["period_id"], "from": spec["period"]["from"],
                        "to": spec["period"]["to"], "profile": spec["period"]["profile"],
                        "run": store.last_run(conn, model.site.id, row["period_id"])
                        is not None})
    return out


def show_period(engine: Engine, site: str | None, pid: str) -> dict[str, Any]:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        spec = _spec(conn, model, pid)
        costs = store.costs(conn, model.site.id, pid)
        adv = store.advances(conn, model.site.id, pid)
        last = store.last_run(conn, model.site.id, pid)
    per_cat: dict[str, Decimal] = {c.id: Decimal("0.00") for c in spec.categories}
    for c in costs:
        per_cat[c["category"]] += Decimal(c["amount"])
    return {"site": model.site.id, "period": pid, "spec": spec_to_json(spec),
            "costs": [{k: c[k] for k in ("id", "category", "amount", "quantity", "unit",
                                         "invoice_date", "supplier", "note", "entered_by")}
                      for c in costs],
            "category_totals": {k: str(v) for k, v in per_cat.items()},
            "advances": [{k: a[k] for k in ("account", "billing_point", "amount")} for a in adv],
            "last_run": last["run_at"].isoformat() if last else None}


def add_cost(engine: Engine, site: str | None, pid: str, category: str, amount: str,
             entered_by: str, quantity: str | None = None, unit: str | None = None,
             day: date | None = None, supplier: str | None = None,
             note: str | None = None) -> dict[str, Any]:
    """One invoice of a category (amount in whole cents; a fuel's quantity and unit)."""
    by = _text(entered_by, "who entered it")
    if not by:
        raise ValueError("who entered the invoice must be named (--by)")
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        spec = _spec(conn, model, pid)
        if category not in {c.id for c in spec.categories}:
            raise ValueError(f"period {pid} has no category {category!r} (categories: "
                             f"{', '.join(c.id for c in spec.categories)})")
        amt = _decimal(amount, "amount", 2)
        qty = None if quantity is None else _decimal(quantity, "quantity")
        if qty is not None and qty < 0:
            raise ValueError("quantity: must not be negative")
        if (qty is None) != (unit is None):
            raise ValueError("a fuel quantity needs its unit (--unit l, kWh, m³, kg) and "
                             "the other way round")
        if unit is not None and len(unit) > 16:
            raise ValueError("unit: at most 16 characters")
        cid = store.add_cost(conn, site_id=model.site.id, period_id=pid, category=category,
                             amount=format(amt, "f"),
                             quantity=None if qty is None else format(qty, "f"), unit=unit,
                             invoice_date=None if day is None else day.isoformat(),
                             supplier=_text(supplier, "supplier"), note=_text(note, "note"),
                             entered_by=by, entered_at=datetime.now(UTC))
    return {"site": model.site.id, "period": pid, "id": cid, "category": category,
            "amount": format(amt, "f")}


def set_advance(engine: Engine, site: str | None, pid: str, account: str,
                billing_point: str, amount: str) -> dict[str, Any]:
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        _spec(conn, model, pid)
        if account not in {a.id for a in model.accounts}:
            raise ValueError(f"unknown account {account!r}")
        if billing_point not in {b.id for b in model.billing_points}:
            raise ValueError(f"unknown billing point {billing_point!r}")
        amt = _decimal(amount, "amount", 2)
        store.set_advance(conn, model.site.id, pid, account, billing_point, format(amt, "f"),
                          datetime.now(UTC))
        rows = store.advances(conn, model.site.id, pid)
    return {"site": model.site.id, "period": pid,
            "advances": [{k: a[k] for k in ("account", "billing_point", "amount")}
                         for a in rows]}


# -- the run -------------------------------------------------------------------------------


def period_readings(conn: Any, model: SiteModel, spec: PeriodSpec,
                    issues: list[Issue]) -> dict[str, Readings]:
    """The heat and water meters' registers around the period, as the billing core reads
    them (the gateway's readings, then those entered by hand; a gateway reading wins at
    the same instant), in kWh / m³."""
    meters = [m for m in model.meters if m.medium in ("heat", "water")]
    if not meters:
        return {}
    sub = model.model_copy(update={"meters": meters})
    start = local_midnight(spec.period.first, model.tz)
    end = local_midnight(spec.period.end, model.tz)
    regs = load_readings(conn, sub, start, end, issues)
    merge_manual(regs, manual_store.load(conn, model.site.id, start - 40 * 86400,
                                         end + 40 * 86400), issues)
    out: dict[str, Readings] = {}
    for m in meters:
        reg = regs.get(m.id, {}).get(m.import_quantity)
        if reg is not None:
            out[m.id] = [(t, units_to_kwh(v)) for t, v in reg]
    return out


def run_statements(engine: Engine, site: str | None, pid: str,
                   today: date | None = None) -> dict[str, Any]:
    """Compute the period's statements and keep them as draft invoices (period
    ``expense:<id>``); a re-run rewrites drafts in place, never an issued statement
    (a difference to one is reported). All or nothing."""
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        spec = _spec(conn, model, pid)
        today = today or datetime.now(model.tz).date()
        if spec.period.end > today:
            raise RunError(f"period {pid} has not ended (its last day is "
                           f"{spec.period.end.isoformat()} exclusive): run it after that")
        sid = model.site.id
        costs = [Cost(c["category"], Decimal(c["amount"]),
                      None if c["quantity"] is None else Decimal(c["quantity"]), c["unit"],
                      None if c["invoice_date"] is None else date.fromisoformat(
                          c["invoice_date"]), c["supplier"], c["note"])
                 for c in store.costs(conn, sid, pid)]
        advances = [AdvancePaid(a["account"], a["billing_point"], Decimal(a["amount"]))
                    for a in store.advances(conn, sid, pid)]
        issues: list[Issue] = []
        readings = period_readings(conn, model, spec, issues)
        spec = _with_previous(conn, model, spec)
        res = run(model, spec, costs, advances, readings)
        res.site["issues"] = [{"kind": i.kind, "meter": i.meter, "detail": i.detail}
                              for i in issues]
        existing = {r["account_id"]: r for r in billing_store.period_invoices(
            conn, sid, label(pid)) if r["state"] != "cancelled"}
        created, updated, unchanged, differs = [], [], [], []
        numbers = {}
        for acc, doc in res.documents.items():
            doc["categories"] = [_public(c) for c in res.site["categories"]]
            doc["notes"] = res.site["notes"]
            text = canonical(doc)
            row = existing.get(acc)
            if row is None:
                num = billing_store.next_number(conn, sid)
                billing_store.insert_invoice(
                    conn, site_id=sid, number=num, kind="invoice", account_id=acc,
                    period=label(pid), state="draft", reminder_level=0,
                    total_due=doc["total_due"], document=text, inputs="{}")
                created.append(num)
                numbers[acc] = num
            else:
                numbers[acc] = row["number"]
                if row["document"] == text:
                    unchanged.append(row["number"])
                elif row["state"] == "draft":
                    billing_store.update_invoice(conn, row["id"], document=text,
                                                 total_due=doc["total_due"])
                    updated.append(row["number"])
                else:
                    differs.append({"number": row["number"], "state": row["state"],
                                    "account": acc, "issued_total": row["total_due"],
                                    "now": doc["total_due"]})
        res.site["statements"] = numbers
        store.put_run(conn, sid, pid, canonical(res.site), canonical(res.consumption),
                      datetime.now(UTC))
    return {"site": sid, "period": pid, "created": created, "updated": updated,
            "unchanged": unchanged, "issued_differs": differs,
            "drafts_without_lines": [r["number"] for a, r in existing.items()
                                     if a not in res.documents and r["state"] == "draft"],
            "statements": numbers, "total_costs": res.site["total_costs"],
            "notes": res.site["notes"], "issues": res.site["issues"]}


def _with_previous(conn: Any, model: SiteModel, spec: PeriodSpec) -> PeriodSpec:
    """The units' measured consumption of the period just before (its last run, scaled to
    this period's days): what a failed meter is estimated from before comparable units.
    Values the period file gives win."""
    sid, first = model.site.id, spec.period.first
    found: dict[str, dict[str, Decimal]] = {}
    for row in store.periods(conn, sid):
        head = json.loads(row["spec"])["period"]
        last = store.last_run(conn, sid, row["period_id"])
        if head["to"] != first.isoformat() or last is None:
            continue
        days = (spec.period.end - first).days
        before = (first - date.fromisoformat(head["from"])).days
        for u in json.loads(last["document"])["units"]:
            for key, c in u["consumption"].items():
                if c["total"] is not None and not c["estimated"]:
                    found.setdefault(u["billing_point"], {})[key] = (
                        Decimal(c["total"]) * days / before).quantize(Decimal("0.001"))
    if not found:
        return spec
    units = spec.units or [Unit(billing_point=b.id) for b in model.billing_points
                           if b.kind == "unit"]
    return spec.model_copy(update={"units": [
        u.model_copy(update={"previous": {**found.get(u.billing_point, {}), **u.previous}})
        for u in units]})


def _public(cat: dict[str, Any]) -> dict[str, Any]:
    """A category as every tenant may see it: totals and keys, no other unit's share."""
    out = {k: v for k, v in cat.items() if k != "parts"}
    out["parts"] = [{k: v for k, v in p.items() if k != "units"} for p in cat["parts"]]
    return out


# -- documents -----------------------------------------------------------------------------


def _last_run(engine: Engine, site: str | None, pid: str) -> Any:
    """The period's last run (its overall statement and consumption export)."""
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        _spec(conn, model, pid)
        row = store.last_run(conn, model.site.id, pid)
    if row is None:
        raise NotFound(f"period {pid} has not been run: 'sitegate-cloud expense run {pid}'")
    return row


def site_statement(engine: Engine, site: str | None, pid: str) -> dict[str, Any]:
    return json.loads(_last_run(engine, site, pid)["document"])


def statement(engine: Engine, site: str | None, pid: str, account: str) -> dict[str, Any]:
    """One account's statement: the billing core's invoice view (state, balance, events)."""
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        rows = [r for r in billing_store.period_invoices(conn, model.site.id, label(pid))
                if r["account_id"] == account and r["state"] != "cancelled"]
        if not rows:
            raise NotFound(f"no statement of {account!r} for period {pid}")
        return ledger.view(conn, rows[-1])


def statements(engine: Engine, site: str | None, pid: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        _spec(conn, model, pid)
        rows = [ledger.view(conn, r) for r in billing_store.period_invoices(
            conn, model.site.id, label(pid))]
    for v in rows:
        del v["document"], v["events"]
    return rows


def export(engine: Engine, site: str | None, pid: str, fmt: str) -> str:
    return render(json.loads(_last_run(engine, site, pid)["consumption"]), CONSUMPTION_FIELDS,
                  fmt)


def explain_statement(engine: Engine, site: str | None, pid: str,
                      account: str) -> dict[str, Any]:
    return explain(statement(engine, site, pid, account))


def pdf(engine: Engine, site: str | None, pid: str, account: str) -> bytes:
    view = statement(engine, site, pid, account)
    with engine.connect() as conn:
        model = load_site_model(conn, site)
    return statement_pdf(view, model)


# -- received invoices and the hierarchy ---------------------------------------------------


def _hierarchy(conn: Any, model: SiteModel) -> Hierarchy:
    text = store.hierarchy(conn, model.site.id)
    if text is None:
        raise NotFound(f"site {model.site.id!r} has no hierarchy: set it with "
                       "'sitegate-cloud expense hierarchy set FILE'")
    return parse_hierarchy(json.loads(text), model)


def set_hierarchy(engine: Engine, site: str | None, name: str, text: str) -> dict[str, Any]:
    import tomllib

    try:
        data = json.loads(text) if name.lower().endswith(".json") else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ValueError(f"{name}: {exc}") from None
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        h = parse_hierarchy(data, model)
        store.put_hierarchy(conn, model.site.id, canonical(h.model_dump(mode="json")),
                            datetime.now(UTC))
    return {"site": model.site.id, "nodes": len(h.nodes)}


def add_received(engine: Engine, site: str | None, meter: str, first: date, end: date,
                 amount: str, consumption: str, entered_by: str,
                 note: str | None = None) -> dict[str, Any]:
    by = _text(entered_by, "who entered it")
    if not by:
        raise ValueError("who entered the invoice must be named")
    if end <= first:
        raise ValueError(f"the invoice's period ends ({end}) before it starts ({first})")
    if (end - first).days > 3 * 366:
        raise ValueError("an invoice's period is at most three years")
    amt = _decimal(amount, "amount", 2)
    cons = _decimal(consumption, "consumption")
    if cons < 0:
        raise ValueError("consumption: must not be negative")
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        if meter not in {m.id for m in model.meters}:
            raise NotFound(f"no meter {meter!r} at site {model.site.id!r}")
        rid = store.add_received(conn, site_id=model.site.id, meter=meter,
                                 first=first.isoformat(), end=end.isoformat(),
                                 amount=format(amt, "f"), consumption=format(cons, "f"),
                                 note=_text(note, "note"), entered_by=by,
                                 entered_at=datetime.now(UTC))
    return {"site": model.site.id, "id": rid, "meter": meter, "amount": format(amt, "f")}


def _received_view(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("id", "meter", "first", "end", "amount", "consumption", "note",
                              "entered_by")}


def list_received(engine: Engine, site: str | None, meter: str | None = None) -> dict:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        rows = store.received(conn, model.site.id, meter)
        text = store.hierarchy(conn, model.site.id)
        h = parse_hierarchy(json.loads(text), model) if text else None
    threshold: dict[str, Decimal] = {}
    tariff: dict[str, Decimal] = {}
    if h is not None:
        media = {m.id: m.medium for m in model.meters}
        for r in rows:
            node = h.node_of_meter(r["meter"], media[r["meter"]], model,
                                   date.fromisoformat(r["first"]))
            if node is not None and node.alert_percent is not None:
                threshold[r["meter"]] = node.alert_percent
            if node is not None and node.price is not None:
                tariff[r["meter"]] = node.price
    return {"site": model.site.id, "invoices": [_received_view(r) for r in rows],
            "alerts": alerts(rows, threshold, tariff)}


def distribution(engine: Engine, site: str | None, rid: int,
                 today: date | None = None) -> dict[str, Any]:
    """A received invoice down the hierarchy, by each node's metered consumption over the
    invoice's period; only once that period has ended."""
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        row = store.received_one(conn, model.site.id, rid)
        if row is None:
            raise NotFound(f"no received invoice {rid} at site {model.site.id!r}")
        h = _hierarchy(conn, model)
        first, end = date.fromisoformat(row["first"]), date.fromisoformat(row["end"])
        today = today or datetime.now(model.tz).date()
        view = _received_view(row)
        energy = next(m.medium for m in model.meters if m.id == row["meter"])
        root = h.node_of_meter(row["meter"], energy, model, first)
        if root is None:
            raise ValueError(f"meter {row['meter']} is no node's {energy} meter in the "
                             "hierarchy")
        ended = end <= today
        if not ended and (root.price is None or today <= first):
            return {**view, "distributed": False,
                    "reason": f"its period ends on {end} (exclusive): received invoices are "
                              "distributed once their period has ended; "
                              + ("no tariff price on its node, so nothing is charged for "
                                 "it yet" if root.price is None else "nothing used yet")}
        if not ended:
            end = today  # provisional: the consumption so far at the tariff price
        meters = {n.id: h.meter_of(n, energy, model, first) for n in h.nodes}
        sub = model.model_copy(update={"meters": [m for m in model.meters
                                                  if m.id in set(meters.values())]})
        issues: list[Issue] = []
        start_ts, end_ts = local_midnight(first, model.tz), local_midnight(end, model.tz)
        regs = load_readings(conn, sub, start_ts, end_ts, issues)
        merge_manual(regs, manual_store.load(conn, model.site.id, start_ts - 40 * 86400,
                                             end_ts + 40 * 86400), issues)
    tol = model.site.handover_tolerance_minutes * 60
    byid = {m.id: m for m in model.meters}
    nodes: dict[str, Node] = {}
    for n in h.nodes:
        mid = meters[n.id]
        cons = None
        if mid is not None:
            reg = regs.get(mid, {}).get(byid[mid].import_quantity)
            rows = [(t, units_to_kwh(v)) for t, v in reg] if reg is not None else []
            a, b = value_at(rows, start_ts, tol), value_at(rows, end_ts, tol)
            if a is not None and b is not None:
                cons = b.value - a.value
        nodes[n.id] = Node(n.id, n.parent, cons)
    if not ended:
        return {**view, "distributed": False, "provisional": True, "price": str(root.price),
                "until": end.isoformat(), "energy": energy,
                "reason": f"its period has not ended: the cost so far comes from the tariff "
                          f"price {root.price} of {root.id}",
                "tree": provisional(nodes, root.id, root.price).to_json()}
    share = distribute(nodes, root.id, Decimal(row["amount"]), Decimal(row["consumption"]))
    return {**view, "distributed": True, "energy": energy, "tree": share.to_json()}


def reconcile_charge(engine: Engine, site: str | None, kind: str, amount: str, first: date,
                     end: date, targets: list[str] | None = None) -> dict[str, Any]:
    """A service charge over the site's units (or the named billing points) by type."""
    amt = _decimal(amount, "amount", 2)
    if end <= first:
        raise ValueError(f"the period ends ({end}) before it starts ({first})")
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        known = {b.id for b in model.billing_points}
        chosen = targets or sorted(b.id for b in model.billing_points if b.kind == "unit")
        if unknown := [t for t in chosen if t not in known]:
            raise NotFound(f"unknown billing point {unknown[0]!r}")
        readings: dict[str, Readings] = {}
        if kind == "water":
            head = {"period": {"id": "reconcile", "from": first, "to": end, "profile": "free"},
                    "categories": []}
            issues: list[Issue] = []
            readings = period_readings(conn, model, parse_spec(head), issues)
    return {"site": model.site.id, **reconcile(model, kind, amt, chosen, first, end, readings)}


def site_pdf(engine: Engine, site: str | None, pid: str) -> bytes:
    """The owner's overall statement as PDF."""
    doc = site_statement(engine, site, pid)
    with engine.connect() as conn:
        model = load_site_model(conn, site)
    return overall_pdf(doc, model)
