"""The ``sitegate-cloud`` command: ingest, store, billing and the HTTP API.

Each part adds its own subcommands through ``register(subparsers)`` in its CLI module.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sitegate.common.cli_parts import build_parser as parts_parser

PARTS = (
    "sitegate.cloud.ingest_cli",
    "sitegate.cloud.billing_cli",
    "sitegate.cloud.tokens_cli",
    "sitegate.cloud.trust_cli",
    "sitegate.cloud.ocmf_cli",
    "sitegate.cloud.users_cli",
    "sitegate.cloud.release_cli",
    "sitegate.cloud.expense_cli",
    "sitegate.cloud.retention_cli",
    "sitegate.cloud.commissioning_cli",  # after billing_cli: adds `site commissioning`
    "sitegate.cloud.stays_cli",
    "sitegate.cloud.payments_cli",
    "sitegate.cloud.jobs_cli",
)


def build_parser() -> argparse.ArgumentParser:
    return parts_parser("sitegate-cloud", "sitegate cloud: ingest and billing", PARTS)


def main(argv: Sequence[str] | None = None) -> int:
    from sitegate.cloud import cloud_missing

    if missing := cloud_missing():
        print(f"sitegate-cloud needs the cloud extra ({missing} is not installed): "
              "pip install 'sitegate[cloud]'", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    from sitegate.cloud.store.db import NotReady

    try:
        return int(args.func(args) or 0)
    except NotReady as exc:  # missing, unreachable or unmigrated database: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
