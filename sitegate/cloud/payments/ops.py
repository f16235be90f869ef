"""Bank statement import over one database (CLI and HTTP API): one transaction per file.
Each new credit is matched by its reference and paid onto its invoice through the ledger
(``ledger.pay``: the invoice is settled when its balance reaches zero); what cannot be
matched is kept and listed. A file, or a credit already imported (the same bank reference
in a camt.054 and the camt.053 after it), changes nothing the second time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from stdnum import iban as iban_mod

from sitegate.cloud.billing import ledger
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.billing.sites import NotFound, load_site_model
from sitegate.cloud.payments import camt
from sitegate.cloud.payments.match import target
from sitegate.cloud.store import billing as billing_store
from sitegate.cloud.store import payments as store
from sitegate.cloud.store.billing import DB as Engine
from sitegate.cloud.store.billing import Conn as Connection


class PaymentError(ValueError):
    """The operation does not fit (the credit is matched already, ...)."""


def _pay(conn: Connection, model: SiteModel, number: int, c: camt.Credit | dict[str, Any],
         day: date, note: str) -> tuple[str | None, str | None, str | None]:
    """(outcome, balance after, None) or (None, None, why not) for one credit."""
    row = billing_store.invoice_row(conn, model.site.id, number)
    if row is None:
        return None, None, f"no invoice {number}"
    if row["kind"] != "invoice" or row["state"] not in ("issued", "settled"):
        return None, None, f"invoice {number} is {row['state']}, not open for payments"
    amount = c.amount if isinstance(c, camt.Credit) else Decimal(c["amount"])
    before = ledger.balance(row, ledger.events(conn, row["id"]))
    after = Decimal(ledger.pay(conn, model, number, str(amount), day, note)["balance"])
    outcome = "full" if after == 0 else "partial" if after > 0 else "over"
    if before <= 0:
        outcome = "over"
    return outcome, str(after), None


def import_statement(engine: Engine, site: str | None, name: str, data: bytes,
                     today: date | None = None) -> dict[str, Any]:
    """A camt.054 / camt.053 file: refused whole with the entry named (``CamtError``), or
    every new credit matched or listed."""
    stmt = camt.parse(data)
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        sid = model.site.id
        own = iban_mod.compact(model.site.creditor.iban)
        for c in stmt.credits:
            if c.account != own:
                raise camt.CamtError(f"{c.entry}: account {c.account} is not the account "
                                     f"of site {sid} ({own})")
        summary = {"site": sid, "file": name, "kind": f"camt.{stmt.kind}",
                   "message_id": stmt.message_id}
        seen = store.import_of(conn, sid, stmt.digest)
        if seen is not None:
            return {**summary, "already_imported": seen["imported_at"].isoformat()
                    if hasattr(seen["imported_at"], "isoformat") else str(seen["imported_at"]),
                    "matched": [], "unmatched": [], "known": len(stmt.credits), "debits": 0}
        known = store.known_keys(conn, sid, [c.key for c in stmt.credits])
        imp = store.add_import(conn, datetime.now(UTC), site_id=sid, digest=stmt.digest,
                               file_name=name[:255], kind=f"camt.{stmt.kind}",
                               message_id=stmt.message_id, credits=0, matched=0, unmatched=0)
        matched, unmatched, debits, dup = [], [], 0, 0
        for c in stmt.credits:
            if not c.credit:
                debits += 1
                continue
            if c.key in known:
                dup += 1
                continue
            known.add(c.key)
            t = target(c, model.site.qr_reference_prefix, model.site.currency)
            outcome = after = None
            why = t.reason
            day = c.booking_date or c.value_date or today or date.today()
            if t.number is not None:
                outcome, after, why = _pay(conn, model, t.number, c, day,
                                           f"camt.{stmt.kind} {stmt.message_id} "
                                           f"{c.bank_ref or c.entry}"[:200])
            row = {"site_id": sid, "key": c.key, "import_id": imp, "entry": c.entry[:120],
                   "amount": str(c.amount), "currency": c.currency,
                   "booking_date": None if c.booking_date is None
                   else c.booking_date.isoformat(), "reference": (c.reference or "")[:64]
                   or None, "debtor": None if c.debtor is None else c.debtor[:200],
                   "status": "matched" if outcome else "unmatched",
                   "invoice_number": t.number if outcome else None, "outcome": outcome,
                   "balance_after": after, "reason": why}
            cid = store.add_credit(conn, **row)
            view = _view({**row, "id": cid})
            (matched if outcome else unmatched).append(view)
        store.update_import(conn, imp, credits=len(matched) + len(unmatched),
                            matched=len(matched), unmatched=len(unmatched))
    return {**summary, "already_imported": None, "matched": matched, "unmatched": unmatched,
            "known": dup, "debits": debits}


def _view(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r.get(k) for k in ("id", "entry", "booking_date", "amount", "currency",
                                  "reference", "debtor", "status", "invoice_number",
                                  "outcome", "balance_after", "reason")}


def credits(engine: Engine, site: str | None, status: str | None = None) -> list[dict]:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        return [_view(r) for r in store.credits(conn, model.site.id, status)]


def assign(engine: Engine, site: str | None, credit_id: int, number: int,
           day: date | None = None) -> dict[str, Any]:
    """An unmatched credit paid onto the invoice the operator names."""
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        row = store.credit(conn, model.site.id, credit_id)
        if row is None:
            raise NotFound(f"no credit {credit_id} at site {model.site.id!r}")
        if row["status"] != "unmatched":
            raise PaymentError(f"credit {credit_id} is {row['status']} (invoice "
                               f"{row['invoice_number']}): not assigned again")
        if row["currency"] != model.site.currency:
            raise PaymentError(f"credit {credit_id} is in {row['currency']}")
        when = (date.fromisoformat(row["booking_date"]) if row["booking_date"]
                else day or date.today())
        outcome, after, why = _pay(conn, model, number, row, when,
                                   f"credit {credit_id} assigned by the operator")
        if outcome is None:
            raise PaymentError(str(why))
        store.update_credit(conn, credit_id, status="assigned", invoice_number=number,
                            outcome=outcome, balance_after=after)
        return _view({**row, "status": "assigned", "invoice_number": number,
                      "outcome": outcome, "balance_after": after})
