"""``sitegate logs``: the daemon's log lines for one meter, bus or charger."""

from __future__ import annotations

import argparse
import sys

from sitegate.common.output import emit
from sitegate.gateway.cli_core import DEFAULT_CONFIG, config_or_exit


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("logs", help="the daemon's log from the journal (or its own log file "
                       "without systemd), filtered")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.add_argument("--meter", help="lines about this meter id")
    p.add_argument("--bus", help="lines about this bus")
    p.add_argument("--charger", help="lines about this charger id")
    p.add_argument("--since", default="1h", help="90s, 30m, 1h, 2d or an ISO time (1h)")
    p.add_argument("--lines", "-n", type=int, default=200, help="at most this many, newest")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--journal", action="store_const", const="journal", dest="source",
                       help="read the journal (default under systemd)")
    where.add_argument("--file", action="store_const", const="file", dest="source",
                       help="read the daemon's own log file (default without systemd)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_logs, source="auto")


def cmd_logs(args: argparse.Namespace) -> int:
    from sitegate.firmware_tools import logs
    from sitegate.firmware_tools.identity import state_dir

    cfg = config_or_exit(args.config)
    try:
        flt = logs.Filter(logs.parse_since(args.since), args.meter, args.bus, args.charger)
        result = logs.read(flt, state_dir(cfg.storage.path), args.lines, args.source)
    except ValueError as exc:
        print(f"sitegate: {exc}", file=sys.stderr)
        return 2
    except logs.LogsError as exc:
        print(f"sitegate: {exc}", file=sys.stderr)
        return 2
    emit(result, args.json, logs.render(result))
    return 0
