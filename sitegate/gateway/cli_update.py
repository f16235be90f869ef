"""``sitegate update apply BUNDLE``: install a signed update beside the running version,
switch to it, and roll back when it does not report healthy in time (see
sitegate.firmware_tools.update). Run as root (it writes /opt/sitegate and restarts the
service)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from sitegate.common.output import emit
from sitegate.gateway.cli_core import DEFAULT_CONFIG, config_or_exit

EXIT_ROLLED_BACK = 1
EXIT_REFUSED = 2


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from sitegate.firmware_tools.update import DEFAULT_KEYS, DEFAULT_ROOT

    top = sub.add_parser("update", help="signed updates with roll-back")
    usub = top.add_subparsers(dest="update_command", metavar="COMMAND")
    usub.required = True
    p = usub.add_parser("apply", help="verify, install beside, switch, roll back if unhealthy")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("bundle", type=Path, nargs="?", help="from sitegate-cloud release sign")
    what.add_argument("--request", type=Path, metavar="FILE",
                      help="the request the daemon left for a cloud command (the "
                      "sitegate-update unit passes it)")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG,
                   help="the site file (where the daemon's control socket is)")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the install root")
    p.add_argument("--trusted-keys", type=Path, default=DEFAULT_KEYS, metavar="DIR",
                   help="release keys this gateway trusts (*.pub)")
    p.add_argument("--health-timeout", type=float, default=180.0, metavar="SECONDS",
                   help="how long the new version has to report healthy")
    p.add_argument("--restart", default="systemctl restart sitegate.service", metavar="CMD",
                   help="how the service is restarted")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_apply)


def cmd_apply(args: argparse.Namespace) -> int:
    from sitegate.firmware_tools.update import UpdateError, apply
    from sitegate.firmware_tools.update_request import take_request
    from sitegate.gateway.control import call

    cfg = config_or_exit(args.config)

    def restart() -> None:
        res = subprocess.run(shlex.split(args.restart), capture_output=True, text=True,
                             timeout=120)
        if res.returncode != 0:  # the health check then says what runs
            print(f"update: {args.restart}: exit {res.returncode}", file=sys.stderr)

    try:
        bundle = take_request(args.request) if args.request else args.bundle
        out = apply(bundle, args.root, args.trusted_keys, restart,
                    lambda: call(cfg.health.socket, "status", timeout=10),
                    args.health_timeout)
    except UpdateError as exc:
        print(f"update refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:
        print(f"update failed: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_REFUSED
    if out.outcome == "switched":
        emit(out.to_dict(), args.json, f"updated {out.previous} -> {out.version}: healthy")
        return 0
    emit(out.to_dict(), args.json, f"rolled back to {out.running}: {out.reason}")
    return EXIT_ROLLED_BACK
