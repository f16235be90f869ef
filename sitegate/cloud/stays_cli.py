"""``sitegate-cloud stays``: units import, reservations, readings (bulk per unit type),
check-out settlement and the run over all units, the guest's settlement document."""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sitegate.cloud.billing.sitemodel import SiteModelError
from sitegate.cloud.billing.sites import NotFound
from sitegate.cloud.cli_options import bounded, command, guard, read_document, write_file
from sitegate.cloud.stays import ops
from sitegate.cloud.stays.readings import BulkError
from sitegate.cloud.stays.setup import read_setup_file
from sitegate.cloud.store.db import NotReady, open_db
from sitegate.common.output import emit, table

MAX_FILE = 4 * 1024 * 1024


def _when(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--date", type=date.fromisoformat,
                   help="reading day (YYYY-MM-DD, taken at local noon; default now)")
    g.add_argument("--at", type=datetime.fromisoformat,
                   help="reading time (YYYY-MM-DDTHH:MM, site's local time unless an "
                        "offset is given)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("stays", help="stay settlements: units, reservations, readings, "
                                     "check-out")
    ss = p.add_subparsers(dest="stays_cmd", required=True)

    units = ss.add_parser("units", help="the accommodation setup: import, show")
    us = units.add_subparsers(dest="units_cmd", required=True)
    command(us, "import", "unit types, units with meters, categories, rates (TOML); replaces "
            "the site's setup", cmd_units_import).add_argument("file")
    command(us, "show", "the stored setup as JSON", cmd_units_show)

    res = ss.add_parser("reservations", help="reservations: import, list, status")
    rs = res.add_subparsers(dest="res_cmd", required=True)
    command(rs, "import", "parent reservations and stays (TOML [[reservations]] or JSON), "
            "new or changed by id", cmd_res_import).add_argument("file")
    command(rs, "list", "every reservation with its settlement", cmd_res_list)
    q = command(rs, "status", "set a reservation's status (check-in, cancel)", cmd_res_status)
    q.add_argument("reservation")
    q.add_argument("status", choices=("reserved", "checked_in", "checked_out", "cancelled"))

    rd = ss.add_parser("readings", help="unit meter readings: bulk, add, list")
    rds = rd.add_subparsers(dest="readings_cmd", required=True)
    q = command(rds, "bulk", "a list (CSV unit,meter,value[,start] or JSON) for the units of "
                "a type, checked and stored whole or not at all", cmd_bulk)
    q.add_argument("file")
    q.add_argument("--unit-type", help="every unit of the list must be of this type")
    q.add_argument("--by", required=True, dest="entered_by", help="who read the meters")
    _when(q)
    q = command(rds, "add", "one reading of a unit's meter", cmd_add)
    q.add_argument("unit")
    q.add_argument("meter")
    q.add_argument("value")
    q.add_argument("--start", action="store_true", help="a start value (a new meter, a reset)")
    q.add_argument("--by", required=True, dest="entered_by", help="who read the meter")
    _when(q)
    command(rds, "list", "the stored readings (of one unit)",
            cmd_readings_list).add_argument("--unit")

    q = command(ss, "checkout", "check a reservation out with its settlement", cmd_checkout)
    q.add_argument("reservation")
    q.add_argument("--date", type=date.fromisoformat, help="departure day (default today)")
    q.add_argument("--issue", action="store_true", help="issue the settlement at once")
    q = command(ss, "settle", "check out every unit's checked-in reservation of an eligible "
                "category; lists every unit skipped and why", cmd_settle)
    q.add_argument("--date", type=date.fromisoformat, help="departure day (default today)")
    q.add_argument("--unit-type", help="only the units of this type")
    q.add_argument("--issue", action="store_true", help="issue the settlements at once")
    q.add_argument("--dry-run", action="store_true", help="compute, store nothing")
    q = command(ss, "document", "the guest's settlement document (PDF, QR-bill)", cmd_document)
    q.add_argument("reservation")
    q.add_argument("-o", "--output", help="file (default: stay-<reservation>.pdf)")
    command(ss, "explain", "a settlement with the readings of each line",
            cmd_explain).add_argument("reservation")


# bad input: every problem on its own line
_guard = guard(NotFound, ops.StayError, ValueError, OSError, NotReady,
               listed={SiteModelError: lambda exc, args: exc.errors,
                       BulkError: lambda exc, args: exc.problems})


@_guard
def cmd_units_import(args: argparse.Namespace) -> int:
    r = ops.import_units(open_db(args.db), args.site, read_setup_file(args.file))
    emit(r, args.json, f"site {r['site']}: {r['unit_types']} unit types, {r['units']} units, "
                       f"{r['meters']} meters, {r['categories']} categories, {r['rates']} "
                       f"rates {'replaced' if r['replaced'] else 'imported'}")
    return 0


@_guard
def cmd_units_show(args: argparse.Namespace) -> int:
    emit(ops.setup(open_db(args.db), args.site), True)
    return 0


def _reservation_items(path: str) -> Any:
    doc = read_document(path, MAX_FILE)
    return doc.get("reservations") if isinstance(doc, dict) else doc


@_guard
def cmd_res_import(args: argparse.Namespace) -> int:
    r = ops.import_reservations(open_db(args.db), args.site, _reservation_items(args.file))
    emit(r, args.json, f"site {r['site']}: {r['created']} reservations created, "
                       f"{r['updated']} updated")
    return 0


@_guard
def cmd_res_list(args: argparse.Namespace) -> int:
    rows = ops.reservations(open_db(args.db), args.site)
    emit(rows, args.json, table(
        [[r["id"], r.get("parent") or "", r["unit"], r["status"], r["category"], r["from"],
          r["to"], r["deposit"], r["invoice"]] for r in rows],
        ["id", "parent", "unit", "status", "category", "from", "to", "deposit", "invoice"]))
    return 0


@_guard
def cmd_res_status(args: argparse.Namespace) -> int:
    r = ops.set_status(open_db(args.db), args.site, args.reservation, args.status)
    emit(r, args.json, f"reservation {r['id']} is {r['status']}")
    return 0


def _bulk_text(r: dict[str, Any]) -> str:
    rows = [[x["line"] or "", x["unit"], x["meter"], x["previous"] or "-", x["value"],
             "start" if x["start"] else (x["usage"] or "-")] for x in r["readings"]]
    return (f"stored {r['stored']} readings at {r['at']}\n"
            + table(rows, ["line", "unit", "meter", "last", "value", "usage"]))


@_guard
def cmd_bulk(args: argparse.Namespace) -> int:
    data = bounded(args.file, MAX_FILE).read_bytes()
    r = ops.enter_readings(open_db(args.db), args.site, Path(args.file).name, data,
                           args.entered_by, args.unit_type, args.date, args.at)
    emit(r, args.json, _bulk_text(r))
    return 0


@_guard
def cmd_add(args: argparse.Namespace) -> int:
    row = {"unit": args.unit, "meter": args.meter, "value": args.value,
           "start": "1" if args.start else ""}
    r = ops.enter_readings(open_db(args.db), args.site, "reading", json.dumps([row]).encode(),
                           args.entered_by, None, args.date, args.at, source="manual")
    emit(r, args.json, _bulk_text(r))
    return 0


@_guard
def cmd_readings_list(args: argparse.Namespace) -> int:
    rows = ops.unit_readings(open_db(args.db), args.site, args.unit)
    emit(rows, args.json, table(
        [[r["unit"], r["meter"], r["at"], r["value"], "start" if r["start"] else "",
          r["source"], r["entered_by"]] for r in rows],
        ["unit", "meter", "at", "value", "", "source", "by"]))
    return 0


def _settled_row(s: dict[str, Any]) -> list[Any]:
    return [s["reservation"], s["unit"], s["guest"], s["invoice"] or "-", s["state"],
            f"{s['from']}..{s['to']}", s["gross_total"], s["deposit"], s["total_due"],
            s["refund"]]


SETTLED_HEADER = ["reservation", "unit", "guest", "invoice", "state", "readings",
                  "amount", "deposit", "due", "refund"]


@_guard
def cmd_checkout(args: argparse.Namespace) -> int:
    r = ops.checkout(open_db(args.db), args.site, args.reservation,
                     args.date or date.today(), args.issue)
    emit(r, args.json, table([_settled_row(r)], SETTLED_HEADER))
    return 0


@_guard
def cmd_settle(args: argparse.Namespace) -> int:
    r = ops.run(open_db(args.db), args.site, args.date or date.today(), args.unit_type,
                args.issue, args.dry_run)
    text = [f"site {r['site']} {r['date']}: {len(r['settled'])} settled, "
            f"{len(r['skipped'])} units skipped"
            + (" (dry run: nothing stored)" if args.dry_run else "")]
    if r["settled"]:
        text.append(table([_settled_row(s) for s in r["settled"]], SETTLED_HEADER))
    if r["skipped"]:
        text.append("skipped:")
        text.append(table([[s["unit"], s["reservation"] or "", s["reason"], s["detail"]]
                           for s in r["skipped"]], ["unit", "reservation", "reason", "why"]))
    emit(r, args.json, "\n".join(text))
    return 0


@_guard
def cmd_document(args: argparse.Namespace) -> int:
    num, data = ops.document_pdf(open_db(args.db), args.site, args.reservation)
    write_file(Path(args.output or f"stay-{args.reservation}.pdf"), data, args.json,
               invoice=num)
    return 0


@_guard
def cmd_explain(args: argparse.Namespace) -> int:
    from sitegate.cloud.stays.explain import explain_text

    e = ops.explain(open_db(args.db), args.site, args.reservation)
    emit(e, args.json, explain_text(e))
    return 0
