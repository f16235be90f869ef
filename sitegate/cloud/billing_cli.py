"""``sitegate-cloud site|bill|invoice|export``: the billing part of the cloud CLI."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from sitegate.cloud.billing import manual, ops
from sitegate.cloud.billing.explain import explain_text
from sitegate.cloud.billing.ledger import LifecycleError, parse_line_spec
from sitegate.cloud.billing.periods import FORMS
from sitegate.cloud.billing.sitemodel import SiteModelError, load_site
from sitegate.cloud.billing.sites import NotFound
from sitegate.cloud.cli_options import common as _common
from sitegate.cloud.cli_options import guard, to_output, write_file
from sitegate.cloud.store.db import NotReady, open_db
from sitegate.common.output import emit, table
from sitegate.common.progress import Progress

PERIOD_HELP = f"billing period: {FORMS}"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("site", help="site model: import a TOML file, show")
    ss = p.add_subparsers(dest="site_cmd", required=True)
    q = ss.add_parser("import", help="validate and import a site file (TOML)")
    q.add_argument("file")
    _common(q, site=False)
    q.set_defaults(func=cmd_site_import)
    q = ss.add_parser("show", help="the stored site model as JSON")
    _common(q)
    q.set_defaults(func=cmd_site_show)

    p = sub.add_parser("bill", help="compute draft invoices of a site for a period")
    _common(p)
    p.add_argument("--period", required=True, help=PERIOD_HELP)
    p.add_argument("--interim", action="store_true",
                   help="bill a period that has not ended yet (the invoices say interim)")
    p.set_defaults(func=cmd_bill)

    p = sub.add_parser("invoice", help="invoices: list, show, lifecycle, explain, pdf")
    ss = p.add_subparsers(dest="invoice_cmd", required=True)
    q = ss.add_parser("list", help="invoices of a site (optionally one period)")
    _common(q)
    q.add_argument("--period", help=PERIOD_HELP)
    q.set_defaults(func=cmd_list)
    q = ss.add_parser("overview", help="amount, collected, balance and counts per period")
    _common(q)
    q.add_argument("--period", help=PERIOD_HELP)
    q.set_defaults(func=cmd_overview)
    q = ss.add_parser("late", help="readings received after their period was invoiced")
    _common(q)
    q.add_argument("--period", help=PERIOD_HELP)
    q.set_defaults(func=cmd_late)
    for name in ("show", "explain"):
        q = ss.add_parser(name, help=f"{name} one invoice")
        _common(q)
        q.add_argument("number", type=int)
        q.set_defaults(func=cmd_show if name == "show" else cmd_explain)
    q = ss.add_parser("pdf", help="write the invoice PDF with its QR-bill")
    _common(q)
    q.add_argument("number", type=int)
    q.add_argument("-o", "--output", help="file (default: invoice-<site>-<number>.pdf)")
    q.set_defaults(func=cmd_pdf)
    for action in ops.ACTIONS:
        q = ss.add_parser(action, help=f"{action} an invoice")
        _common(q)
        q.add_argument("number", type=int)
        q.add_argument("--date", type=date.fromisoformat, help="business date (default today)")
        if action == "pay":
            q.add_argument("amount")
            q.add_argument("--note")
        if action == "credit":
            q.add_argument("--line", action="append", dest="lines", metavar="N[:QTY]",
                           type=_line_spec,
                           help="credit line N (all that is left of it) or QTY of its unit; "
                                "repeat for more lines (default: the whole invoice)")
            q.add_argument("--net", help="net amount to credit instead of lines")
            q.add_argument("--vat", help="VAT rate of the credited amount (default: the "
                                         "invoice's first line)")
            q.add_argument("--label")
        q.set_defaults(func=cmd_action, action=action)

    p = sub.add_parser("export", help="CSV/JSON export of invoices or consumptions")
    _common(p)
    p.add_argument("--period", help=PERIOD_HELP)
    p.add_argument("--what", choices=("invoices", "consumption"), default="invoices")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_export)


def _line_spec(text: str) -> tuple[int, str | None]:
    try:
        return parse_line_spec(text)
    except LifecycleError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# one clear line (exit 2) for bad input; never a traceback
_guard = guard(SiteModelError, NotFound, LifecycleError, ValueError, OSError, NotReady)


@_guard
def cmd_site_import(args: argparse.Namespace) -> int:
    res = ops.import_site(open_db(args.db, migrate=True), load_site(args.file))
    emit(res, args.json, f"site {res['site']} {'replaced' if res['replaced'] else 'imported'}"
                          f": {res['billing_points']} billing points, {res['accounts']} "
                          f"accounts, {res['meters']} meters")
    return 0


@_guard
def cmd_site_show(args: argparse.Namespace) -> int:
    from sitegate.cloud.billing.sitemodel import site_to_json

    emit(site_to_json(ops.site_model(open_db(args.db), args.site)), True)
    return 0


@_guard
def cmd_bill(args: argparse.Namespace) -> int:
    progress = Progress(f"billing {args.period}")
    try:
        r = ops.run_bill(open_db(args.db), args.site, args.period, args.interim,
                         lambda share, what: progress.update(share, 1, what))
    finally:
        progress.close()
    s = r["summary"]
    interim = " (interim)" if r["interim"] else ""
    text = [f"site {r['site']} {r['period']}{interim}: created {r['created']}, "
            f"updated {r['updated']}, "
            f"unchanged {r['unchanged']}; total {s['amount_total']}",
            "energy kWh: " + ", ".join(f"{k} {'unknown' if v is None else v}"
                                       for k, v in s["energy_kwh"].items())]
    for d in r["issued_differs"]:
        text.append(f"  invoice {d['number']} ({d['state']}) would now be {d['now']} instead of "
                    f"{d['issued_total']}: not changed; see 'invoice late', issue a credit note")
    kinds: dict[str, int] = {}
    for i in s["issues"]:
        kinds[i["kind"]] = kinds.get(i["kind"], 0) + 1
    if kinds:
        text.append("issues: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
                    + " (--json for details)")
    emit(r, args.json, "\n".join(text))
    return 0


@_guard
def cmd_list(args: argparse.Namespace) -> int:
    rows = ops.invoices(open_db(args.db), args.site, args.period)
    emit(rows, args.json, table(
        [[v["number"], v["kind"], v["account"], v["period"], v["state"],
          f"R{v['reminder_level']}" if v["reminder_level"] else "", v["total_due"],
          v["balance"], v["due_date"]] for v in rows],
        ["no", "kind", "account", "period", "state", "rem", "total", "balance", "due"]))
    return 0


@_guard
def cmd_overview(args: argparse.Namespace) -> int:
    ov = ops.overview(open_db(args.db), args.site, args.period)
    shown = {**ov, "period": ov["period"] or "all periods"}
    emit(ov, args.json, "\n".join(f"{k:12} {v}" for k, v in shown.items()))
    return 0


@_guard
def cmd_late(args: argparse.Namespace) -> int:
    rows = ops.late_report(open_db(args.db), args.site, args.period)
    emit(rows, args.json, table(
        [[r["period"], r["meter"], r["count"], r["first"], ",".join(r["invoices"])]
         for r in rows], ["period", "meter", "late readings", "first", "invoices"])
        if rows else "no late readings")
    return 0


def _view_text(v: dict[str, Any]) -> str:
    d = v["document"]
    interim = "  INTERIM" if d.get("interim") else ""
    out = [f"{v['kind']}{interim} {v['number']}  {v['account_name']} ({v['account']})  "
           f"{v['period']}  "
           f"{v['state']}  due {v['due_date']}  total {v['total_due']}  balance {v['balance']}"]
    out += [f"  {ln['n']:>2}. {ln['label']:<28} {ln['quantity']:>12} {ln['unit']:<7} "
            f"{ln['unit_price']:>8} {ln['amount']:>10}  {ln['vat_rate']}%"
            + ("  estimated" if ln.get("estimated") else "") for ln in d["lines"]]
    out.append(f"  net {d['net_total']}  VAT {d['vat_total']}  advances {d['advances']}  "
               f"rounding {d['rounding']}  due {d['total_due']}")
    out += [f"  {e['date']} {e['kind']} {e['amount'] or ''} {e['note'] or ''}".rstrip()
            for e in v["events"]]
    return "\n".join(out)


@_guard
def cmd_show(args: argparse.Namespace) -> int:
    v = ops.invoice(open_db(args.db), args.site, args.number)
    emit(v, args.json, _view_text(v))
    return 0


@_guard
def cmd_explain(args: argparse.Namespace) -> int:
    e = ops.explain_invoice(open_db(args.db), args.site, args.number)
    emit(e, args.json, explain_text(e))
    return 0


@_guard
def cmd_pdf(args: argparse.Namespace) -> int:
    engine = open_db(args.db)
    data = ops.pdf(engine, args.site, args.number)
    site = ops.site_model(engine, args.site).site.id
    write_file(Path(args.output or f"invoice-{site}-{args.number}.pdf"), data, args.json)
    return 0


@_guard
def cmd_action(args: argparse.Namespace) -> int:
    r = ops.act(open_db(args.db), args.site, args.number, args.action, args.date,
                amount=getattr(args, "amount", None) or getattr(args, "net", None),
                vat=getattr(args, "vat", None), label=getattr(args, "label", None),
                note=getattr(args, "note", None), lines=getattr(args, "lines", None))
    if "credit_note" in r:
        emit(r, args.json, _view_text(r["credit_note"]) + "\n" + _view_text(r["invoice"]))
    else:
        emit(r, args.json, _view_text(r))
    return 0


@_guard
def cmd_export(args: argparse.Namespace) -> int:
    text = ops.export(open_db(args.db), args.site, args.period, args.what, args.format)
    to_output(text, args.output)
    return 0


def add_import_options(p: argparse.ArgumentParser) -> None:
    """``sitegate-cloud readings import FILE``'s options (the readings command is the
    ingest CLI's; it hands ``import`` over here)."""
    p.add_argument("--site", help="site id (optional when the database holds one site)")
    p.add_argument("--by", dest="entered_by", help="import: who entered the readings")
    p.add_argument("--source", default="manual",
                   help="import: where rows without a source column come from (manual, "
                        "utility, photo, ...)")


def cmd_readings_import(args: argparse.Namespace) -> int:
    """CSV (meter,quantity,timestamp,value,unit,source,note) or JSON readings, all or
    nothing; every problem is listed, one a line."""
    if not args.file or not args.entered_by:
        sys.stderr.write("error: readings import needs FILE and --by NAME (who entered "
                         "them)\n")
        return 2
    try:
        data = Path(args.file).read_bytes()
        r = ops.import_readings(open_db(args.db), args.site, Path(args.file).name, data,
                                args.entered_by, args.source)
    except manual.ImportError_ as exc:
        sys.stderr.write("".join(f"error: {p}\n" for p in exc.problems)
                         + "nothing imported\n")
        return 2
    except (NotFound, OSError, NotReady) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    emit(r, args.json, "\n".join([f"imported {r['imported']} readings from {r['file']} "
                                  f"({r['skipped']} already there)", *r["notes"]]))
    return 0
