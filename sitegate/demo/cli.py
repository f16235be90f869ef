"""``sitegate demo``: a whole site on one machine, no hardware, no configuration.

Simulated Modbus and M-Bus meters, simulated charge points, the real gateway daemon, an
embedded MQTT broker and the real cloud (ingest, HTTP API, billing). The parts live in
``sitegate.demo``; this module only adds the subcommand (imported when it runs, since the
demo composes the cloud too and the gateway never imports cloud code otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from sitegate.gateway.daemon import AlreadyRunning
from sitegate.gateway.logging_setup import configure


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="simulated site: meters, chargers, gateway and cloud on "
                                    "this machine")
    p.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    p.add_argument("--interval", type=int, default=5, help="poll interval in seconds")
    p.add_argument("--dir", default=None,
                   help="buffer, cloud database and invoices go here (default: a new temp dir)")
    p.add_argument("--broker", default=None, metavar="URL",
                   help="use this MQTT 5 broker (mqtt://host:port) instead of the embedded one")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from sitegate.cloud import cloud_missing

    if missing := cloud_missing():
        return _usage(f"the demo runs the cloud too, which needs {missing}: "
                      "pip install 'sitegate[cloud]'")
    from sitegate.demo.run import run_demo
    from sitegate.sync.config import MqttConfig

    if args.interval < 1:
        return _usage("--interval: at least 1 second")
    if args.duration is not None and args.duration <= 0:
        return _usage("--duration: a positive number of seconds")
    if args.broker is not None:
        try:
            MqttConfig(broker=args.broker)
        except ValidationError as exc:
            why = exc.errors()[0]['msg'].removeprefix('Value error, ')
            return _usage(f"--broker {args.broker}: {why}")
    configure("warning")
    # Without --dir a fresh directory, kept afterwards: the invoices are the demo's result.
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="sitegate-demo-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(run_demo(workdir, args.duration, args.interval, args.broker))
    except AlreadyRunning:
        print(f"sitegate demo: another demo is running in {workdir}; give another --dir",
              file=sys.stderr)
        return 1


def _usage(message: str) -> int:
    print(f"sitegate demo: {message}", file=sys.stderr)
    return 2
