"""Invoice lifecycle: draft -> issued -> settled, or cancelled / written off; payments,
reminders 1-3 with fees, credit notes. Issued documents are never edited: every change
after issue is an event (payment, reminder, credit note) next to the document."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sitegate.cloud import i18n
from sitegate.cloud.billing.document import Invoice, Totals
from sitegate.cloud.billing.invoice import line_amount, totals
from sitegate.cloud.billing.lines import Days, Line
from sitegate.cloud.billing.periods import parse_period
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.billing.sites import NotFound, canonical
from sitegate.cloud.billing.units import CENT, round_money
from sitegate.cloud.store import billing as store
from sitegate.cloud.store.billing import Conn as Connection


class LifecycleError(ValueError):
    """The operation does not fit the invoice's state; the message says why."""


def money(text: str) -> Decimal:
    try:
        d = Decimal(text)
        cents = d.quantize(Decimal("0.01"))  # InvalidOperation: infinite or too many digits
    except InvalidOperation:
        raise LifecycleError(f"not an amount: {text!r}") from None
    if not d.is_finite():
        raise LifecycleError(f"not an amount: {text!r}")
    if d != cents:
        raise LifecycleError(f"amount {text} has more than 2 decimals")
    return d


def _vat_rate(text: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        d = Decimal("NaN")
    if not d.is_finite() or d < 0:
        raise LifecycleError(f"not a VAT rate: {text!r} (a percentage such as 8.1)")
    return d


next_number = store.next_number


def get_row(conn: Connection, site_id: str, number: int) -> dict[str, Any]:
    row = store.invoice_row(conn, site_id, number)
    if row is None:
        raise NotFound(f"no invoice {number} at site {site_id!r}")
    return row


events = store.invoice_events


def _event(conn: Connection, invoice_id: int, day: date, kind: str,
           amount: Decimal | None = None, note: str | None = None) -> None:
    store.add_event(conn, invoice_id, day.isoformat(), kind,
                    None if amount is None else str(amount), note)


def _added_paid(evs: Iterable[dict[str, Any]]) -> tuple[Decimal, Decimal]:
    """What events add to an invoice (reminder fees, credit notes: negative) and what was
    paid on it."""
    added = paid = Decimal(0)
    for e in evs:
        if e["kind"] in ("reminder", "credit"):
            added += Decimal(e["amount"])
        elif e["kind"] == "payment":
            paid += Decimal(e["amount"])
    return added, paid


def balance(row: dict[str, Any], evs: list[dict[str, Any]]) -> Decimal:
    """Still to pay: amount due + reminder fees - payments + credit notes (negative).
    Cancelled and written-off invoices owe nothing."""
    if row["state"] in ("cancelled", "written_off") or row["kind"] == "credit_note":
        return Decimal("0.00")
    added, paid = _added_paid(evs)
    return Decimal(row["total_due"]) + added - paid


def view(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    return view_of(row, events(conn, row["id"]))


def view_of(row: dict[str, Any], evs: list[dict[str, Any]]) -> dict[str, Any]:
    """An invoice row with its events as the JSON-ready view (no query of its own)."""
    doc = json.loads(row["document"])
    return {
        "number": row["number"], "site": row["site_id"], "kind": row["kind"],
        "account": row["account_id"], "account_name": doc["account"]["name"],
        "period": row["period"], "state": row["state"], "reminder_level": row["reminder_level"],
        "issue_date": row["issue_date"], "due_date": row["due_date"],
        "total_due": row["total_due"], "balance": str(balance(row, evs)),
        "borne_by": row["borne_by"], "events": evs, "document": doc,
    }


def _settle_if_paid(conn: Connection, row: dict[str, Any]) -> None:
    if row["state"] == "issued" and balance(row, events(conn, row["id"])) <= 0:
        store.update_invoice(conn, row["id"], state="settled")


def issue(conn: Connection, model: SiteModel, number: int, day: date, now: Any) -> dict:
    row = get_row(conn, model.site.id, number)
    if row["state"] != "draft":
        raise LifecycleError(f"invoice {number} is {row['state']}: only drafts are issued")
    due = day + timedelta(days=model.site.payment_days)
    store.update_invoice(conn, row["id"], state="issued", issue_date=day.isoformat(),
                         due_date=due.isoformat(), issued_at=now)
    _event(conn, row["id"], day, "issue")
    row = get_row(conn, model.site.id, number)
    _settle_if_paid(conn, row)  # a zero or negative invoice is settled on issue
    return view(conn, get_row(conn, model.site.id, number))


def pay(conn: Connection, model: SiteModel, number: int, amount: str, day: date,
        note: str | None = None) -> dict:
    row = get_row(conn, model.site.id, number)
    if row["state"] not in ("issued", "settled") or row["kind"] != "invoice":
        raise LifecycleError(f"invoice {number} is {row['state']}: payments go to issued "
                             "invoices")
    amt = money(amount)
    if amt <= 0:
        raise LifecycleError("a payment is a positive amount")
    _event(conn, row["id"], day, "payment", amt, note)
    _settle_if_paid(conn, row)
    return view(conn, get_row(conn, model.site.id, number))


def remind(conn: Connection, model: SiteModel, number: int, day: date) -> dict:
    """Next reminder level (1-3) with its fee and a new due date; only when overdue."""
    row = get_row(conn, model.site.id, number)
    if row["state"] != "issued":
        raise LifecycleError(f"invoice {number} is {row['state']}: only open invoices are "
                             "reminded")
    if row["reminder_level"] >= 3:
        raise LifecycleError(f"invoice {number} already had reminder 3")
    if day <= date.fromisoformat(row["due_date"]):
        raise LifecycleError(f"invoice {number} is due on {row['due_date']}: not overdue "
                             f"on {day}")
    level = row["reminder_level"] + 1
    fees = model.site.reminders.fees
    fee = fees[min(level, len(fees)) - 1].quantize(Decimal("0.01"))
    due = day + timedelta(days=model.site.reminders.days)
    store.update_invoice(conn, row["id"], reminder_level=level, due_date=due.isoformat())
    _event(conn, row["id"], day, "reminder", fee, f"R{level}")
    return view(conn, get_row(conn, model.site.id, number))


def cancel(conn: Connection, model: SiteModel, number: int, day: date) -> dict:
    """Drafts and issued invoices; the billing costs are the operator's."""
    row = get_row(conn, model.site.id, number)
    if row["state"] not in ("draft", "issued") or row["kind"] != "invoice":
        raise LifecycleError(f"invoice {number} is {row['state']}: cannot cancel")
    store.update_invoice(conn, row["id"], state="cancelled", borne_by="operator")
    _event(conn, row["id"], day, "cancel")
    return view(conn, get_row(conn, model.site.id, number))


def write_off(conn: Connection, model: SiteModel, number: int, day: date) -> dict:
    """An uncollectable issued invoice; the open balance is borne by the owner."""
    row = get_row(conn, model.site.id, number)
    if row["state"] != "issued":
        raise LifecycleError(f"invoice {number} is {row['state']}: only issued invoices are "
                             "written off")
    open_amount = balance(row, events(conn, row["id"]))
    store.update_invoice(conn, row["id"], state="written_off", borne_by="owner")
    _event(conn, row["id"], day, "write_off", open_amount)
    return view(conn, get_row(conn, model.site.id, number))


def parse_line_spec(text: str) -> tuple[int, str | None]:
    """``3`` (line 3, whatever is left of it) or ``3:45.6`` (45.6 of line 3's unit)."""
    num, _, qty = text.partition(":")
    try:
        n = int(num)
    except ValueError:
        raise LifecycleError(f"not a line: {text!r} (expected N or N:QUANTITY)") from None
    return n, (qty or None)


def _credit_notes(conn: Connection, invoice_id: int) -> list[dict[str, Any]]:
    """The documents of the credit notes already issued against the invoice."""
    return [json.loads(text) for text in store.credit_note_documents(conn, invoice_id)]


def _credited(notes: list[dict[str, Any]]) -> dict[int, list[Line]]:
    """Lines of the invoice already credited by earlier credit notes, by line number."""
    out: dict[int, list[Line]] = {}
    for note in notes:
        for ln in note["lines"]:
            if ln.get("credits_line") is not None:
                out.setdefault(ln["credits_line"], []).append(Line.of(ln))
    return out


def _net_by_rate(lines: Any) -> dict[Decimal, Decimal]:
    out: dict[Decimal, Decimal] = {}
    for ln in lines:
        rate = Decimal(ln["vat_rate"])
        out[rate] = out.get(rate, Decimal("0.00")) + Decimal(ln["amount"])
    return out


def _note_totals(doc: dict[str, Any], notes: list[dict[str, Any]],
                 new_lines: list[dict[str, Any]], cash_unit: Decimal) -> dict[str, Any]:
    """A credit note's totals. Per VAT rate, the invoice's net is never credited beyond
    what was billed, counting earlier notes of either kind (lines or net amounts). Each
    note rounds its VAT and its total on its own, so the note that credits the rest of the
    invoice takes the rest of the invoice's VAT per rate and of its cash-rounded gross:
    the credit notes then add up to the invoice to the cent, with no 0.05 left open."""
    billed = _net_by_rate(doc["lines"])
    before = _net_by_rate(ln for note in notes for ln in note["lines"])
    this = _net_by_rate(new_lines)
    for rate, amount in sorted(this.items()):
        got = billed.get(rate, Decimal("0.00"))
        left = got + before.get(rate, Decimal(0))
        if -amount > left:
            raise LifecycleError(
                f"a credit of {-amount} net at {rate} % VAT is more than the {left} left to "
                f"credit at {rate} % VAT ({got} billed at {rate} % VAT)")
    t = totals(new_lines, Decimal(0), cash_unit)
    rest = {r: billed[r] + before.get(r, Decimal(0)) + this.get(r, Decimal(0)) for r in billed}
    if any(rest.values()):
        return t
    billed_totals = Totals.of(doc)
    vat_billed = {v.rate: v.vat for v in billed_totals.vat}
    vat_before: dict[Decimal, Decimal] = {}
    for note in notes:
        for v in Totals.of(note).vat:
            vat_before[v.rate] = vat_before.get(v.rate, Decimal(0)) + v.vat
    rows = []
    for rate in sorted(billed):
        net = this.get(rate, Decimal(0)).quantize(CENT)
        vat = (-vat_billed.get(rate, Decimal(0)) - vat_before.get(rate, Decimal(0))).quantize(CENT)
        if rate in this or vat:
            rows.append({"rate": str(rate), "net": str(net), "vat": str(vat)})
    net_total = sum((Decimal(r["net"]) for r in rows), Decimal("0.00"))
    vat_total = sum((Decimal(r["vat"]) for r in rows), Decimal("0.00"))
    gross = net_total + vat_total
    due = (-round_money(billed_totals.gross_total, cash_unit)
           - sum((Totals.of(note).total_due for note in notes), Decimal(0))).quantize(CENT)
    return {**t, "vat": rows, "net_total": str(net_total), "vat_total": str(vat_total),
            "gross_total": str(gross), "rounding": str((due - gross).quantize(CENT)),
            "total_due": str(due)}


def _credit_line(ln: Line, prior: list[Line], qty: str | None) -> Line | None:
    """A negated copy of an invoice line: ``qty`` of it priced at the line's unit price, or
    (no ``qty``) all that is left of it, to the cent, so its credits add up to the line.
    None when nothing is left and the line was not asked for by number."""
    n, unit = ln.n, ln.unit
    left_amount = ln.amount + sum((x.amount for x in prior), Decimal(0))
    mark = {**ln.extra, "credits_line": n}
    if isinstance(ln.quantity, Days):  # a prorated fee (15/31 of a month): whole or nothing
        if qty is not None:
            raise LifecycleError(f"line {n} is a prorated fee ({ln.quantity} {unit}): "
                                 "credit it whole (no quantity)")
        if prior:
            return None
        return replace(ln, quantity=Days(-ln.quantity.days, ln.quantity.of),
                       amount=-left_amount, extra=mark)
    left = ln.quantity + sum((x.quantity for x in prior if isinstance(x.quantity, Decimal)),
                             Decimal(0))
    if left <= 0:
        return None
    if qty is None:
        q, amount = left, left_amount
    else:
        try:
            q = Decimal(qty)
        except InvalidOperation:
            raise LifecycleError(f"line {n}: not a quantity: {qty!r}") from None
        if not q.is_finite() or q <= 0:
            raise LifecycleError(f"line {n}: the quantity to credit must be positive")
        if q > left:
            raise LifecycleError(f"line {n}: {q} {unit} is more than the {left} {unit} "
                                 "left to credit")
        amount = left_amount if q == left else line_amount(q, ln.unit_price)
    return replace(ln, quantity=-q, amount=-amount, extra=mark)


def credit(conn: Connection, model: SiteModel, number: int, day: date,
           net: str | None = None, vat: str | None = None, label: str | None = None,
           lines: list[tuple[int, str | None]] | None = None) -> dict:
    """A credit note against an issued invoice: chosen lines (by number, optionally a part
    of a line's quantity), everything not yet credited (neither given), or one net amount
    at a VAT rate. It takes the next number and reduces the invoice's balance; neither a
    line nor a VAT rate's net is credited beyond what was billed, counting earlier credit
    notes, and the note that credits the rest takes the rest (``_note_totals``)."""
    row = get_row(conn, model.site.id, number)
    if row["state"] not in ("issued", "settled") or row["kind"] != "invoice":
        raise LifecycleError(f"invoice {number} is {row['state']}: credit notes correct "
                             "issued invoices")
    if net is not None and lines:
        raise LifecycleError("credit either chosen lines or a net amount, not both")
    doc = json.loads(row["document"])
    text = label or i18n.text(model.site.language, "invoice_credit_for", number=number)
    notes = _credit_notes(conn, row["id"])
    if net is None:
        prior = _credited(notes)
        by_n = {ln.n: ln for ln in Invoice.of(doc).lines}
        wanted: list[tuple[int, str | None]] = lines or [(n, None) for n in sorted(by_n)]
        seen: set[int] = set()
        out = []
        for n, qty in wanted:
            if n not in by_n:
                raise LifecycleError(f"invoice {number} has no line {n} "
                                     f"(lines 1-{len(by_n)})")
            if n in seen:
                raise LifecycleError(f"line {n} is named twice")
            seen.add(n)
            cl = _credit_line(by_n[n], prior.get(n, []), qty)
            if cl is None and lines:
                raise LifecycleError(f"line {n} of invoice {number} is already credited "
                                     "in full")
            if cl is not None:
                out.append(cl)
        if not out:
            raise LifecycleError(f"invoice {number} is already credited in full")
        new_lines = [replace(ln, n=k).to_json() for k, ln in enumerate(out, 1)]
    else:
        amt = money(net)
        if amt <= 0:
            raise LifecycleError("credit amount must be positive (it is credited)")
        rate = _vat_rate(vat) if vat is not None else Decimal(doc["lines"][0]["vat_rate"])
        new_lines = [{"n": 1, "billing_point": None, "key": "credit", "label": text,
                      "from": doc["period_first"], "to": doc["period_last"], "quantity": "1",
                      "unit": "", "unit_price": str(-amt),
                      "amount": str(line_amount(Decimal(1), -amt)), "vat_rate": str(rate),
                      "source": None}]
    used = {ln.get("source") for ln in new_lines}
    cdoc = {**{k: doc[k] for k in ("site", "site_name", "currency", "period", "period_first",
                                    "period_last", "account")},
            "credits_invoice": number, "label": text, "lines": new_lines,
            "sources": [s for s in doc.get("sources", []) if s["id"] in used],
            **_note_totals(doc, notes, new_lines, model.site.cash_unit)}
    cnum = next_number(conn, model.site.id)
    note_id = store.insert_invoice(
        conn, site_id=model.site.id, number=cnum, kind="credit_note",
        account_id=row["account_id"], period=row["period"], state="issued", reminder_level=0,
        issue_date=day.isoformat(), due_date=None, total_due=cdoc["total_due"],
        document=canonical(cdoc), inputs="{}", credited_invoice_id=row["id"])
    _event(conn, note_id, day, "issue", None, f"credits {number}")
    _event(conn, row["id"], day, "credit", Decimal(cdoc["total_due"]), f"credit note {cnum}")
    _settle_if_paid(conn, row)
    return {"credit_note": view(conn, get_row(conn, model.site.id, cnum)),
            "invoice": view(conn, get_row(conn, model.site.id, number))}


def _period_filter(period: str | None) -> str | None:
    """The stored label of a period filter; a bad period is an error, never 'no rows'."""
    return None if period is None else parse_period(period).label


def list_invoices(conn: Connection, site_id: str, period: str | None = None,
                  documents: bool = False) -> list[dict]:
    """The site's invoices (of one period) in number order: two queries in all."""
    period = _period_filter(period)
    evs = store.site_events(conn, site_id, period)
    out = []
    for row in store.site_invoices(conn, site_id, period):
        v = view_of(row, evs.get(row["id"], []))
        if not documents:
            del v["document"], v["events"]
        out.append(v)
    return out


OVERVIEW_MONEY = ("amount", "collected", "balance")
OVERVIEW_COUNTS = ("draft", "in_progress", "settled", "cancelled", "written_off",
                   "R1", "R2", "R3")


def overview_state(state: str) -> str:
    """An invoice's state as the overview counts it (issued: in progress)."""
    return "in_progress" if state == "issued" else state


def overview_figures() -> dict[str, Any]:
    """The overview's figures of no invoice (Decimal amounts, counts)."""
    return {**dict.fromkeys(OVERVIEW_MONEY, Decimal("0.00")),
            **dict.fromkeys(OVERVIEW_COUNTS, 0)}


def tally(fig: dict[str, Any], row: dict[str, Any], evs: Iterable[dict[str, Any]]) -> None:
    """Add an invoice (kind invoice) to overview figures: drafts and cancelled invoices
    count but bill nothing; Amount is what was billed with reminder fees and credit notes;
    a reminder level counts only while the invoice is open; Balance as ``balance``."""
    st = row["state"]
    fig[overview_state(st)] += 1
    if st == "issued" and row["reminder_level"]:
        fig[f"R{row['reminder_level']}"] += 1
    if st in ("draft", "cancelled"):
        return
    added, paid = _added_paid(evs)
    billed = Decimal(row["total_due"]) + added
    fig["amount"] += billed
    fig["collected"] += paid
    if st != "written_off":  # balance(): written off owes nothing
        fig["balance"] += billed - paid


def overview(conn: Connection, site_id: str, period: str | None = None) -> dict[str, Any]:
    """Per site and period: amount billed, collected, open balance, and the counts."""
    period = _period_filter(period)
    fig = overview_figures()
    all_evs = store.site_events(conn, site_id, period)
    for row in store.site_invoices(conn, site_id, period, kind="invoice"):
        tally(fig, row, all_evs.get(row["id"], []))
    return {"site": site_id, "period": period,
            **{k: str(v) if k in OVERVIEW_MONEY else v for k, v in fig.items()}}
