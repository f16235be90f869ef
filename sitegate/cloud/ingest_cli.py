"""``sitegate-cloud`` subcommands of the ingest part: serve, migrate, gateways, dead-letters,
readings (``--unsynced``: readings taken while the gateway clock was not synchronized)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import tomllib
from datetime import datetime
from typing import Any

import structlog

from sitegate.cloud.api.serve import add_http_arguments
from sitegate.cloud.keys import ENV as KEYS_ENV
from sitegate.cloud.keys import add_keys_argument
from sitegate.cloud.secrets import add_password_arguments
from sitegate.common.output import emit, table

log = structlog.get_logger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="ingest MQTT uplink into the database (+ HTTP API)")
    p.add_argument("--db", required=True, help="database URL or SQLite file path")
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port "
                   "(mqtts default port 8885: the cloud's listener of the shipped broker)")
    add_http_arguments(p)
    p.add_argument("--username")
    add_password_arguments(p)
    p.add_argument("--ca-file", help="CA certificate of the broker (mqtts://)")
    p.add_argument("--client-id", help="MQTT client id (default: unique per process)")
    add_keys_argument(p)  # given (or $SITEGATE_CLOUD_KEYS): mTLS as the cloud, and enrolment
    p.add_argument("--max-message-bytes", type=int, default=1024 * 1024,
                   help="larger uplink messages go to the dead letters")
    p.add_argument("--max-future-hours", type=float, default=24,
                   help="rows timed further ahead of the cloud's clock are dead-lettered")
    p.add_argument("--max-backfill-days", type=float, default=3660,
                   help="rows timed this long before the gateway was enrolled (or first "
                        "seen, without enrolment) are dead-lettered")
    p.set_defaults(func=_serve)

    p = sub.add_parser("migrate", help="bring the database schema up to date")
    p.add_argument("--db", required=True)
    p.set_defaults(func=_migrate)

    p = sub.add_parser("push-config", help="retain a desired configuration for a gateway")
    p.add_argument("--broker", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--version", type=int, required=True, help="increases with every change")
    p.add_argument("file", help="the gateway's site file (.toml, checked as check-config "
                   "does before it is sent) or a JSON object; no credentials in it")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _downlink_options(p)
    p.set_defaults(func=_push_config)

    p = sub.add_parser("push-badges", help="retain a badge list ({version, badges}) for a gateway")
    p.add_argument("--broker", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("file", help="JSON file with the badge list")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _downlink_options(p)
    p.set_defaults(func=_push_badges)

    p = sub.add_parser("command", help="run a command on a gateway and print its result")
    p.add_argument("--broker", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--expiry", type=int, default=300, help="seconds before it goes stale")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the result")
    p.add_argument("--json", action="store_true")
    p.add_argument("name")
    p.add_argument("args", nargs="?", default="{}", help="JSON object of arguments")
    _downlink_options(p)
    p.set_defaults(func=_command)

    for name, func, text in (
        ("dead-letters", _dead_letters, "messages refused by ingest, with the reason"),
        ("readings", _readings, "the latest stored readings, newest last (e.g. --unsynced)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--db", required=True)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--limit", type=int, default=100)
        if name == "readings":
            p.add_argument("--gateway")
            p.add_argument("--meter")
            p.add_argument("--unsynced", action="store_true",
                           help="only readings taken while the gateway clock was unsynced")
            # `readings import FILE`: readings from outside the gateway (billing_cli)
            p.add_argument("action", nargs="?", choices=("list", "import"), default="list")
            p.add_argument("file", nargs="?", help="import: CSV or JSON file of readings")
            from sitegate.cloud.billing_cli import add_import_options

            add_import_options(p)
        p.set_defaults(func=func)


def _downlink_options(p: argparse.ArgumentParser) -> None:
    """Signing key and broker credentials of the downlink commands (no secret on argv)."""
    from sitegate.cloud.broker_auth import add_broker_options

    add_broker_options(p)


def _downlink_setup(args: argparse.Namespace) -> tuple[Any, Any]:
    """(signing key, broker auth) from the options; ValueError/OSError when unusable."""
    from sitegate.cloud.broker_auth import broker_auth
    from sitegate.cloud.keys import downlink_key, keys_dir

    auth = broker_auth(args)
    return downlink_key(keys_dir(args.keys)), auth


def _field_error(what: str, exc: Exception) -> int:
    """A field condition (broker down, key unreadable): one line and exit code 1."""
    print(f"{what}: {exc}", file=sys.stderr)
    return 1


def _serve(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from sitegate.cloud.api.serve import http_problem, run_http
    from sitegate.cloud.ingest.service import IngestService
    from sitegate.cloud.ingest.writer import Plausibility
    from sitegate.cloud.secrets import SecretError, broker_password, db_url_problem
    from sitegate.cloud.store.db import upgrade

    try:
        password = broker_password(args)
        if problem := db_url_problem(args.db):
            raise SecretError(problem)
    except SecretError as exc:
        print(f"sitegate-cloud serve: {exc}", file=sys.stderr)
        return 2
    if args.http and (problem := http_problem(args)):
        print(f"sitegate-cloud serve: {problem}", file=sys.stderr)
        return 2
    upgrade(args.db)
    tls: dict[str, Any] = {"ca_file": args.ca_file}
    if args.keys or os.environ.get(KEYS_ENV):
        from sitegate.cloud.auth.ca import CA
        from sitegate.cloud.auth.enrolment import Provisioner
        from sitegate.cloud.keys import keys_dir
        from sitegate.cloud.store.db import make_engine

        keys = keys_dir(args.keys)
        key_file, cert_file = CA.open(keys).cloud_client()
        tls = {"ca_file": args.ca_file or str(keys / "ca.crt"), "cert_file": str(cert_file),
               "key_file": str(key_file), "provisioner": Provisioner(make_engine(args.db), keys)}
    from sitegate.cloud.auth.revocation import Gatekeeper, kick
    from sitegate.cloud.ingest.downlink import BrokerAuth

    auth = BrokerAuth(args.username, password, tls.get("ca_file"), tls.get("cert_file"),
                      tls.get("key_file"))
    service = IngestService(
        args.db, args.broker, client_id=args.client_id, username=args.username,
        password=password, max_message_bytes=args.max_message_bytes, **tls,
        plausible=Plausibility(timedelta(hours=args.max_future_hours),
                               timedelta(days=args.max_backfill_days)),
    )
    # A revoked gateway still connected: refused and cut (the broker checks the CRL only
    # when a connection is made).
    service.gatekeeper = Gatekeeper(service.writer.engine,
                                    lambda gw: kick(args.broker, auth, gw),
                                    service.writer.dead_letter)
    stop = threading.Event()
    if args.http:
        worker = threading.Thread(target=service.run, args=(stop,), name="ingest", daemon=True)
        worker.start()
        try:
            run_http(args)
        finally:
            stop.set()
            worker.join(timeout=30)
        return 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.run(stop)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from sitegate.cloud.store.db import upgrade

    upgrade(args.db)
    print(f"schema up to date: {args.db}")
    return 0


class FileProblem(Exception):
    """A file named on the command line that cannot be used: one line, exit 2."""


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise FileProblem(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") \
            from exc


def _load_json(path: str) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise FileProblem(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from exc


def _file_problem(what: str, exc: FileProblem) -> int:
    print(f"{what}: {exc}", file=sys.stderr)
    return 2


def _not_sent(args: argparse.Namespace, why: str, problems: list[str]) -> int:
    """A file refused before anything was sent: its problems (stdout) and exit 2."""
    emit({"sent": False, "file": args.file, "reason": why, "problems": problems}, args.json,
         f"{args.file}: not sent{': ' + why if why else ''}\n  " + "\n  ".join(problems))
    return 2


def _push_config(args: argparse.Namespace) -> int:
    from sitegate.cloud.ingest.downlink import push_config

    config: Any
    if args.file.endswith(".toml"):
        from sitegate.common.profile_index import shipped_quantities
        from sitegate.common.sitefile import ConfigError, parse_config

        try:
            config = _read_text(args.file)
        except FileProblem as exc:
            return _file_problem("push-config", exc)
        # Refused here rather than by the gateway hours later: same checks as check-config.
        try:
            parse_config(config, args.file, shipped_quantities)
        except ConfigError as exc:
            return _not_sent(args, "", [str(p) for p in exc.problems])
    else:
        try:
            config = _load_json(args.file)
        except FileProblem as exc:
            return _file_problem("push-config", exc)
    from sitegate.cloud.ingest.downlink import secret_keys

    secrets = secret_keys(tomllib.loads(config) if isinstance(config, str) else config)
    if secrets:
        return _not_sent(args, "credentials must not travel in the desired config",
                         [f"{k}: name the secret instead (e.g. password_secret = \"name\"); "
                          "the gateway keeps it in its secrets file" for k in secrets])
    try:
        key, auth = _downlink_setup(args)
        push_config(args.broker, args.gateway, args.version, config, key, auth)
    except (OSError, ValueError) as exc:
        return _field_error("push-config", exc)
    emit({"sent": True, "gateway_id": args.gateway, "version": args.version,
          "retained": True}, args.json,
         f"desired config version {args.version} signed and retained for {args.gateway}")
    return 0


def _push_badges(args: argparse.Namespace) -> int:
    from sitegate.cloud.ingest.downlink import push_badges

    try:
        badges = _load_json(args.file)
    except FileProblem as exc:
        return _file_problem("push-badges", exc)
    try:
        key, auth = _downlink_setup(args)
        push_badges(args.broker, args.gateway, badges, key, auth)
    except (OSError, ValueError) as exc:
        return _field_error("push-badges", exc)
    version = badges.get("version") if isinstance(badges, dict) else None
    emit({"sent": True, "gateway_id": args.gateway, "version": version, "retained": True},
         args.json, f"badge list signed and retained for {args.gateway}")
    return 0


def _command(args: argparse.Namespace) -> int:
    from sitegate.cloud.ingest.downlink import send_command

    try:
        key, auth = _downlink_setup(args)
        result = send_command(args.broker, args.gateway, args.name, json.loads(args.args),
                              key, args.expiry, args.wait, auth, on_progress=_progress)
    except (OSError, ValueError) as exc:
        return _field_error("command", exc)
    if result is None:
        print(f"no result within {args.wait:g} s (the command expires after {args.expiry} s)",
              file=sys.stderr)
        return 1
    data = result.model_dump(mode="json")
    emit(data, args.json, json.dumps(result.result, indent=2) if result.ok
          else f"failed: {result.error}")
    return 0 if result.ok else 1


def _progress(info: dict[str, Any]) -> None:
    """A long command's progress (a bus scan), on stderr: stdout is for the result."""
    done, total = info.get("done"), info.get("total")
    part = f"{done}/{total}" if done is not None and total else ""
    print(f"progress: {part} {info.get('step', '')} found {info.get('found', 0)}".replace(
        "  ", " "), file=sys.stderr, flush=True)


def _engine(url: str):  # type: ignore[no-untyped-def]
    from sitegate.cloud.store.db import open_db

    return open_db(url)  # NotReady: the CLI says what to run


def _dead_letters(args: argparse.Namespace) -> int:
    from sitegate.cloud.api.app import dead_letters

    rows = dead_letters(_engine(args.db), args.limit)
    text = table(
        [[d["id"], _t(d["received_at"]), d["topic"], d["bytes"], d["reason"][:80]] for d in rows],
        ["id", "received", "topic", "bytes", "reason"],
    ) if rows else "no dead letters"
    emit(rows, args.json, text)
    return 0


def _readings(args: argparse.Namespace) -> int:
    if args.action == "import":
        from sitegate.cloud.billing_cli import cmd_readings_import

        return cmd_readings_import(args)
    from sitegate.cloud.api.app import readings

    rows = readings(_engine(args.db), gateway_id=args.gateway, meter_id=args.meter,
                    unsynced=args.unsynced, limit=args.limit)
    text = table(
        [[r["gateway_id"], r["seq"], r["meter_id"], _t(r["ts"]), r["quantity"], r["value"],
          r["unit"], r["quality"], ",".join(r["flags"])] for r in rows],
        ["gateway", "seq", "meter", "ts (UTC)", "quantity", "value", "unit", "quality",
         "flags"],
    ) if rows else "no readings"
    emit(rows, args.json, text)
    return 0


# Output --------------------------------------------------------------------------------------


def _t(v: Any) -> str:
    return v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else str(v or "")
