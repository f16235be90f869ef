"""``sitegate-cloud expense`` (also ``statements``): accounting periods, their invoices and
advances, the statement run, statements (show, explain, PDF) and the consumption export;
received invoices per billing meter and their distribution down the site's hierarchy."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from sitegate.cloud.billing_cli import _guard  # one clear line and exit 2, as billing's
from sitegate.cloud.cli_options import bounded, command, to_output, write_file
from sitegate.cloud.expense import ops
from sitegate.cloud.expense.explain import explain_text
from sitegate.cloud.store.db import open_db
from sitegate.common.output import emit, table

MAX_FILE = 1024 * 1024  # a period definition is a few KB


def _add(ss: Any, name: str, help: str, func: Any, period: bool = True) -> Any:
    q = command(ss, name, help, func)
    if period:
        q.add_argument("period", help="the accounting period's id")
    return q


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("expense", aliases=["statements"],
                       help="expense statements: heating, water and ancillary costs")
    ss = p.add_subparsers(dest="expense_cmd", required=True)

    q = ss.add_parser("period", help="accounting periods: create (from a file), show, list")
    ps = q.add_subparsers(dest="period_cmd", required=True)
    r = _add(ps, "create", "create or replace a period from its TOML/JSON definition",
             cmd_period_create, period=False)
    r.add_argument("file")
    _add(ps, "show", "a period: definition, invoices, advances", cmd_period_show)
    _add(ps, "list", "the site's periods", cmd_period_list, period=False)

    q = ss.add_parser("invoice", help="the period's general invoices per cost category")
    ins = q.add_subparsers(dest="invoice_cmd", required=True)
    r = _add(ins, "add", "add an invoice to a category", cmd_invoice_add)
    r.add_argument("--category", required=True)
    r.add_argument("--amount", required=True, help="the amount (2 decimals)")
    r.add_argument("--quantity", help="fuel quantity (a combined boiler needs it)")
    r.add_argument("--unit", help="its unit: l (oil), kWh, m³ (gas), kg (pellets)")
    r.add_argument("--date", type=date.fromisoformat, help="invoice date")
    r.add_argument("--supplier")
    r.add_argument("--note")
    r.add_argument("--by", dest="entered_by", required=True, help="who entered it")

    r = _add(ss, "advances", "advance payments: set one (--account, --billing-point, "
             "--amount) or list them", cmd_advances)
    r.add_argument("--account")
    r.add_argument("--billing-point")
    r.add_argument("--amount")

    r = _add(ss, "run", "compute the period's statements (drafts; re-run rewrites drafts)",
             cmd_run)
    r.add_argument("--date", type=date.fromisoformat,
                   help="today, for the 'period has ended' check (default: today)")
    r = _add(ss, "show", "the statements of a period, one account's, or the site's "
             "overall statement (--overall)", cmd_show)
    r.add_argument("--account")
    r.add_argument("--overall", action="store_true", help="the owner's overall statement")
    r = _add(ss, "explain", "one account's statement with its calculation", cmd_explain)
    r.add_argument("--account", required=True)
    r = _add(ss, "pdf", "one account's statement as PDF, or the owner's overall statement "
             "(--overall)", cmd_pdf)
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--account")
    who.add_argument("--overall", action="store_true")
    r.add_argument("-o", "--output", help="file (default statement-<period>-<account>.pdf)")
    r = _add(ss, "export", "consumptions per unit and category", cmd_export)
    r.add_argument("--format", choices=("csv", "json"), default="csv")
    r.add_argument("-o", "--output")

    r = _add(ss, "reconcile", "a service charge over the units by type: other (equal "
             "shares), water (by every unit's water meter)", cmd_reconcile, period=False)
    r.add_argument("--type", dest="kind", required=True, choices=("other", "water", "heating"))
    r.add_argument("--amount", required=True)
    r.add_argument("--from", dest="first", required=True, type=date.fromisoformat)
    r.add_argument("--to", dest="end", required=True, type=date.fromisoformat,
                   help="end (exclusive)")
    r.add_argument("--target", action="append", dest="targets",
                   help="a billing point (repeat; default: every unit)")

    q = ss.add_parser("hierarchy", help="the site's hierarchy for received invoices")
    hs = q.add_subparsers(dest="hierarchy_cmd", required=True)
    r = _add(hs, "set", "set it from a TOML/JSON file (nodes with parent and meters)",
             cmd_hierarchy_set, period=False)
    r.add_argument("file")

    q = ss.add_parser("received", help="invoices received per billing meter")
    rs = q.add_subparsers(dest="received_cmd", required=True)
    r = _add(rs, "add", "record a received invoice", cmd_received_add, period=False)
    r.add_argument("--meter", required=True)
    r.add_argument("--from", dest="first", required=True, type=date.fromisoformat)
    r.add_argument("--to", dest="end", required=True, type=date.fromisoformat,
                   help="end of its period (exclusive)")
    r.add_argument("--amount", required=True)
    r.add_argument("--consumption", required=True, help="as invoiced (kWh, m³)")
    r.add_argument("--note")
    r.add_argument("--by", dest="entered_by", required=True)
    r = _add(rs, "list", "received invoices (per meter) and overcharge alerts",
             cmd_received_list, period=False)
    r.add_argument("--meter")
    r = _add(rs, "distribute", "one invoice down the hierarchy by metered consumption",
             cmd_received_distribute, period=False)
    r.add_argument("id", type=int)
    r.add_argument("--date", type=date.fromisoformat, help="today (default: today)")


@_guard
def cmd_period_create(args: argparse.Namespace) -> int:
    res = ops.create_period(open_db(args.db), args.site, *_read(args.file))
    emit(res, args.json, f"period {res['period']} {'replaced' if res['replaced'] else 'created'}"
                         f" ({res['from']} .. {res['to']}, {res['profile']}): "
                         f"{', '.join(res['categories'])}")
    return 0


@_guard
def cmd_period_show(args: argparse.Namespace) -> int:
    r = ops.show_period(open_db(args.db), args.site, args.period)
    head = r["spec"]["period"]
    text = [f"period {r['period']} {head['from']} .. {head['to']} ({head['profile']}), "
            f"last run {r['last_run'] or 'never'}"]
    text += [f"  {k:<16} {v}" for k, v in r["category_totals"].items()]
    text.append(table([[c["id"], c["category"], c["amount"], c["quantity"] or "",
                        c["unit"] or "", c["invoice_date"] or "", c["supplier"]]
                       for c in r["costs"]],
                      ["id", "category", "amount", "quantity", "unit", "date", "supplier"]))
    emit(r, args.json, "\n".join(text))
    return 0


@_guard
def cmd_period_list(args: argparse.Namespace) -> int:
    rows = ops.list_periods(open_db(args.db), args.site)
    emit(rows, args.json, table([[r["period"], r["from"], r["to"], r["profile"],
                                  "yes" if r["run"] else ""] for r in rows],
                                ["period", "from", "to (excl.)", "profile", "run"]))
    return 0


@_guard
def cmd_invoice_add(args: argparse.Namespace) -> int:
    r = ops.add_cost(open_db(args.db), args.site, args.period, args.category, args.amount,
                     args.entered_by, args.quantity, args.unit, args.date, args.supplier,
                     args.note)
    emit(r, args.json, f"invoice {r['id']}: {r['amount']} to {r['category']} of period "
                       f"{r['period']}")
    return 0


@_guard
def cmd_advances(args: argparse.Namespace) -> int:
    given = [args.account, args.billing_point, args.amount]
    engine = open_db(args.db)
    if any(given):
        if not all(given):
            raise ValueError("setting an advance needs --account, --billing-point and --amount")
        r = ops.set_advance(engine, args.site, args.period, args.account, args.billing_point,
                            args.amount)
    else:
        r = ops.show_period(engine, args.site, args.period)
    emit(r["advances"], args.json, table([[a["account"], a["billing_point"], a["amount"]]
                                          for a in r["advances"]],
                                         ["account", "billing point", "advances"]))
    return 0


@_guard
def cmd_run(args: argparse.Namespace) -> int:
    r = ops.run_statements(open_db(args.db), args.site, args.period, args.date)
    text = [f"period {r['period']}: costs {r['total_costs']}; statements "
            + ", ".join(f"{a} no. {n}" for a, n in r["statements"].items()),
            f"created {r['created']}, updated {r['updated']}, unchanged {r['unchanged']}"]
    for d in r["issued_differs"]:
        text.append(f"  statement {d['number']} ({d['state']}) would now be {d['now']} "
                    f"instead of {d['issued_total']}: not changed; credit it and run again")
    text += [f"  note: {n}" for n in r["notes"]]
    if r["issues"]:
        text.append(f"  {len(r['issues'])} reading issues (--json for details)")
    emit(r, args.json, "\n".join(text))
    return 0


def _overall_text(s: dict[str, Any]) -> str:
    out = [f"{s['site_name']}: period {s['period']} {s['from']} .. {s['to']} ({s['profile']}),"
           f" costs {s['total_costs']} {s['currency']}"]
    for c in s["categories"]:
        out.append(f"  {c['label']} ({c['id']}): {c['total']}")
        for p in c["parts"]:
            out.append(f"    {p['part']} by {p['key']} over {p['key_total']} {p['unit']}: "
                       + ", ".join(f"{u} {a}" for u, a in p["units"].items()))
    for a, v in s["accounts"].items():
        out.append(f"  {a} ({v['name']}): {v['total']} - advances {v['advances']} = "
                   f"{v['balance']}")
    out += [f"  note: {n}" for n in s["notes"]]
    return "\n".join(out)


@_guard
def cmd_show(args: argparse.Namespace) -> int:
    engine = open_db(args.db)
    if args.overall:
        s = ops.site_statement(engine, args.site, args.period)
        emit(s, args.json, _overall_text(s))
    elif args.account:
        v = ops.statement(engine, args.site, args.period, args.account)
        emit(v, args.json, explain_text(ops.explain(v)))
    else:
        rows = ops.statements(engine, args.site, args.period)
        emit(rows, args.json, table(
            [[v["number"], v["account"], v["account_name"], v["state"], v["total_due"],
              v["balance"]] for v in rows],
            ["no", "account", "name", "state", "due", "balance"]))
    return 0


@_guard
def cmd_explain(args: argparse.Namespace) -> int:
    e = ops.explain_statement(open_db(args.db), args.site, args.period, args.account)
    emit(e, args.json, explain_text(e))
    return 0


@_guard
def cmd_pdf(args: argparse.Namespace) -> int:
    engine = open_db(args.db)
    if args.overall:
        data = ops.site_pdf(engine, args.site, args.period)
    else:
        data = ops.pdf(engine, args.site, args.period, args.account)
    write_file(Path(args.output or f"statement-{args.period}-{args.account or 'overall'}.pdf"),
               data, args.json)
    return 0


@_guard
def cmd_export(args: argparse.Namespace) -> int:
    text = ops.export(open_db(args.db), args.site, args.period, args.format)
    if to_output(text, args.output):
        emit({"file": args.output}, args.json, f"wrote {args.output}")
    return 0


def _read(path: str) -> tuple[str, str]:
    """The file's name and its text (a period or hierarchy definition)."""
    return Path(path).name, bounded(path, MAX_FILE).read_text(encoding="utf-8")


@_guard
def cmd_hierarchy_set(args: argparse.Namespace) -> int:
    r = ops.set_hierarchy(open_db(args.db), args.site, *_read(args.file))
    emit(r, args.json, f"hierarchy of {r['site']}: {r['nodes']} nodes")
    return 0


@_guard
def cmd_received_add(args: argparse.Namespace) -> int:
    r = ops.add_received(open_db(args.db), args.site, args.meter, args.first, args.end,
                         args.amount, args.consumption, args.entered_by, args.note)
    emit(r, args.json, f"received invoice {r['id']}: {r['amount']} for meter {r['meter']}")
    return 0


@_guard
def cmd_received_list(args: argparse.Namespace) -> int:
    r = ops.list_received(open_db(args.db), args.site, args.meter)
    text = [table([[x["id"], x["meter"], x["first"], x["end"], x["amount"], x["consumption"],
                    x["note"]] for x in r["invoices"]],
                  ["id", "meter", "from", "to (excl.)", "amount", "consumption", "note"])]
    text += [f"ALERT invoice {a['id']} ({a['meter']}): unit price {a['unit_price']} is "
             f"{a['rise_percent']} % above the previous {a['previous_unit_price']} "
             f"(threshold {a['threshold_percent']} %)" for a in r["alerts"]]
    emit(r, args.json, "\n".join(text))
    return 0


def _tree_text(t: dict[str, Any], depth: int = 0) -> list[str]:
    out = [f"{'  ' * depth}{t['node']}: {t['amount']} for {t['consumption']}"]
    if "children" in t:
        for c in t["children"]:
            out += _tree_text(c, depth + 1)
        out.append(f"{'  ' * (depth + 1)}unmetered (losses, not charged): "
                   f"{t['unmetered_consumption']} = {t['unmetered_amount']}")
    return out


@_guard
def cmd_received_distribute(args: argparse.Namespace) -> int:
    r = ops.distribution(open_db(args.db), args.site, args.id, args.date)
    text = (r["reason"] if not r["distributed"] else "\n".join(_tree_text(r["tree"])))
    emit(r, args.json, f"received invoice {r['id']} ({r['meter']} {r['first']} .. "
                       f"{r['end']}, {r['amount']}): " + text)
    return 0


@_guard
def cmd_reconcile(args: argparse.Namespace) -> int:
    r = ops.reconcile_charge(open_db(args.db), args.site, args.kind, args.amount, args.first,
                             args.end, args.targets)
    emit(r, args.json, table([[t["target"], t["basis"], t["amount"]] for t in r["targets"]],
                             ["target", "basis", "amount"]))
    return 0
