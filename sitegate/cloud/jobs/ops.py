"""Job operations over one database, shared by the CLI and the HTTP API.

States: draft -> quote_sent -> accepted -> invoice_sent -> paid, and cancelled (from any
state before invoice_sent). The quote goes by e-mail with a link carrying a one-time
token (only its SHA-256 is kept); the customer accepts through that link, which records
who, when and from where. A job may block its work orders until accepted, or until the
prepayment (an invoice issued at acceptance) is paid. Change invoices bill what the actual
costs add to the quote; the final invoice bills the rest; paid when every invoice of the
job is settled. Every state change is an event shown on the job's orders."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sitegate.cloud.billing import ledger
from sitegate.cloud.billing.pdf import invoice_pdf
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.cloud.billing.sites import NotFound, canonical, load_site_model
from sitegate.cloud.jobs import amounts, mail
from sitegate.cloud.jobs.lookup import lookup
from sitegate.cloud.jobs.model import JobSpec, JobsSettings, parse_job, parse_settings
from sitegate.cloud.store import billing as billing_store
from sitegate.cloud.store import jobs as store
from sitegate.cloud.store.billing import DB as Engine
from sitegate.cloud.store.billing import Conn as Connection


class JobError(ValueError):
    """The operation does not fit the job's state; the message says why."""


class LinkRefused(JobError):
    """An acceptance link that is unknown, used, expired or for a job no longer quoted."""


STATES = ("draft", "quote_sent", "accepted", "invoice_sent", "paid", "cancelled")


def _now() -> datetime:
    return datetime.now(UTC)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def import_settings(engine: Engine, site: str | None, data: Any) -> dict[str, Any]:
    s = parse_settings(data)
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        store.put_settings(conn, model.site.id,
                           canonical(s.model_dump(mode="json", exclude_none=True)), _now())
    return {"site": model.site.id, "smtp": s.smtp is not None, "lookup": s.lookup is not None}


def _settings(conn: Connection, model: SiteModel) -> JobsSettings:
    text = store.settings_text(conn, model.site.id)
    if text is None:
        raise NotFound(f"site {model.site.id!r} has no jobs settings: import them with "
                       "'sitegate-cloud jobs settings FILE'")
    return parse_settings(json.loads(text))


def _row(conn: Connection, model: SiteModel, job_id: str) -> dict[str, Any]:
    row = store.job(conn, model.site.id, job_id)
    if row is None:
        raise NotFound(f"no job {job_id!r} at site {model.site.id!r}")
    return row


def _spec(row: dict[str, Any]) -> JobSpec:
    return parse_job(json.loads(row["spec"]))


def _change(conn: Connection, model: SiteModel, job_id: str, state: str,
            note: str | None, **values: Any) -> None:
    now = _now()
    store.put_job(conn, model.site.id, job_id, now, state=state, **values)
    store.add_event(conn, model.site.id, job_id, now, state, note)


def import_job(engine: Engine, site: str | None, data: Any) -> dict[str, Any]:
    """A new job, or its changed description: in draft anything; once quoted, a change of
    the cost lines takes the quote back (draft, the link no longer works); once accepted,
    the cost lines are the actual costs (parties and shares stay as accepted)."""
    spec = parse_job(data)
    text = canonical(spec.model_dump(mode="json", exclude_none=True))
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        row = store.job(conn, model.site.id, spec.id)
        if row is None:
            _change(conn, model, spec.id, "draft", "created", spec=text)
            return {"job": spec.id, "state": "draft", "created": True}
        state = row["state"]
        old = _spec(row)
        known = {p.id: p.accounting_id for p in old.parties}  # the lookup's answers stay
        spec = spec.model_copy(update={"parties": [
            p if p.accounting_id or not known.get(p.id)
            else p.model_copy(update={"accounting_id": known[p.id]}) for p in spec.parties]})
        text = canonical(spec.model_dump(mode="json", exclude_none=True))
        if state in ("invoice_sent", "paid", "cancelled"):
            raise JobError(f"job {spec.id} is {state}: its costs are final")
        if state == "accepted":
            fixed = ("parties", "deduction", "block", "prepayment_percent")
            if any(getattr(old, f) != getattr(spec, f) for f in fixed):
                raise JobError(f"job {spec.id} is accepted: only its cost lines may change "
                               "(parties, shares, deduction and prepayment are as accepted)")
            store.put_job(conn, model.site.id, spec.id, _now(), spec=text)
            store.add_event(conn, model.site.id, spec.id, _now(), state, "actual costs")
            return {"job": spec.id, "state": state, "created": False}
        if state == "quote_sent":
            _change(conn, model, spec.id, "draft", "changed after the quote: quote withdrawn",
                    spec=text, token_hash=None, token_expires=None, quote=None)
            return {"job": spec.id, "state": "draft", "created": False}
        store.put_job(conn, model.site.id, spec.id, _now(), spec=text)
        return {"job": spec.id, "state": state, "created": False}


def _site_doc(model: SiteModel) -> dict[str, Any]:
    return {"site": model.site.id, "site_name": model.site.name,
            "currency": model.site.currency}


def _parts_json(p: dict[str, dict[str, amounts.Part]]) -> dict[str, Any]:
    return {party: [{"key": x.key, "label": x.label, "order": x.order,
                     "quantity": str(x.quantity), "unit": x.unit,
                     "unit_price": str(x.unit_price), "amount": str(x.amount),
                     "vat": str(x.vat)} for x in parts.values()] for party, parts in p.items()}


def _parts_of(d: dict[str, Any]) -> dict[str, dict[str, amounts.Part]]:
    return {party: {x["key"]: amounts.Part(x["key"], x["label"], x["order"],
                                           Decimal(x["quantity"]), x["unit"],
                                           Decimal(x["unit_price"]), Decimal(x["amount"]),
                                           Decimal(x["vat"])) for x in rows}
            for party, rows in d.items()}


def _quote_view(job_id: str, doc: dict[str, Any], day: date, valid: date) -> dict[str, Any]:
    return {"number": job_id, "kind": "quote", "state": "draft", "issue_date": day.isoformat(),
            "due_date": valid.isoformat(), "total_due": doc["total_due"],
            "balance": doc["total_due"], "document": doc}


def quote(engine: Engine, site: str | None, job_id: str, day: date,
          send: bool = True) -> dict[str, Any]:
    """The quote to the customer (PDF) by e-mail with the acceptance link; the job is then
    quote_sent. ``send=False``: no e-mail, the link is only returned (hand it over)."""
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        st = _settings(conn, model)
        row = _row(conn, model, job_id)
        if row["state"] not in ("draft", "quote_sent"):
            raise JobError(f"job {job_id} is {row['state']}: only a draft (or a quote sent "
                           "again) is quoted")
        spec = _spec(row)
        cust = spec.customer
        if st.lookup is not None and not cust.accounting_id:
            acc = lookup(st.lookup, cust.model_dump(mode="json", exclude_none=True))
            spec = spec.model_copy(update={"parties": [
                p.model_copy(update={"accounting_id": acc}) if p.customer else p
                for p in spec.parties]})
            cust = spec.customer
        p = amounts.parts(spec)
        doc = amounts.document(spec, cust, "quote", list(p[cust.id].values()), day,
                               _site_doc(model), model.site.cash_unit,
                               amounts.shares_of(spec, p))
        valid = day + timedelta(days=st.quote_valid_days)
        token = secrets.token_urlsafe(32)
        link = f"{st.link_base.rstrip('/')}/jobs/accept?t={token}"
        pdf = invoice_pdf(_quote_view(job_id, doc, day, valid), model)
        sent = None
        if send:
            if st.smtp is None or not cust.email:
                raise JobError("no e-mail: the jobs settings have no [smtp] or the customer "
                               "no email (quote with --no-mail to hand the link over)")
            sent = mail.send(st.smtp, cust.email, f"Offerte {job_id}: {spec.title}",
                             f"Guten Tag {cust.name}\n\nIm Anhang unsere Offerte {job_id} "
                             f"({spec.title}, {spec.installation}) über "
                             f"{doc['currency']} {doc['total_due']}.\n"
                             f"Sie können sie bis {valid} hier annehmen:\n{link}\n",
                             (f"offerte-{job_id}.pdf", pdf))
        q = {"date": day.isoformat(), "valid_until": valid.isoformat(), "document": doc,
             "parts": _parts_json(p), "message_id": sent}
        _change(conn, model, job_id, "quote_sent",
                f"quote {doc['total_due']} sent to {cust.email}" if send
                else "quote handed over (no e-mail)",
                spec=canonical(spec.model_dump(mode="json", exclude_none=True)),
                quote=canonical(q), token_hash=_hash(token),
                token_expires=datetime.combine(valid + timedelta(days=1), datetime.min.time(),
                                               UTC))
    return {"job": job_id, "state": "quote_sent", "total_due": doc["total_due"],
            "valid_until": valid.isoformat(), "link": link, "message_id": sent}


def quote_pdf(engine: Engine, site: str | None, job_id: str) -> bytes:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        row = _row(conn, model, job_id)
        if not row["quote"]:
            raise JobError(f"job {job_id} has no quote")
        q = json.loads(row["quote"])
        return invoice_pdf(_quote_view(job_id, q["document"], date.fromisoformat(q["date"]),
                                       date.fromisoformat(q["valid_until"])), model)


def _by_token(conn: Connection, token: str) -> tuple[dict[str, Any], SiteModel]:
    if not (20 <= len(token) <= 100):
        raise LinkRefused("this link is not valid")
    row = store.job_by_token(conn, _hash(token))
    if row is None:
        raise LinkRefused("this link is not valid (any more)")
    exp = row["token_expires"]
    exp = exp.replace(tzinfo=UTC) if exp.tzinfo is None else exp
    if _now() >= exp or row["state"] != "quote_sent":
        raise LinkRefused("this quote can no longer be accepted through this link")
    return row, load_site_model(conn, row["site_id"])


def quote_for_link(engine: Engine, token: str) -> dict[str, Any]:
    """What the acceptance page shows."""
    with engine.connect() as conn:
        row, _model = _by_token(conn, token)
        q = json.loads(row["quote"])
        d = q["document"]
        return {"job": row["id"], "title": d["job"]["title"], "valid_until": q["valid_until"],
                **{k: d[k] for k in ("site_name", "currency", "account", "lines", "vat",
                                     "net_total", "vat_total", "total_due")}}


def accept(engine: Engine, token: str, name: str, client: str, agent: str) -> dict[str, Any]:
    """The customer accepts through the link: who (the name given), when, from where (the
    address and browser of the request). The token works once; a prepayment is invoiced."""
    name = " ".join(name.split())[:128]
    if not name:
        raise JobError("the name of who accepts is needed")
    with engine.begin() as conn:
        row, model = _by_token(conn, token)
        rec = {"name": name, "at": _now().isoformat(timespec="seconds"),
               "from": client[:64], "agent": agent[:300]}
        _change(conn, model, row["id"], "accepted", f"accepted by {name} from {client[:64]}",
                acceptance=canonical(rec), token_hash=None, token_expires=None)
        spec = _spec(row)
        out = {"job": row["id"], "state": "accepted", "accepted": rec, "prepayment": None}
        if spec.prepayment_percent:
            q = json.loads(row["quote"])
            quoted = _parts_of(q["parts"])
            lines = amounts.due("prepayment", {}, quoted[spec.customer.id], [],
                                spec.prepayment_percent)
            if lines:
                out["prepayment"] = _invoice(conn, model, spec, spec.customer.id,
                                             "prepayment", lines, _now().date())
        return out


def _invoice(conn: Connection, model: SiteModel, spec: JobSpec, party_id: str, stage: str,
             lines: list[amounts.Part], day: date) -> int:
    party = next(p for p in spec.parties if p.id == party_id)
    doc = amounts.document(spec, party, stage, lines, day, _site_doc(model),
                           model.site.cash_unit)
    num = billing_store.next_number(conn, model.site.id)
    billing_store.insert_invoice(
        conn, site_id=model.site.id, number=num, kind="invoice",
        account_id=doc["account"]["id"][:64], period=doc["period"], state="draft",
        reminder_level=0, total_due=doc["total_due"], document=canonical(doc), inputs="{}")
    ledger.issue(conn, model, num, day, _now())
    return num


def _job_invoices(conn: Connection, model: SiteModel, job_id: str) -> list[dict[str, Any]]:
    evs = billing_store.site_events(conn, model.site.id, f"job:{job_id}")
    return [ledger.view_of(r, evs.get(r["id"], []))
            for r in billing_store.site_invoices(conn, model.site.id, f"job:{job_id}",
                                                 kind="invoice")]


def invoice(engine: Engine, site: str | None, job_id: str, stage: str, day: date,
            send: bool = True) -> dict[str, Any]:
    """Change invoices (what the actual costs add to the quote, not billed yet) while the
    job is accepted; the final invoice (everything not yet billed) makes it invoice_sent.
    One invoice per party with something to bill, issued, and e-mailed when it can be."""
    if stage not in ("change", "final"):
        raise JobError(f"unknown invoice {stage!r}: change or final")
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        st = _settings(conn, model)
        row = _row(conn, model, job_id)
        if row["state"] != "accepted":
            raise JobError(f"job {job_id} is {row['state']}: invoices follow the accepted "
                           "quote (and the final one comes once)")
        spec = _spec(row)
        actual = amounts.parts(spec)
        quoted = _parts_of(json.loads(row["quote"])["parts"])
        prior = [v for v in _job_invoices(conn, model, job_id) if v["state"] != "cancelled"]
        made, nothing = [], []
        for p in spec.parties:
            billed = [ln for v in prior if v["document"]["job"]["party"] == p.id
                      for ln in v["document"]["lines"]]
            lines = amounts.due(stage, actual[p.id], quoted.get(p.id, {}), billed)
            if not lines:
                nothing.append(p.id)
                continue
            num = _invoice(conn, model, spec, p.id, stage, lines, day)
            v = ledger.view(conn, ledger.get_row(conn, model.site.id, num))
            sent = None
            if send and st.smtp is not None and p.email:
                sent = mail.send(st.smtp, p.email,
                                 f"{amounts.TITLES[stage]} {num}: {spec.title}",
                                 f"Guten Tag {p.name}\n\nIm Anhang unsere "
                                 f"{amounts.TITLES[stage]} {num} zu Auftrag {job_id} über "
                                 f"{v['document']['currency']} {v['total_due']}.\n",
                                 (f"rechnung-{num}.pdf", invoice_pdf(v, model)))
            made.append({"invoice": num, "party": p.id, "total_due": v["total_due"],
                         "mailed": sent is not None})
        if stage == "final":
            _change(conn, model, job_id, "invoice_sent",
                    "final invoice " + ", ".join(str(m["invoice"]) for m in made))
        elif made:
            store.add_event(conn, model.site.id, job_id, _now(), "accepted",
                            "change invoice " + ", ".join(str(m["invoice"]) for m in made))
        _refresh(conn, model, job_id)
    return {"job": job_id, "stage": stage, "invoices": made, "nothing_to_bill": nothing}


def cancel(engine: Engine, site: str | None, job_id: str) -> dict[str, Any]:
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        row = _row(conn, model, job_id)
        if row["state"] in ("invoice_sent", "paid", "cancelled"):
            raise JobError(f"job {job_id} is {row['state']}: it cannot be cancelled (credit "
                           "its invoices instead)")
        open_ = [v["number"] for v in _job_invoices(conn, model, job_id)
                 if v["state"] not in ("cancelled",)]
        if open_:
            raise JobError(f"job {job_id} has invoices {open_}: cancel or credit them first")
        _change(conn, model, job_id, "cancelled", "cancelled", token_hash=None,
                token_expires=None)
    return {"job": job_id, "state": "cancelled"}


def _refresh(conn: Connection, model: SiteModel, job_id: str) -> None:
    """invoice_sent -> paid once every invoice of the job is settled (payments arrive
    through the ledger: by hand, or a bank statement)."""
    row = _row(conn, model, job_id)
    if row["state"] != "invoice_sent":
        return
    invs = [v for v in _job_invoices(conn, model, job_id) if v["state"] != "cancelled"]
    if invs and all(v["state"] == "settled" for v in invs):
        _change(conn, model, job_id, "paid", "every invoice settled")


def _blocked(spec: JobSpec, state: str, invs: list[dict[str, Any]]) -> str | None:
    """Why the job's work orders may not start yet, or None."""
    if state == "cancelled":
        return "the job is cancelled"
    if spec.block == "until_accepted" and state in ("draft", "quote_sent"):
        return "waiting for the customer to accept the quote"
    if spec.block == "until_prepaid":
        pre = [v for v in invs if v["document"]["job"]["stage"] == "prepayment"]
        if state in ("draft", "quote_sent"):
            return "waiting for the customer to accept the quote"
        if not pre or any(v["state"] != "settled" for v in pre):
            return "waiting for the prepayment"
    return None


def show(engine: Engine, site: str | None, job_id: str) -> dict[str, Any]:
    """The job with its state history, acceptance, invoices and its orders (each with the
    job's state and whether the work is blocked)."""
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        _refresh(conn, model, job_id)
        row = _row(conn, model, job_id)
        spec = _spec(row)
        invs = _job_invoices(conn, model, job_id)
        events = [{"at": e["at"].isoformat() if hasattr(e["at"], "isoformat") else e["at"],
                   "state": e["state"], "note": e["note"]}
                  for e in store.events(conn, model.site.id, job_id)]
    blocked = _blocked(spec, row["state"], invs)
    q = json.loads(row["quote"]) if row["quote"] else None
    return {
        "job": job_id, "title": spec.title, "installation": spec.installation,
        "state": row["state"], "customer": spec.customer.name,
        "accounting_id": spec.customer.accounting_id,
        "quote": None if q is None else {"date": q["date"], "valid_until": q["valid_until"],
                                         "total_due": q["document"]["total_due"]},
        "acceptance": json.loads(row["acceptance"]) if row["acceptance"] else None,
        "orders": [{"order": o.id, "kind": o.kind, "description": o.description,
                    "job_state": row["state"], "blocked": blocked is not None,
                    "why": blocked, "history": events} for o in spec.orders],
        "invoices": [{"invoice": v["number"], "stage": v["document"]["job"]["stage"],
                      "party": v["document"]["job"]["party"], "state": v["state"],
                      "total_due": v["total_due"], "balance": v["balance"]} for v in invs],
        "events": events,
    }


def jobs_list(engine: Engine, site: str | None) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        rows = store.jobs(conn, model.site.id)
    return [{"job": r["id"], "state": r["state"], "title": _spec(r).title,
             "customer": _spec(r).customer.name} for r in rows]


EXPORT_FIELDS = ("job", "invoice", "stage", "party", "accounting_id", "name", "issue_date",
                 "due_date", "state", "line", "order", "description", "quantity", "unit",
                 "unit_price", "amount", "vat_rate", "net_total", "vat_total", "rounding",
                 "total_due", "currency")


def export(engine: Engine, site: str | None, fmt: str, job_id: str | None = None) -> str:
    """Every job invoice for the accounting system / ERP: one row per invoice line with its
    invoice's totals (CSV), or one object per invoice with its lines (JSON). The numbers are
    the stored documents', as they were issued."""
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        ids = [job_id] if job_id else [r["id"] for r in store.jobs(conn, model.site.id)]
        views = [v for j in ids for v in _job_invoices(conn, model, j)]
    invoices = []
    for v in views:
        d = v["document"]
        invoices.append({
            "job": d["job"]["id"], "invoice": v["number"], "stage": d["job"]["stage"],
            "party": d["job"]["party"], "accounting_id": d["account"]["id"],
            "name": d["account"]["name"], "issue_date": v["issue_date"],
            "due_date": v["due_date"], "state": v["state"], "currency": d["currency"],
            "net_total": d["net_total"], "vat": d["vat"], "vat_total": d["vat_total"],
            "rounding": d["rounding"], "total_due": d["total_due"],
            "lines": [{"line": ln["n"], "order": ln["billing_point"],
                       "description": ln["label"], "quantity": ln["quantity"],
                       "unit": ln["unit"], "unit_price": ln["unit_price"],
                       "amount": ln["amount"], "vat_rate": ln["vat_rate"]}
                      for ln in d["lines"]]})
    if fmt == "json":
        return json.dumps({"format": "sitegate-jobs-export/1", "invoices": invoices},
                          indent=2, ensure_ascii=False) + "\n"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(EXPORT_FIELDS), lineterminator="\n")
    w.writeheader()
    for inv in invoices:
        head = {k: inv[k] for k in EXPORT_FIELDS if k in inv}
        for ln in inv["lines"]:
            w.writerow({**head, **ln})
    return buf.getvalue()

