"""``sitegate-cloud payments``: bank statements in (camt.054 / camt.053), credits matched to
invoices by reference, the unmatched ones listed and assigned by hand."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from sitegate.cloud.billing.ledger import LifecycleError
from sitegate.cloud.billing.sites import NotFound
from sitegate.cloud.cli_options import command, guard
from sitegate.cloud.payments import ops
from sitegate.cloud.payments.camt import MAX_BYTES, CamtError
from sitegate.cloud.store.db import NotReady, open_db
from sitegate.common.output import emit, table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("payments", help="payments coming in: bank statements (camt.054/053)")
    ss = p.add_subparsers(dest="payments_cmd", required=True)
    command(ss, "import", "a camt.054 or camt.053 file: credits matched to invoices by QR "
            "or creditor reference", cmd_import).add_argument("file")
    q = command(ss, "list", "every credit imported and what became of it", cmd_list)
    q.add_argument("--unmatched", action="store_true", help="only the unmatched ones")
    q = command(ss, "assign", "pay an unmatched credit onto an invoice", cmd_assign)
    q.add_argument("credit", type=int)
    q.add_argument("invoice", type=int)


_guard = guard(NotFound, ops.PaymentError, LifecycleError, OSError, NotReady,
               listed={CamtError: lambda exc, args: [f"{args.file}: {exc}"]},
               footer="nothing imported")


ROW = ["id", "entry", "booked", "amount", "reference", "debtor", "invoice", "outcome",
       "balance", "why"]


def _row(c: dict[str, Any]) -> list[Any]:
    return [c["id"], c["entry"], c["booking_date"], f"{c['amount']} {c['currency']}",
            c["reference"], c["debtor"], c["invoice_number"], c["outcome"],
            c["balance_after"], c["reason"]]


@_guard
def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.stat().st_size > MAX_BYTES:
        raise CamtError(f"{path.stat().st_size} bytes, more than {MAX_BYTES}")
    r = ops.import_statement(open_db(args.db), args.site, path.name, path.read_bytes())
    if r["already_imported"]:
        text = (f"{path.name} ({r['kind']} {r['message_id']}) was imported on "
                f"{r['already_imported']}: nothing changed")
    else:
        text = (f"{path.name} ({r['kind']} {r['message_id']}): {len(r['matched'])} matched, "
                f"{len(r['unmatched'])} unmatched, {r['known']} already imported, "
                f"{r['debits']} debits ignored")
        if r["matched"]:
            text += "\n" + table([_row(c) for c in r["matched"]], ROW)
        if r["unmatched"]:
            text += "\nunmatched (assign with 'sitegate-cloud payments assign ID INVOICE'):\n"
            text += table([_row(c) for c in r["unmatched"]], ROW)
    emit(r, args.json, text)
    return 0


@_guard
def cmd_list(args: argparse.Namespace) -> int:
    rows = ops.credits(open_db(args.db), args.site, "unmatched" if args.unmatched else None)
    emit(rows, args.json, table([_row(c) for c in rows], ROW) if rows else "no credits")
    return 0


@_guard
def cmd_assign(args: argparse.Namespace) -> int:
    r = ops.assign(open_db(args.db), args.site, args.credit, args.invoice, date.today())
    emit(r, args.json, table([_row(r)], ROW))
    return 0
