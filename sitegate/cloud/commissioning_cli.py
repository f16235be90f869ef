"""``sitegate-cloud site commissioning S``: the commissioning reports of a site's gateways.

The ``site`` command is the billing part's; this part adds its subcommand to it (the
gateways send the reports, ``sitegate commission``; ingest keeps them)."""

from __future__ import annotations

import argparse

from sitegate.common.output import emit, table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    site = sub.choices.get("site")
    if site is None:  # the billing part is not there
        return
    commands = next(a for a in site._actions if isinstance(a, argparse._SubParsersAction))
    q = commands.add_parser("commissioning", help="commissioning reports the site's gateways "
                            "sent (sitegate commission), newest first")
    q.add_argument("site_id", metavar="SITE")
    q.add_argument("--db", required=True, help="database URL or SQLite file path")
    q.add_argument("--gateway", help="only this gateway's reports")
    q.add_argument("--limit", type=int, default=20, choices=range(1, 1001), metavar="N",
                   help="at most N reports (default 20)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_commissioning)


def cmd_commissioning(args: argparse.Namespace) -> int:
    from sitegate.cloud.store.commissioning import reports
    from sitegate.cloud.store.db import open_db

    found = reports(open_db(args.db), args.site_id, args.gateway, args.limit)
    rows = [[r["finished"], r["gateway_id"], r["verdict"].upper(), r["meters"], r["failed"],
             len(r["problems"])] for r in found["reports"]]
    lines = [f"site {found['site']}: gateways {', '.join(found['gateways']) or 'none known'}"]
    if rows:
        lines.append(table(rows, ["finished", "gateway", "verdict", "meters", "failed",
                                  "problems"]))
        newest = found["reports"][0]
        for p in newest["problems"][:20]:
            lines.append(f"  {newest['gateway_id']} {p['subject']}: {p['check']}: "
                         f"{p['detail']}")
    else:
        lines.append("no commissioning report received yet")
    emit(found, args.json, "\n".join(lines))
    return 0
