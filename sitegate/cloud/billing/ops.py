"""Billing operations over one database, shared by the CLI and the HTTP API: each opens
one transaction and returns plain JSON-ready data."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sitegate.cloud.billing import ledger, manual
from sitegate.cloud.billing.billing_run import Report, bill, late, quiet
from sitegate.cloud.billing.explain import explain
from sitegate.cloud.billing.export import (
    CONSUMPTION_FIELDS,
    INVOICE_FIELDS,
    consumption_rows,
    invoice_rows,
    render,
)
from sitegate.cloud.billing.pdf import invoice_pdf
from sitegate.cloud.billing.sitemodel import SiteModel, parse_site
from sitegate.cloud.billing.sites import list_sites, load_site_model, save_site
from sitegate.cloud.store import manual as manual_store
from sitegate.cloud.store.billing import DB as Engine
from sitegate.cloud.store.readings import load_readings

ACTIONS = ("issue", "pay", "cancel", "write-off", "remind", "credit")


def import_site(engine: Engine, data: dict | SiteModel) -> dict[str, Any]:
    model = data if isinstance(data, SiteModel) else parse_site(data)
    with engine.begin() as conn:
        return save_site(conn, model)


def sites(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list_sites(conn)


def site_model(engine: Engine, site: str | None) -> SiteModel:
    with engine.connect() as conn:
        return load_site_model(conn, site)


def run_bill(engine: Engine, site: str | None, period: str, interim: bool = False,
             report: Report = quiet) -> dict[str, Any]:
    with engine.begin() as conn:
        return bill(conn, load_site_model(conn, site), period, interim, report=report)


def invoices(engine: Engine, site: str | None, period: str | None = None) -> list[dict]:
    with engine.connect() as conn:
        return ledger.list_invoices(conn, load_site_model(conn, site).site.id, period)


def invoice(engine: Engine, site: str | None, number: int) -> dict[str, Any]:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        return ledger.view(conn, ledger.get_row(conn, model.site.id, number))


def act(engine: Engine, site: str | None, number: int, action: str, day: date | None = None,
        amount: str | None = None, vat: str | None = None, label: str | None = None,
        note: str | None = None,
        lines: list[tuple[int, str | None]] | None = None) -> dict[str, Any]:
    """One lifecycle step; ``day`` is the business date (default: today). ``credit``:
    ``lines`` (line number, quantity or None for all of it), or ``amount`` net, or
    neither (the whole invoice)."""
    day = day or date.today()
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        if action == "issue":
            return ledger.issue(conn, model, number, day, datetime.now(UTC))
        if action == "pay":
            if amount is None:
                raise ledger.LifecycleError("pay needs an amount")
            return ledger.pay(conn, model, number, amount, day, note)
        if action == "cancel":
            return ledger.cancel(conn, model, number, day)
        if action == "write-off":
            return ledger.write_off(conn, model, number, day)
        if action == "remind":
            return ledger.remind(conn, model, number, day)
        if action == "credit":
            return ledger.credit(conn, model, number, day, amount, vat, label, lines)
    raise ledger.LifecycleError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")


def explain_invoice(engine: Engine, site: str | None, number: int) -> dict[str, Any]:
    return explain(invoice(engine, site, number))


def pdf(engine: Engine, site: str | None, number: int) -> bytes:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        return invoice_pdf(ledger.view(conn, ledger.get_row(conn, model.site.id, number)),
                           model)


def overview(engine: Engine, site: str | None, period: str | None) -> dict[str, Any]:
    with engine.connect() as conn:
        return ledger.overview(conn, load_site_model(conn, site).site.id, period)


def late_report(engine: Engine, site: str | None, period: str | None) -> list[dict]:
    with engine.connect() as conn:
        return late(conn, load_site_model(conn, site), period)


def export(engine: Engine, site: str | None, period: str | None, what: str, fmt: str) -> str:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        views = ledger.list_invoices(conn, model.site.id, period, documents=True)
    if what == "consumption":
        return render(consumption_rows(views), CONSUMPTION_FIELDS, fmt)
    return render(invoice_rows(views), INVOICE_FIELDS, fmt)


def import_readings(engine: Engine, site: str | None, name: str, data: bytes,
                    entered_by: str, source: str = "manual") -> dict[str, Any]:
    """Readings from outside the gateway (CSV or JSON), all or nothing: checked against
    the site model, each other, what was entered before and the register's neighbours;
    ``manual.ImportError_`` lists every problem."""
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        new = manual.parse(name, data, model, entered_by, source)
        if not new:
            return {"site": model.site.id, "file": name, "imported": 0, "skipped": 0,
                    "notes": []}
        lo, hi = min(r.ts for r in new), max(r.ts for r in new)
        gateway = load_readings(conn, model, lo, hi)
        keep, problems, notes = manual.check(new, gateway, manual_store.load(
            conn, model.site.id, lo, hi))
        if problems:
            raise manual.ImportError_(problems)
        n = manual_store.save(conn, model.site.id, keep, datetime.now(UTC))
    return {"site": model.site.id, "file": name, "imported": n, "skipped": len(new) - n,
            "notes": notes}
