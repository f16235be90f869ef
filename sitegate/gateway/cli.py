"""The ``sitegate`` command: the daemon and the installer's and technician's tools.

Each part adds its own subcommands through a ``register(subparsers)`` function in its own
CLI module (listed in ``PARTS``), so this file only wires them together.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sitegate.common.cli_parts import build_parser as parts_parser

# Modules that contribute subcommands; each has register(subparsers: argparse._SubParsersAction).
PARTS = (
    "sitegate.gateway.cli_core",
    "sitegate.gateway.cli_modbus",
    "sitegate.demo.cli",
    "sitegate.drivers.mbus.cli",
    "sitegate.gateway.cli_ocpp",
    "sitegate.gateway.cli_relays",
    "sitegate.gateway.cli_enrol",
    "sitegate.gateway.cli_doctor",
    "sitegate.gateway.cli_provision",
    "sitegate.gateway.cli_update",
    "sitegate.gateway.cli_meters",
    "sitegate.gateway.cli_scan_config",  # after the mbus CLI: adds its --write-config
    "sitegate.gateway.cli_commission",
    "sitegate.gateway.cli_logs",
)


def build_parser() -> argparse.ArgumentParser:
    return parts_parser("sitegate", "sitegate sub-metering gateway", PARTS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if check := getattr(args, "check", None):  # checks argparse cannot express (exits 2)
        check(args)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
