"""``sitegate-cloud jobs``: quote-to-invoice jobs (settings, import, quote by e-mail,
change and final invoices, cancel, the orders' state, export for accounting)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from sitegate.cloud.billing.sitemodel import SiteModelError
from sitegate.cloud.billing.sites import NotFound
from sitegate.cloud.cli_options import command, guard, read_document, to_output, write_file
from sitegate.cloud.jobs import ops
from sitegate.cloud.jobs.lookup import LookupError_
from sitegate.cloud.jobs.mail import MailError
from sitegate.cloud.store.db import NotReady, open_db
from sitegate.common.output import emit, table

MAX_FILE = 1024 * 1024


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("jobs", help="quote-to-invoice jobs: quote, acceptance, invoices")
    ss = p.add_subparsers(dest="jobs_cmd", required=True)
    command(ss, "settings", "the site's jobs settings (TOML: link_base, [smtp], [lookup])",
            cmd_settings).add_argument("file")
    command(ss, "import", "a job (TOML or JSON): customer, parties and shares, deduction, "
            "orders with cost lines", cmd_import).add_argument("file")
    command(ss, "list", "every job and its state", cmd_list)
    command(ss, "show", "a job: state history, acceptance, orders, invoices",
            cmd_show).add_argument("job")
    q = command(ss, "quote", "send the quote (PDF) with its acceptance link", cmd_quote)
    q.add_argument("job")
    q.add_argument("--date", type=date.fromisoformat, help="quote date (default today)")
    q.add_argument("--no-mail", action="store_true",
                   help="send nothing: print the link to hand over")
    q = command(ss, "quote-pdf", "write the quote PDF", cmd_quote_pdf)
    q.add_argument("job")
    q.add_argument("-o", "--output", help="file (default: quote-<job>.pdf)")
    q = command(ss, "invoice", "a change invoice (what the actual costs add to the quote) "
                "or the final invoice (the rest)", cmd_invoice)
    q.add_argument("job")
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--change", action="store_const", const="change", dest="stage")
    g.add_argument("--final", action="store_const", const="final", dest="stage")
    q.add_argument("--date", type=date.fromisoformat, help="invoice date (default today)")
    q.add_argument("--no-mail", action="store_true", help="issue without e-mailing")
    command(ss, "cancel", "cancel a job before its final invoice", cmd_cancel).add_argument("job")
    q = command(ss, "export", "the jobs' invoices for accounting (CSV or JSON)", cmd_export)
    q.add_argument("--job")
    q.add_argument("--format", choices=("csv", "json"), default="csv")
    q.add_argument("-o", "--output")


_guard = guard(NotFound, ops.JobError, MailError, LookupError_, ValueError, OSError, NotReady,
               listed={SiteModelError: lambda exc, args: exc.errors})


@_guard
def cmd_settings(args: argparse.Namespace) -> int:
    r = ops.import_settings(open_db(args.db), args.site, read_document(args.file, MAX_FILE))
    emit(r, args.json, f"site {r['site']}: jobs settings stored")
    return 0


@_guard
def cmd_import(args: argparse.Namespace) -> int:
    r = ops.import_job(open_db(args.db), args.site, read_document(args.file, MAX_FILE))
    emit(r, args.json, f"job {r['job']} {'created' if r['created'] else 'updated'} "
                       f"({r['state']})")
    return 0


@_guard
def cmd_list(args: argparse.Namespace) -> int:
    rows = ops.jobs_list(open_db(args.db), args.site)
    emit(rows, args.json, table([[r["job"], r["state"], r["customer"], r["title"]]
                                 for r in rows], ["job", "state", "customer", "title"]))
    return 0


@_guard
def cmd_show(args: argparse.Namespace) -> int:
    v = ops.show(open_db(args.db), args.site, args.job)
    text = [f"job {v['job']} ({v['state']}): {v['title']}, {v['installation']}, "
            f"customer {v['customer']}"]
    if v["acceptance"]:
        a = v["acceptance"]
        text.append(f"  accepted by {a['name']} at {a['at']} from {a['from']}")
    for o in v["orders"]:
        text.append(f"  {o['kind']} order {o['order']}: "
                    + (f"BLOCKED ({o['why']})" if o["blocked"] else "released"))
    for e in v["events"]:
        text.append(f"  {e['at']}  {e['state']:<12} {e['note'] or ''}")
    for i in v["invoices"]:
        text.append(f"  invoice {i['invoice']} {i['stage']} {i['party']}: {i['state']}, "
                    f"{i['total_due']} (balance {i['balance']})")
    emit(v, args.json, "\n".join(text))
    return 0


@_guard
def cmd_quote(args: argparse.Namespace) -> int:
    r = ops.quote(open_db(args.db), args.site, args.job, args.date or date.today(),
                  send=not args.no_mail)
    emit(r, args.json, f"quote {r['job']}: {r['total_due']}, valid until {r['valid_until']}"
                       + ("; e-mailed" if r["message_id"] else f"; link: {r['link']}"))
    return 0


@_guard
def cmd_quote_pdf(args: argparse.Namespace) -> int:
    data = ops.quote_pdf(open_db(args.db), args.site, args.job)
    write_file(Path(args.output or f"quote-{args.job}.pdf"), data, args.json)
    return 0


@_guard
def cmd_invoice(args: argparse.Namespace) -> int:
    r = ops.invoice(open_db(args.db), args.site, args.job, args.stage,
                    args.date or date.today(), send=not args.no_mail)
    emit(r, args.json, table([[i["invoice"], i["party"], i["total_due"],
                               "yes" if i["mailed"] else "no"] for i in r["invoices"]],
                             ["invoice", "party", "total", "mailed"])
         + (f"\nnothing to bill: {', '.join(r['nothing_to_bill'])}"
            if r["nothing_to_bill"] else ""))
    return 0


@_guard
def cmd_cancel(args: argparse.Namespace) -> int:
    r = ops.cancel(open_db(args.db), args.site, args.job)
    emit(r, args.json, f"job {r['job']} cancelled")
    return 0


@_guard
def cmd_export(args: argparse.Namespace) -> int:
    text = ops.export(open_db(args.db), args.site, args.format, args.job)
    to_output(text, args.output)
    return 0
