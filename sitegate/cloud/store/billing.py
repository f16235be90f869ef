"""Every billing query: site models, invoices and their events. Set-based: a listing is
a fixed number of queries whatever the number of invoices. The billing rules above get
plain rows (dicts of the stored values) and hand back what to store."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select

from sitegate.cloud.store.tables import billing_events as EV
from sitegate.cloud.store.tables import billing_invoices as INV
from sitegate.cloud.store.tables import billing_sites as SITES

# What the billing modules name in their signatures, without importing SQLAlchemy.
Conn = Connection
DB = Engine


# -- site models ---------------------------------------------------------------------------


def site_models(conn: Connection) -> list[tuple[str, str]]:
    """(site id, canonical model JSON) of every imported site, by id."""
    q = select(SITES.c.site_id, SITES.c.model).order_by(SITES.c.site_id)
    return [(sid, text) for sid, text in conn.execute(q)]


def put_site_model(conn: Connection, site_id: str, text: str, at: Any) -> bool:
    """Insert or replace a site's model; True when it replaced one."""
    row = {"site_id": site_id, "model": text, "imported_at": at}
    exists = conn.execute(select(SITES.c.site_id).where(SITES.c.site_id == site_id)).first()
    if exists:
        conn.execute(SITES.update().where(SITES.c.site_id == site_id).values(**row))
    else:
        conn.execute(SITES.insert().values(**row))
    return bool(exists)


# -- invoices ------------------------------------------------------------------------------


def next_number(conn: Connection, site_id: str) -> int:
    """Next number of the site's one sequence (invoices and credit notes); callers hold the
    write transaction, and the unique constraint stops a racing writer."""
    cur = conn.execute(select(func.max(INV.c.number)).where(INV.c.site_id == site_id)).scalar()
    return (cur or 0) + 1


def invoice_row(conn: Connection, site_id: str, number: int) -> dict[str, Any] | None:
    row = conn.execute(select(INV).where(INV.c.site_id == site_id,
                                         INV.c.number == number)).first()
    return None if row is None else dict(row._mapping)


def insert_invoice(conn: Connection, **values: Any) -> int:
    return conn.execute(INV.insert().values(**values)).inserted_primary_key[0]


def update_invoice(conn: Connection, invoice_id: int, **values: Any) -> None:
    conn.execute(INV.update().where(INV.c.id == invoice_id).values(**values))


def insert_invoices(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Many invoices (alike columns) in one statement (executemany): a site's drafts."""
    if rows:
        conn.execute(INV.insert(), rows)


def update_invoices(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Many invoices' columns by id (``row["id"]``, alike columns) in one statement."""
    if rows:
        cols = [k for k in rows[0] if k != "id"]
        conn.execute(INV.update().where(INV.c.id == bindparam("_id")).values(
            {c: bindparam(c) for c in cols}), [{**{c: r[c] for c in cols}, "_id": r["id"]}
                                               for r in rows])


def period_invoices(conn: Connection, site_id: str, period: str) -> list[dict[str, Any]]:
    """The site's invoices (not credit notes) of one period, by number."""
    q = select(INV).where(INV.c.site_id == site_id, INV.c.period == period,
                          INV.c.kind == "invoice").order_by(INV.c.number)
    return [dict(r._mapping) for r in conn.execute(q)]


def issued_invoices(conn: Connection, site_id: str,
                    period: str | None) -> list[dict[str, Any]]:
    q = select(INV).where(INV.c.site_id == site_id, INV.c.kind == "invoice",
                          INV.c.issued_at.is_not(None))
    if period is not None:
        q = q.where(INV.c.period == period)
    return [dict(r._mapping) for r in conn.execute(q)]


def site_invoices(conn: Connection, site_id: str, period: str | None,
                  kind: str | None = None) -> list[dict[str, Any]]:
    """The site's invoices and credit notes (or one kind), of one period, by number."""
    q = select(INV).where(INV.c.site_id == site_id).order_by(INV.c.number)
    if period is not None:
        q = q.where(INV.c.period == period)
    if kind is not None:
        q = q.where(INV.c.kind == kind)
    return [dict(r._mapping) for r in conn.execute(q)]


def credit_note_documents(conn: Connection, invoice_id: int) -> list[str]:
    """The stored documents of the credit notes against an invoice, oldest first."""
    q = select(INV.c.document).where(INV.c.credited_invoice_id == invoice_id,
                                     INV.c.kind == "credit_note").order_by(INV.c.number)
    return [text for (text,) in conn.execute(q)]


def open_invoices(conn: Connection, site_id: str) -> list[tuple]:
    """(number, period, state, account, total_due, credited) of the site's invoices that
    are not cancelled; ``credited`` is the sum of their credit notes (negative, or 0).
    Two set queries, whatever the number of invoices."""
    notes: dict[int, Decimal] = {}
    for inv_id, due in conn.execute(select(INV.c.credited_invoice_id, INV.c.total_due).where(
            INV.c.site_id == site_id, INV.c.kind == "credit_note")):
        notes[inv_id] = notes.get(inv_id, Decimal(0)) + Decimal(due)
    q = select(INV.c.id, INV.c.number, INV.c.period, INV.c.state, INV.c.account_id,
               INV.c.total_due).where(INV.c.site_id == site_id, INV.c.kind == "invoice",
                                      INV.c.state != "cancelled").order_by(INV.c.number)
    return [(num, period, state, acc, due, notes.get(i, Decimal(0)))
            for i, num, period, state, acc, due in conn.execute(q)]


# -- events --------------------------------------------------------------------------------


def invoice_events(conn: Connection, invoice_id: int) -> list[dict[str, Any]]:
    q = select(EV.c.date, EV.c.kind, EV.c.amount, EV.c.note).where(
        EV.c.invoice_id == invoice_id).order_by(EV.c.id)
    return [dict(r._mapping) for r in conn.execute(q)]


def add_event(conn: Connection, invoice_id: int, day: str, kind: str, amount: str | None,
              note: str | None) -> None:
    conn.execute(EV.insert().values(invoice_id=invoice_id, date=day, kind=kind,
                                    amount=amount, note=note))


def site_events(conn: Connection, site_id: str,
                period: str | None) -> dict[int, list[dict[str, Any]]]:
    """Every event of the site's invoices (of one period), by invoice id: one query."""
    q = select(EV.c.invoice_id, EV.c.date, EV.c.kind, EV.c.amount, EV.c.note).join(
        INV, INV.c.id == EV.c.invoice_id).where(INV.c.site_id == site_id).order_by(EV.c.id)
    if period is not None:
        q = q.where(INV.c.period == period)
    out: dict[int, list[dict[str, Any]]] = {}
    for inv_id, day, kind, amount, note in conn.execute(q):
        out.setdefault(inv_id, []).append(
            {"date": day, "kind": kind, "amount": amount, "note": note})
    return out
