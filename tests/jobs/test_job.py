"""Acceptance (issue 16, part 2): a job through every state with a change invoice, cost
shares, a deduction and two VAT rates; the quote e-mailed through a real SMTP server and
accepted through its link on the real API; work blocked until accepted; the export's
numbers equal the documents'. Amounts worked out by hand below."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import urllib.error
import urllib.request
from datetime import date, timedelta
from decimal import Decimal

import pytest

from sitegate.cloud.billing import ops as billing_ops
from sitegate.cloud.jobs import ops

LOOKUP = """import json, sys
party = json.load(sys.stdin)
print("DEB-" + "".join(w[0] for w in party["name"].split()))
"""

# Quote, customer (60 %): Montage 6 h x 115.00 = 690.00 -> 414.00 (3.6 h); Inbetriebnahme
# 180.00 -> 108.00; Anschlusskasten 412.35 -> 247.41 (247.41 = 412.35 x 0.6 = 247.41);
# Gebühr 150.00 -> 90.00 (VAT 0). Net 859.41: 769.41 at 8.1 %, 90.00 at 0 %.
# Deduction 100.00 spread by net: 0 %: 100 x 90 / 859.41 = 10.4723 -> 10.47; 8.1 %: 89.53.
# 8.1 %: 769.41 - 89.53 = 679.88, VAT 55.07028 -> 55.07; 0 %: 79.53.
# Gross 759.41 + 55.07 = 814.48 -> cash 0.05: 814.50.
QUOTE_TOTAL = "814.50"


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _post(url: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json",
                                          "user-agent": "Test-Browser/1.0"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _invoice(e, n: int) -> dict:
    return billing_ops.invoice(e, None, n)


def test_job_through_every_state(site_db, server, smtp, job_spec, tmp_path) -> None:
    e = site_db
    port, inbox = smtp
    script = tmp_path / "lookup.py"
    script.write_text(LOOKUP)
    ops.import_settings(e, None, {
        "link_base": server, "smtp": {"host": "127.0.0.1", "port": port,
                                      "sender": "auftraege@linden.example",
                                      "starttls": False},
        "lookup": {"command": [sys.executable, str(script)]}})
    assert ops.import_job(e, None, job_spec)["state"] == "draft"
    v = ops.show(e, None, "J-2026-001")
    assert [(o["order"], o["blocked"]) for o in v["orders"]] == [("WO-1", True),
                                                                ("PO-7", True)]
    assert v["orders"][0]["why"] == "waiting for the customer to accept the quote"

    today = date.today()  # the link expires with the quote: quoted today
    q = ops.quote(e, None, "J-2026-001", today)
    assert (q["total_due"], q["valid_until"]) == (
        QUOTE_TOTAL, (today + timedelta(days=30)).isoformat())
    (msg,) = inbox.messages
    assert msg["To"] == "buchhaltung@mueller.example"
    body = msg.get_body(("plain",)).get_content()
    link = re.search(r"http://\S+/jobs/accept\?t=\S+", body).group(0)
    assert link == q["link"]
    (pdf,) = [p for p in msg.iter_attachments() if p.get_filename() == "offerte-J-2026-001.pdf"]
    assert pdf.get_content()[:5] == b"%PDF-"
    quote_doc = _quote_lines(e)
    assert quote_doc == [("WO-1/montage", "3.6", "414.00", "8.1"),
                         ("WO-1/ibn", "0.6", "108.00", "8.1"),
                         ("PO-7/kasten", "0.6", "247.41", "8.1"),
                         ("PO-7/gebuehr", "0.6", "90.00", "0"),
                         ("deduction/0", "1", "-10.47", "0"),
                         ("deduction/8.1", "1", "-89.53", "8.1")]
    assert ops.show(e, None, "J-2026-001")["orders"][0]["blocked"] is True  # still

    # the customer opens the link and accepts: who, when, from where
    code, page = _get(link)
    assert code == 200 and QUOTE_TOTAL in page and "Müller Immobilien AG" in page
    code, r = _post(link, {"name": "Anna Müller"})
    assert (code, r["state"]) == (200, "accepted")
    assert _post(link, {"name": "Anna Müller"})[0] == 403  # the token worked once
    assert _get(link)[0] == 403
    v = ops.show(e, None, "J-2026-001")
    assert (v["acceptance"]["name"], v["acceptance"]["from"], v["acceptance"]["agent"]) == (
        "Anna Müller", "127.0.0.1", "Test-Browser/1.0")
    assert v["accounting_id"] == "DEB-MIA"  # from the lookup hook
    assert [o["blocked"] for o in v["orders"]] == [False, False]
    assert [x["state"] for x in v["orders"][0]["history"]] == ["draft", "quote_sent",
                                                              "accepted"]

    # actual costs differ: Montage 8 h instead of 6, and 57.20 of extra material
    spec = json.loads(json.dumps(job_spec))
    spec["orders"][0]["lines"][0]["quantity"] = "8"
    spec["orders"][1]["lines"].append({"id": "extra", "description": "Zusatzmaterial",
                                       "quantity": "1", "unit_price": "57.20", "vat": "8.1"})
    ops.import_job(e, None, spec)
    r = ops.invoice(e, None, "J-2026-001", "change", date(2026, 9, 10))
    # customer, actual minus quote: Montage 920.00 x 0.6 = 552.00 - 414.00 = 138.00 (1.2 h);
    # Zusatzmaterial 57.20 x 0.6 = 34.32; the deduction over the new net 1031.73:
    # 0 %: 100 x 90 / 1031.73 = 8.7232 -> 8.72 (was 10.47: +1.75); 8.1 %: 91.28 (-1.75).
    # 8.1 %: 138.00 + 34.32 - 1.75 = 170.57, VAT 13.81617 -> 13.82; 0 %: 1.75.
    # Gross 172.32 + 13.82 = 186.14 -> 186.15.
    # Grid operator (40 %): Montage 368.00 - 276.00 = 92.00; Zusatzmaterial 57.20 - 34.32 =
    # 22.88; 8.1 %: 114.88, VAT 9.30528 -> 9.31; gross 124.19 -> 124.20.
    assert [(i["party"], i["total_due"]) for i in r["invoices"]] == [
        ("mueller", "186.15"), ("ewz", "124.20")]
    change = _invoice(e, r["invoices"][0]["invoice"])
    assert [(ln["job_key"], ln["quantity"], ln["amount"], ln["vat_rate"])
            for ln in change["document"]["lines"]] == [
        ("WO-1/montage", "1.2", "138.00", "8.1"), ("PO-7/extra", "0.6", "34.32", "8.1"),
        ("deduction/0", "0", "1.75", "0"), ("deduction/8.1", "0", "-1.75", "8.1")]
    assert change["document"]["title"] == "Nachtragsrechnung"
    assert ops.show(e, None, "J-2026-001")["state"] == "accepted"

    r = ops.invoice(e, None, "J-2026-001", "final", date(2026, 9, 30))
    # customer: everything not billed yet = the quote's lines again (679.88 at 8.1 %,
    # 79.53 at 0 %): gross 814.48 -> 814.50. In all 186.14 + 814.48 = 1000.62 gross,
    # the actual costs' (8.1 %: 941.73 - 91.28 = 850.45, VAT 68.886 -> 68.89; 0 %: 81.28).
    # Grid: 276.00 + 72.00 + 164.94 = 512.94 at 8.1 % (VAT 41.54814 -> 41.55) + 60.00 at
    # 0 %: gross 614.49 -> 614.50.
    assert [(i["party"], i["total_due"]) for i in r["invoices"]] == [
        ("mueller", "814.50"), ("ewz", "614.50")]
    assert ops.show(e, None, "J-2026-001")["state"] == "invoice_sent"
    assert len(inbox.messages) == 1 + 4  # the quote, then each invoice to its party
    with pytest.raises(ops.JobError, match="invoice_sent"):
        ops.invoice(e, None, "J-2026-001", "final", date(2026, 9, 30))

    # the export's numbers are the documents'
    rows = list(csv.DictReader(io.StringIO(ops.export(e, None, "csv"))))
    numbers = sorted({int(x["invoice"]) for x in rows})
    assert len(numbers) == 4
    for n in numbers:
        d = _invoice(e, n)["document"]
        mine = [x for x in rows if int(x["invoice"]) == n]
        assert [x["amount"] for x in mine] == [ln["amount"] for ln in d["lines"]]
        assert {x["total_due"] for x in mine} == {d["total_due"]}
        assert {x["net_total"] for x in mine} == {d["net_total"]}
        assert sum(Decimal(x["amount"]) for x in mine) == Decimal(d["net_total"])
    assert {x["accounting_id"] for x in rows if x["party"] == "mueller"} == {"DEB-MIA"}
    js = json.loads(ops.export(e, None, "json"))
    assert js["format"] == "sitegate-jobs-export/1"
    assert [i["total_due"] for i in js["invoices"]] == ["186.15", "124.20", "814.50",
                                                          "614.50"]

    # paid: every invoice settled
    for n in numbers[:-1]:
        billing_ops.act(e, None, n, "pay", date(2026, 10, 5),
                        amount=_invoice(e, n)["total_due"])
    assert ops.show(e, None, "J-2026-001")["state"] == "invoice_sent"
    billing_ops.act(e, None, numbers[-1], "pay", date(2026, 10, 6), amount="614.50")
    v = ops.show(e, None, "J-2026-001")
    assert v["state"] == "paid"
    assert [x["state"] for x in v["events"]][-2:] == ["invoice_sent", "paid"]


def _quote_lines(e) -> list[tuple]:
    with e.connect() as conn:
        from sitegate.cloud.store import jobs as store

        q = json.loads(store.job(conn, "lindenweg-12", "J-2026-001")["quote"])
    return [(ln["job_key"], ln["quantity"], ln["amount"], ln["vat_rate"])
            for ln in q["document"]["lines"]]


def test_prepayment_blocks_work_until_paid(site_db, job_spec) -> None:
    e = site_db
    ops.import_settings(e, None, {"link_base": "https://billing.example"})
    spec = {**job_spec, "block": "until_prepaid", "prepayment_percent": "30",
            "deduction": {"mode": "threshold", "amount": "500"}}
    ops.import_job(e, None, spec)
    q = ops.quote(e, None, "J-2026-001", date.today(), send=False)
    # threshold 500: the customer's net 859.41 is above it, so charged in full:
    # 8.1 %: 769.41, VAT 62.32221 -> 62.32; 0 %: 90.00; gross 921.73 -> 921.75
    assert q["total_due"] == "921.75"
    token = q["link"].split("t=", 1)[1]
    r = ops.accept(e, token, "Anna Müller", "192.0.2.7", "curl")
    # prepayment 30 % of each quoted line: 124.20 + 32.40 + 74.22 (247.41 x 0.3 = 74.223)
    # + 27.00; 8.1 %: 230.82, VAT 18.69642 -> 18.70; 0 %: 27.00; gross 276.52 -> 276.50
    pre = _invoice(e, r["prepayment"])
    assert (pre["document"]["title"], pre["state"], pre["total_due"]) == (
        "Vorauszahlungsrechnung", "issued", "276.50")
    v = ops.show(e, None, "J-2026-001")
    assert (v["orders"][0]["blocked"], v["orders"][0]["why"]) == (
        True, "waiting for the prepayment")
    billing_ops.act(e, None, r["prepayment"], "pay", date(2026, 8, 10), amount="276.50")
    assert ops.show(e, None, "J-2026-001")["orders"][0]["blocked"] is False
    # the final invoice bills the rest of the net: 8.1 %: 769.41 - 230.82 = 538.59, VAT
    # 43.62579 -> 43.63; 0 %: 90.00 - 27.00 = 63.00; gross 645.22 -> 645.20. (VAT is
    # rounded per invoice: 18.70 + 43.63 = 62.33, one centime above the quote's 62.32.)
    fin = ops.invoice(e, None, "J-2026-001", "final", date(2026, 9, 1), send=False)
    cust = _invoice(e, fin["invoices"][0]["invoice"])["document"]
    assert (cust["net_total"], cust["vat_total"], cust["total_due"]) == (
        "601.59", "43.63", "645.20")
    assert Decimal(cust["net_total"]) + Decimal(pre["document"]["net_total"]) == \
        Decimal("859.41")


def test_threshold_charges_nothing_below_it(site_db, job_spec) -> None:
    from sitegate.cloud.jobs.amounts import parts
    from sitegate.cloud.jobs.model import parse_job

    spec = parse_job({**job_spec, "deduction": {"mode": "threshold", "amount": "900"}})
    p = parts(spec)
    assert sum(x.amount for x in p["mueller"].values()) == 0  # 859.41 < 900: nothing
    assert sum(x.amount for x in p["ewz"].values()) == Decimal("572.94")  # 40 %: unchanged


def test_cancel_and_bad_input(site_db, server, job_spec) -> None:
    from sitegate.cloud.billing.sitemodel import SiteModelError

    e = site_db
    ops.import_settings(e, None, {"link_base": server})
    ops.import_job(e, None, job_spec)
    q = ops.quote(e, None, "J-2026-001", date.today(), send=False)
    with pytest.raises(ops.JobError, match="no \\[smtp\\]"):
        ops.quote(e, None, "J-2026-001", date.today())
    assert ops.cancel(e, None, "J-2026-001")["state"] == "cancelled"
    assert _get(q["link"])[0] == 403
    assert _post(q["link"], {"name": "x"})[0] == 403
    assert _get(q["link"].split("?")[0])[0] == 403  # no token at all
    v = ops.show(e, None, "J-2026-001")
    assert v["orders"][0]["why"] == "the job is cancelled"
    bad = {**job_spec, "id": "J2", "parties": [{**job_spec["parties"][0], "share": "70"},
                                               job_spec["parties"][1]]}
    bad["orders"] = [{**job_spec["orders"][0], "lines": [
        {**job_spec["orders"][0]["lines"][0], "vat": "abc"}]}]
    with pytest.raises(SiteModelError) as exc:
        ops.import_job(e, None, bad)
    assert exc.value.errors == ["orders[0].lines[0].vat: Input should be a valid decimal"]
    bad["orders"] = job_spec["orders"]
    with pytest.raises(SiteModelError) as exc:
        ops.import_job(e, None, bad)
    assert exc.value.errors == ["parties: shares add up to 110 %, not 100 %"]


def test_operator_routes(site_db, server, job_spec) -> None:
    from sitegate.cloud.auth import tokens
    from sitegate.cloud.auth.scopes import Scope

    office, _ = tokens.create(site_db, "office", frozenset(Scope))
    reader, _ = tokens.create(site_db, "reader", frozenset({Scope.READ, Scope.MONEY_READ}))

    def call(method: str, path: str, body=None, token=office):
        req = urllib.request.Request(
            server + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"authorization": f"Bearer {token}",
                     "content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, json.loads(raw) if "json" in r.headers["content-type"] \
                    else raw
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    site = "/jobs/lindenweg-12"
    assert call("PUT", f"{site}/settings", {"link_base": server}, reader)[0] == 403
    assert call("PUT", f"{site}/settings", {"link_base": server})[0] == 200
    code, r = call("PUT", f"{site}/jobs", {**job_spec, "parties": []})
    assert code == 422 and "parties" in r["detail"]["errors"][0]
    assert call("PUT", f"{site}/jobs", job_spec)[1]["state"] == "draft"
    code, r = call("POST", f"{site}/jobs/J-2026-001/quote",
                   {"date": date.today().isoformat(), "send": False})
    assert (code, r["total_due"]) == (200, QUOTE_TOTAL)
    code, pdf = call("GET", f"{site}/jobs/J-2026-001/quote.pdf", token=reader)
    assert code == 200 and pdf[:5] == b"%PDF-"
    code, r = call("POST", f"{site}/jobs/J-2026-001/invoice",
                   {"stage": "final", "date": "2026-09-30"})
    assert code == 409 and "quote_sent" in r["detail"]
    assert call("GET", f"{site}/jobs/J-2026-001", token=reader)[1]["state"] == "quote_sent"
    assert call("POST", f"{site}/jobs/J-2026-001/cancel")[1]["state"] == "cancelled"
    code, r = call("GET", f"{site}/export?format=json", token=reader)
    assert (code, r["invoices"]) == (200, [])
