"""``sitegate-cloud ocmf``: signed meter values of charging sessions (calibration law)."""

from __future__ import annotations

import argparse

from sitegate.cloud.billing import ocmf_ops
from sitegate.cloud.billing_cli import _guard
from sitegate.cloud.cli_options import command, to_output
from sitegate.cloud.store.db import open_db
from sitegate.common.output import emit, table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ocmf", help="signed meter values: export for the Transparenzsoftware, "
                                    "check, pinned keys")
    ss = p.add_subparsers(dest="ocmf_cmd", required=True)
    q = command(ss, "export", "a session's signed records as the XML file the S.A.F.E. "
                "Transparenzsoftware opens", cmd_export)
    q.add_argument("--gateway", required=True)
    q.add_argument("--session", required=True, help="session id, e.g. CP1-42")
    q.add_argument("--output", "-o", help="file to write (default: stdout)")
    q = command(ss, "check", "the cloud's check of a session's signed values", cmd_check)
    q.add_argument("--gateway", required=True)
    q.add_argument("--session", required=True)
    command(ss, "keys", "charger keys pinned at their first signed session", cmd_keys,
            site=False)
    q = command(ss, "pin", "confirm a charger's (new) public key, e.g. after a meter exchange",
                cmd_pin, site=False)
    q.add_argument("--gateway", required=True)
    q.add_argument("--charge-point", required=True)
    q.add_argument("--key", required=True, help="hex or base64 DER public key")


@_guard
def cmd_export(args: argparse.Namespace) -> int:
    text = ocmf_ops.export_xml(open_db(args.db), args.site, args.gateway, args.session)
    if to_output(text, args.output):
        emit({"file": args.output, "bytes": len(text.encode())}, args.json,
             f"wrote {args.output}")
    return 0


@_guard
def cmd_check(args: argparse.Namespace) -> int:
    r = ocmf_ops.check_session(open_db(args.db), args.site, args.gateway, args.session)
    c = r["check"]
    if c is None:
        text = f"{args.session}: no signed values, charger not calibrated"
    else:
        text = "\n".join([f"{args.session}: {c['status']}"] + [
            f"  problem: {p}" for p in c["problems"]] + [f"  note: {n}" for n in c["notes"]])
    emit(r, args.json, text)
    return 0


@_guard
def cmd_keys(args: argparse.Namespace) -> int:
    rows = ocmf_ops.keys(open_db(args.db))
    cols = ["gateway_id", "charge_point", "fingerprint", "first_session", "pinned_at"]
    emit(rows, args.json, table([[r[c] for c in cols] for r in rows], cols)
         if rows else "no pinned keys")
    return 0


@_guard
def cmd_pin(args: argparse.Namespace) -> int:
    r = ocmf_ops.pin(open_db(args.db), args.gateway, args.charge_point, args.key)
    emit(r, args.json, f"pinned {r['fingerprint']} for {args.gateway}/{args.charge_point}")
    return 0
