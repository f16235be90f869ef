"""``bill``: compute a site's period from the store and keep the drafts; issued invoices
are never touched, a difference to them is reported (late readings)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sitegate.cloud.billing.compute import BillRun, bill_site
from sitegate.cloud.billing.document import Invoice
from sitegate.cloud.billing.lines import plain
from sitegate.cloud.billing.manual import merge as merge_manual
from sitegate.cloud.billing.periods import Period, grid_for, parse_period
from sitegate.cloud.billing.sessions import sessions_in
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.billing.sites import canonical
from sitegate.cloud.store import billing as store
from sitegate.cloud.store import manual as manual_store
from sitegate.cloud.store import ocmf as ocmf_store
from sitegate.cloud.store.billing import Conn as Connection
from sitegate.cloud.store.readings import (
    MARGIN,
    late_readings,
    load_readings,
    session_rows,
    utc,
)

# How far a run is (0..1) and what it does now; the CLI shows it on stderr.
Report = Callable[[float, str], None]


def quiet(share: float, what: str) -> None:
    pass


class BillingRefused(ValueError):
    """The window cannot be billed as asked; the message names why (and the invoice)."""


def compute(conn: Connection, model: SiteModel, period_label: str,
            report: Report = quiet) -> BillRun:
    period = parse_period(period_label)
    grid = grid_for(period, model.tz)
    issues: list = []
    report(0.0, f"loading readings of {len(model.meters)} meters")
    readings = load_readings(conn, model, grid.start, grid.end, issues)
    outside = manual_store.load(conn, model.site.id, grid.start - MARGIN, grid.end + MARGIN)
    manual = merge_manual(readings, outside, issues)
    gateways = sorted(set(model.site.gateways) | {m.gateway for m in model.meters})
    pins = ocmf_store.pinned(conn, gateways)
    new_pins: list = []
    sessions = sessions_in(session_rows(conn, gateways, grid.start, grid.end), grid.start,
                           issues, model, pins, new_pins)
    for pin in new_pins:  # trust on first use: the key of a charger's first signed session
        ocmf_store.pin(conn, pin.gateway, pin.charge_point, pin.key_hex, pin.fingerprint,
                       pin.session_id)
    report(0.4, f"computing {len(model.billing_points)} billing points")
    run = bill_site(model, period, readings, sessions, manual)
    run.summary["issues"][:0] = [{"kind": i.kind, "meter": i.meter, "at": str(i.ts),
                                  "detail": i.detail} for i in issues]
    return run


def site_today(model: SiteModel) -> date:
    return datetime.now(model.tz).date()


def check_ended(period: Period, interim: bool, today: date) -> None:
    """A period is billed once it has ended (its last day is past, site time), unless an
    interim bill is asked for."""
    if period.end > today and not interim:
        raise BillingRefused(
            f"period {period.label} has not ended (its last day is {period.last}): bill it "
            "after that, or ask for an interim bill (--interim)")


def check_overlap(conn: Connection, site: str, period: Period) -> None:
    """A billing point's service period is invoiced once: refuse a window that overlaps an
    invoice of another period that is not cancelled or fully credited (re-billing the same
    period rewrites its drafts, below). One query: each invoice with its credit notes."""
    clashes = []
    for number, label, state, account, due, credited in store.open_invoices(conn, site):
        if label == period.label:
            continue
        try:
            other = parse_period(label)
        except ValueError:
            continue  # not a period this parser made; nothing to compare with
        if other.overlaps(period) and not (credited and Decimal(due) + credited <= 0):
            clashes.append(f"invoice {number} ({label}, {account}, {state})")
    if clashes:
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        raise BillingRefused(
            f"period {period.label} overlaps {', '.join(clashes[:3])}{more}: a service "
            "period is invoiced once; cancel or credit it first")


def bill(conn: Connection, model: SiteModel, period_label: str, interim: bool = False,
         today: date | None = None, report: Report = quiet) -> dict[str, Any]:
    """Draft invoices for every account with something to bill. Re-billing rewrites drafts
    in place (same numbers), so numbers stay gap-free and results repeat byte for byte.
    Refused for a period that has not ended (unless ``interim``: the drafts say so) and
    for a window overlapping another period's invoice."""
    period = parse_period(period_label)
    period_label = period.label
    check_ended(period, interim, today or site_today(model))
    check_overlap(conn, model.site.id, period)
    run = compute(conn, model, period_label, report)
    invoices = {acc: replace(inv, interim=True) if interim else inv
                for acc, inv in run.invoices.items()}
    site = model.site.id
    every = hashlib.sha256(canonical(run.digests).encode()).hexdigest()[:16]

    def inputs(inv: Invoice) -> str:
        """What an invoice was billed from: the digest of all the site's readings (in a
        community everyone's readings move each share) and those of its own meters; not
        every meter's digest on every invoice (10,000 of them on each of 10,000)."""
        own = sorted({m["meter"] for src in inv.sources for m in src["meters"]})
        return canonical({"all": every, "meters": {m: run.digests[m] for m in own
                                                   if m in run.digests}})

    existing: dict[str, dict] = {}
    for row in store.period_invoices(conn, site, period_label):
        if row["state"] != "cancelled":
            existing[row["account_id"]] = row
    created, updated, unchanged, differs = [], [], [], []
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    num = store.next_number(conn, site) - 1  # the drafts take the next numbers in order
    for k, (acc, inv) in enumerate(invoices.items()):
        report(0.7 + 0.3 * k / max(1, len(invoices)), f"drafts {k}/{len(invoices)}")
        text, due = canonical(inv.to_json()), plain(inv.total_due)  # JSON here, stored
        row = existing.get(acc)
        if row is None:
            num += 1
            inserts.append({"site_id": site, "number": num, "kind": "invoice",
                            "account_id": acc, "period": period_label, "state": "draft",
                            "reminder_level": 0, "total_due": due, "document": text,
                            "inputs": inputs(inv)})
            created.append(num)
        elif row["document"] == text:
            unchanged.append(row["number"])
        elif row["state"] == "draft":
            updates.append({"id": row["id"], "document": text, "total_due": due,
                            "inputs": inputs(inv)})
            updated.append(row["number"])
        else:
            differs.append({"number": row["number"], "state": row["state"], "account": acc,
                            "issued_total": row["total_due"], "now": due})
    store.insert_invoices(conn, inserts)
    store.update_invoices(conn, updates)
    stale = [row["number"] for acc, row in existing.items()
             if acc not in invoices and row["state"] == "draft"]
    report(1.0, f"{len(invoices)} documents")
    return {"site": site, "period": period_label, "interim": interim, "created": created,
            "updated": updated,
            "unchanged": unchanged, "issued_differs": differs, "drafts_without_lines": stale,
            "summary": run.summary}


def late(conn: Connection, model: SiteModel, period_label: str | None = None) -> list[dict]:
    """Readings that arrived after an invoice of their period was issued."""
    label = None if period_label is None else parse_period(period_label).label
    first_issue: dict[str, datetime] = {}
    used: dict[str, set[str]] = {}
    for row in store.issued_invoices(conn, model.site.id, label):
        try:
            parse_period(row["period"])
        except ValueError:
            continue  # not a billing period (an expense statement): no register readings
        at = utc(row["issued_at"])
        p = row["period"]
        first_issue[p] = min(first_issue.get(p, at), at)
        doc = json.loads(row["document"])
        meters = {m["meter"] for s in doc["sources"] for m in s["meters"]}
        for m in meters:
            used.setdefault(f"{p}|{m}", set()).add(str(row["number"]))
    out = []
    for p in sorted(first_issue):
        grid = grid_for(parse_period(p), model.tz)
        for meter, info in sorted(late_readings(conn, model, grid.start, grid.end,
                                                first_issue[p]).items()):
            out.append({"period": p, "meter": meter, **info,
                        "invoices": sorted(used.get(f"{p}|{meter}", set()), key=int),
                        "community": meter in _community_meters(model)})
    return out


def _community_meters(model: SiteModel) -> set[str]:
    """Meters whose readings move everyone's solar share (any consumer, the grid meter)."""
    ms = {a.meter for a in model.meter_assignments}
    if model.site.grid_meter:
        ms.add(model.site.grid_meter)
    return ms if model.site.grid_meter else set()
