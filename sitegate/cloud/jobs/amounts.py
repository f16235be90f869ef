"""A job's money, as pure functions: each cost line's amount (quantity x unit price, to
the cent), each party's part of it by its relative share (the last party takes what the
rounding of the others leaves, so the parts add up to the line), the customer's deduction,
and the lines of each invoice as the difference between what is due and what earlier
invoices of the job billed (per cost line): a prepayment (a percentage of the quote), a
change invoice (actual costs minus the quote, not yet billed), the final invoice (the
rest). Every invoice is VAT per line and cash-rounded by the billing core's ``totals``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sitegate.cloud.billing.invoice import line_amount, totals
from sitegate.cloud.billing.lines import Line
from sitegate.cloud.billing.units import round_money
from sitegate.cloud.jobs.model import JobSpec, Party

ZERO = Decimal("0.00")
STAGES = ("prepayment", "change", "final")
TITLES = {"quote": "Offerte", "prepayment": "Vorauszahlungsrechnung",
          "change": "Nachtragsrechnung", "final": "Schlussrechnung"}


@dataclass(frozen=True, slots=True)
class Part:
    """A party's part of one cost line (or of a deduction)."""

    key: str  # "order/line", or "deduction/<VAT rate>"
    label: str
    order: str | None
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    vat: Decimal


def parts(job: JobSpec) -> dict[str, dict[str, Part]]:
    """Each party's parts of every cost line, the customer's after its deduction."""
    out: dict[str, dict[str, Part]] = {p.id: {} for p in job.parties}
    for o in job.orders:
        for ln in o.lines:
            full = line_amount(ln.quantity, ln.unit_price)
            left = full
            for i, p in enumerate(job.parties):
                last = i == len(job.parties) - 1
                amount = left if last else round_money(full * p.share / 100)
                left -= amount
                out[p.id][f"{o.id}/{ln.id}"] = Part(
                    f"{o.id}/{ln.id}", ln.description, o.id,
                    (ln.quantity * p.share / 100).normalize(), ln.unit, ln.unit_price,
                    amount, ln.vat)
    cust = job.customer.id
    out[cust] = _deducted(job, out[cust])
    return out


def _deducted(job: JobSpec, mine: dict[str, Part]) -> dict[str, Part]:
    d = job.deduction
    net = sum((x.amount for x in mine.values()), ZERO)
    if d is None or net <= 0:
        return mine
    if d.mode == "threshold":
        if net >= d.amount:
            return mine
        return {k: Part(x.key, x.label, x.order, Decimal(0), x.unit, x.unit_price, ZERO,
                        x.vat) for k, x in mine.items()}  # below it: nothing charged
    by_rate: dict[Decimal, Decimal] = {}
    for x in mine.values():
        by_rate[x.vat] = by_rate.get(x.vat, ZERO) + x.amount
    total = min(d.amount, net)  # never more than the customer's share
    rates = sorted(r for r, v in by_rate.items() if v)
    left = total
    out = dict(mine)
    for i, rate in enumerate(rates):  # spread over the rates by their net, the rest last
        share = left if i == len(rates) - 1 else round_money(total * by_rate[rate] / net)
        left -= share
        key = f"deduction/{rate}"
        out[key] = Part(key, "Abzug", None, Decimal(1), "", -share, -share, rate)
    return out


def _scaled(p: Part, factor: Decimal) -> Part:
    return Part(p.key, p.label, p.order, (p.quantity * factor).normalize(), p.unit,
                p.unit_price, round_money(p.amount * factor), p.vat)


def due(stage: str, actual: dict[str, Part], quoted: dict[str, Part],
        billed: Iterable[dict[str, Any]], percent: Decimal = Decimal(0)) -> list[Part]:
    """A party's lines of an invoice at ``stage``. ``billed``: the lines (JSON, with
    ``job_key`` and ``job_stage``) of the party's earlier invoices of the job that count
    (not cancelled)."""
    before: dict[str, tuple[Decimal, Decimal]] = {}
    changed: dict[str, tuple[Decimal, Decimal]] = {}
    for ln in billed:
        k, q, a = ln["job_key"], Decimal(ln["quantity"]), Decimal(ln["amount"])
        bq, ba = before.get(k, (Decimal(0), ZERO))
        before[k] = (bq + q, ba + a)
        if ln["job_stage"] == "change":
            cq, ca = changed.get(k, (Decimal(0), ZERO))
            changed[k] = (cq + q, ca + a)
    out: list[Part] = []
    if stage == "prepayment":
        return [s for p in quoted.values() if (s := _scaled(p, percent / 100)).amount]
    keys = list(actual) + [k for k in (*quoted, *before) if k not in actual]
    keys = list(dict.fromkeys(keys))
    for k in keys:
        a, qt = actual.get(k), quoted.get(k)
        ref = a or qt
        if ref is None:  # billed before, gone from the quote and the actual costs
            ref_q, ref_a = before[k]
            out.append(Part(k, k, None, -ref_q, "", Decimal(0), -ref_a, Decimal(0)))
            continue
        aq, aa = (a.quantity, a.amount) if a else (Decimal(0), ZERO)
        if stage == "change":
            qq, qa = (qt.quantity, qt.amount) if qt else (Decimal(0), ZERO)
            cq, ca = changed.get(k, (Decimal(0), ZERO))
            dq, da = aq - qq - cq, aa - qa - ca
        else:
            bq, ba = before.get(k, (Decimal(0), ZERO))
            dq, da = aq - bq, aa - ba
        if da or dq:
            out.append(Part(k, ref.label, ref.order, dq.normalize(), ref.unit,
                            ref.unit_price, da, ref.vat))
    return out


def document(job: JobSpec, party: Party, stage: str, lines: list[Part], day: date,
             site: dict[str, Any], cash_unit: Decimal,
             shares: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A quote or an invoice of the job for one party, as a billing document."""
    end = (day + timedelta(days=1)).isoformat()
    js = [Line(key=p.key, label=p.label, start=day.isoformat(), end=end,
               quantity=p.quantity, unit=p.unit, unit_price=p.unit_price, amount=p.amount,
               vat_rate=p.vat, billing_point=p.order, n=n,
               extra={"job_key": p.key, "job_stage": stage}).to_json()
          for n, p in enumerate(lines, 1)]
    doc: dict[str, Any] = {
        **site, "period": f"job:{job.id}", "period_first": day.isoformat(),
        "period_last": day.isoformat(), "period_text": f"Auftrag {job.id}",
        "title": TITLES[stage], "job": {"id": job.id, "title": job.title,
                                        "installation": job.installation, "stage": stage,
                                        "party": party.id},
        "account": {"id": party.accounting_id or party.id, "name": party.name,
                    **({"address": party.address.model_dump(mode="json")}
                       if party.address else {}),
                    **({"email": party.email} if party.email else {})},
        "lines": js, "sources": [], **totals(js, Decimal(0), cash_unit)}
    if shares is not None:
        doc["shares"] = shares
    return doc


def shares_of(job: JobSpec, all_parts: dict[str, dict[str, Part]]) -> list[dict[str, Any]]:
    """Per party: its share and its net amount (the quote shows who pays what)."""
    return [{"party": p.id, "name": p.name, "share": str(p.share),
             "net": str(sum((x.amount for x in all_parts[p.id].values()), ZERO))}
            for p in job.parties]
