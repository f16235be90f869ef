"""``sitegate doctor``: check this gateway and say what is wrong and what to do."""

from __future__ import annotations

import argparse

from sitegate.common.output import emit
from sitegate.gateway.cli_core import DEFAULT_CONFIG, config_or_exit


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("doctor", help="check serial ports, clock, disk, backlog, broker, "
                       "certificate and the daemon (exit 1 when something fails)")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from sitegate.firmware_tools.doctor import failed, render, run_checks
    from sitegate.gateway.clock import clock_state
    from sitegate.gateway.control import ControlError, call

    cfg = config_or_exit(args.config)
    checks = run_checks(cfg, clock_state, lambda: call(cfg.health.socket, "status", timeout=5),
                        (ControlError, OSError, ValueError))
    bad = failed(checks)
    emit({"ok": not bad, "checks": [c.to_dict() for c in checks]}, args.json, render(checks))
    return 1 if bad else 0
