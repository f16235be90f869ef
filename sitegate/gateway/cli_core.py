"""``sitegate run | check-config | schema | read | buffer stats|check | status``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from sitegate.common.output import emit, plain, table
from sitegate.common.sitecheck import (
    ConfigError,
    Problem,
    ProfileLookup,
    config_warnings,
    path_str,
)
from sitegate.common.sitefile import SiteConfig, find_line, json_schema, load_config
from sitegate.drivers.diagnose import EXIT_FIELD, FIELD_ERRORS, explain, quiet_pymodbus
from sitegate.gateway.control import ControlError, call
from sitegate.gateway.profiles import driver_quantities

EXIT_CONFIG = 2
DEFAULT_CONFIG = "/etc/sitegate/site.toml"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the gateway daemon")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a site configuration file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("schema", help="print the JSON schema of the site configuration")
    p.add_argument("--json", action="store_true", help="(the schema is JSON either way)")
    p.set_defaults(func=lambda a: print(json.dumps(json_schema(), indent=2)))

    p = sub.add_parser("read", help="read one configured meter now")
    p.add_argument("meter_id")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("status", help="health of the running daemon")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    b = sub.add_parser("buffer", help="the local SQLite buffer")
    bsub = b.add_subparsers(dest="buffer_command", metavar="COMMAND")
    bsub.required = True
    p = bsub.add_parser("stats", help="rows, oldest unacknowledged, size")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.add_argument("--db", help="buffer file (instead of the config's storage.path)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_buffer_stats)
    p = bsub.add_parser("check", help="rows stored twice and gaps in sequence numbers "
                        "(exit 2 when found)")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.add_argument("--db", help="buffer file (instead of the config's storage.path)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_buffer_check)


def _buffer_check(args: argparse.Namespace) -> int:
    from sitegate.gateway.buffer_check import report

    return report(args.db or config_or_exit(args.config).storage.path, args.json)


def config_or_exit(path: str, profiles: ProfileLookup | None = None,
                   with_secrets: bool = False) -> SiteConfig:
    """The site file; ``with_secrets``: its named secrets filled in from the secrets file."""
    try:
        cfg = load_config(path, profiles)
        if with_secrets:
            from sitegate.gateway.secrets import resolve

            cfg = resolve(cfg, path)
        return cfg
    except ConfigError as exc:
        print(f"{exc.source}: configuration is not valid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from exc


def site_warnings(cfg: SiteConfig, path: str) -> list[Problem]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        text = ""
    return [Problem(path_str(loc), msg, find_line(text, loc))
            for loc, msg in config_warnings(cfg)]


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file, driver_quantities)
    except ConfigError as exc:
        text = "\n".join([f"{exc.source}: {len(exc.problems)} problem(s)"]
                         + [f"  {p}" for p in exc.problems])
        emit({"ok": False, "file": exc.source,
              "problems": [p.to_dict() for p in exc.problems]}, args.json, text)
        return EXIT_CONFIG
    warnings = site_warnings(cfg, args.file)
    # What `run` would refuse on this box: a named secret its secrets file does not hold.
    from sitegate.gateway import secrets

    try:
        if why := secrets.not_checkable_here(cfg):
            warnings.append(Problem("", f"named secrets not checked: {why}"))
            missing: list[Problem] = []
        else:
            missing = secrets.missing(cfg, args.file, text=Path(args.file).read_text(
                encoding="utf-8"))
    except ConfigError as exc:
        missing = exc.problems
    if missing:
        text = "\n".join([f"{args.file}: {len(missing)} problem(s)"]
                         + [f"  {p}" for p in missing])
        emit({"ok": False, "file": args.file, "problems": [p.to_dict() for p in missing]},
             args.json, text)
        return EXIT_CONFIG
    summary = {"ok": True, "file": args.file, "gateway_id": cfg.gateway_id,
               "buses": len(cfg.buses), "meters": len(cfg.meters),
               "warnings": [w.to_dict() for w in warnings]}
    emit(summary, args.json, "\n".join(
        [f"{args.file}: OK ({cfg.gateway_id}: {len(cfg.buses)} bus(es), "
         f"{len(cfg.meters)} meter(s))"] + [f"  warning: {w}" for w in warnings]))
    return 0


def own_log_file(cfg: SiteConfig) -> Path | None:
    """Without systemd's journal the daemon keeps its JSON log lines in a file of its state
    directory too (``sitegate logs`` reads either)."""
    import os

    from sitegate.firmware_tools.identity import state_dir
    from sitegate.firmware_tools.logs import log_file

    return None if os.environ.get("JOURNAL_STREAM") else log_file(state_dir(cfg.storage.path))


def cmd_run(args: argparse.Namespace) -> int:
    from sitegate.gateway.daemon import AlreadyRunning, Daemon
    from sitegate.gateway.logging_setup import configure

    cfg = config_or_exit(args.config, driver_quantities, with_secrets=True)
    configure(args.log_level, log_file=own_log_file(cfg))
    import structlog

    for w in site_warnings(cfg, args.config):
        structlog.get_logger(__name__).warning("config.warning", file=args.config,
                                               warning=str(w))
    try:
        return asyncio.run(Daemon(cfg).run())
    except AlreadyRunning as exc:
        print(f"sitegate: {exc}", file=sys.stderr)
        return 1


def _readings_text(meter_id: str, readings: list[dict[str, Any]]) -> str:
    rows = [[r["quantity"], plain(r["value"]), r["unit"], r.get("quality", "good"),
             ",".join(r.get("flags", []))] for r in readings]
    return f"{meter_id}:\n" + table(rows, ["quantity", "value", "unit", "quality", "flags"])


def cmd_read(args: argparse.Namespace) -> int:
    cfg = config_or_exit(args.config)
    try:
        meter = cfg.meter(args.meter_id)
    except KeyError:
        print(f"no meter {args.meter_id!r} in {args.config}; known: "
              f"{', '.join(m.id for m in cfg.meters)}", file=sys.stderr)
        return EXIT_CONFIG
    try:  # the running daemon owns the bus: ask it
        result = call(cfg.health.socket, "read", {"meter_id": meter.id})
    except ControlError as exc:
        if "not running" not in str(exc):
            print(f"sitegate: {exc}", file=sys.stderr)
            return EXIT_FIELD
        try:  # no daemon: nobody else is on the bus, read it here
            result = asyncio.run(_read_direct(cfg, meter.id))
        except FIELD_ERRORS as err:
            from sitegate.gateway.buses import link_settings

            print(f"sitegate: the daemon is not running, and reading {meter.id} directly "
                  f"failed: {explain(link_settings(cfg.bus(meter.bus)), err)}",
                  file=sys.stderr)
            return EXIT_FIELD
    for r in result["readings"]:
        r["value"] = plain(r["value"])
    emit(result, args.json, _readings_text(meter.id, result["readings"]))
    return 0


async def _read_direct(cfg: SiteConfig, meter_id: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    from sitegate.gateway.buses import make_client, meter_ref

    quiet_pymodbus()
    meter = cfg.meter(meter_id)
    client = make_client(cfg.bus(meter.bus))
    try:
        res = await client.read(meter_ref(meter), datetime.now(UTC))
    finally:
        await client.close()
    return {"meter_id": meter_id, "readings": [r.to_dict() for r in res.readings]}


def cmd_status(args: argparse.Namespace) -> int:
    cfg = config_or_exit(args.config)
    try:
        h = call(cfg.health.socket, "status")
    except ControlError as exc:
        print(f"sitegate: {exc}", file=sys.stderr)
        return EXIT_FIELD
    h["clock"] = _clock_state()
    lines = [f"gateway {h['gateway_id']} running since {h['started']}",
             "backlog: " + ", ".join(f"{k} {v}" for k, v in h["backlog"].items()),
             _clock_line(h["clock"]), *_writer_lines(h), *_config_lines(h), *_uplink_lines(h)]
    for bus in h["buses"]:
        lines.append(f"\nbus {bus['bus']}: {bus['cycles']} cycles, {bus['overruns']} overruns, "
                     f"utilization {bus['utilization']:.1%}"
                     + (f", ERROR {bus['bus_error']}" if bus["bus_error"] else ""))
        rows = [[m["meter_id"], m["state"], m["last_success"] or "never",
                 " ".join(f"{k}={v}" for k, v in m["errors"].items()) or "-",
                 m["last_error"] or ""] for m in bus["meters"]]
        lines.append(table(rows, ["meter", "state", "last success", "errors", "last error"]))
    if h.get("relays"):
        from sitegate.gateway.points_view import point_rows

        lines += ["\nRFID relay points:", point_rows(h["relays"]["points"])]
    emit(h, args.json, "\n".join(lines))
    return 0


def _writer_lines(h: dict[str, Any]) -> list[str]:
    """The buffer writer: is every poll cycle reaching the disk? (issue 11)"""
    w = h.get("writer")
    if not w:
        return []
    pending = (f"{w['pending_cycles']} cycles ({w['pending_rows']} rows, "
               f"{w['pending_bytes'] / 1024:.0f} of {w['max_pending_bytes'] / 1024:.0f} KiB) "
               "waiting in memory")
    out = [f"buffer write: FAILING since {w['failing_since']}: {w['write_error']}; {pending}"
           if w["write_failing"] else f"buffer write: ok, {pending}"]
    if w["lost_rows"]:
        out.append(f"buffer write: LOST {sum(w['lost_rows'].values())} rows "
                   f"({', '.join(f'{k} {v}' for k, v in w['lost_rows'].items())}) in "
                   f"{w['lost_cycles']} cycles dropped since start")
    found = {s: v for s, v in (h.get("buffer_check") or {}).items()
             if v["duplicate_rows"] or v["missing"]}
    if found:
        out.append("buffer check at start: " + "; ".join(
            f"{s}: {v['duplicate_rows']} stored twice, {v['missing']} seqs missing"
            for s, v in found.items()) + " (run `sitegate buffer check`)")
    return out


def _clock_state() -> str:
    """This box's clock as the daemon sees it (the CLI runs on the same box)."""
    from sitegate.gateway.clock import clock_state

    return clock_state()


def _clock_line(state: str) -> str:
    if state == "synchronized":
        return "clock: synchronized"
    return (f"clock: {state.upper()}: every reading is flagged clock_unsynced (stored as "
            "suspect); enable NTP (timedatectl set-ntp true)")


def _config_lines(h: dict[str, Any]) -> list[str]:
    c = h.get("config") or {}
    if c.get("source") == "remote":
        out = [f"config: the cloud's v{c['version']} (applied {c['applied_at']}) for buses "
               "and meters, the rest from the site file"]
        if c.get("site_file_not_in_effect"):
            out.append(f"  the site file's {', '.join(c['site_file_not_in_effect'])} differ "
                       f"and are NOT in effect; to run them, change them in the cloud, or "
                       f"delete {c.get('saved_at') or 'the saved remote config'} and restart")
        return out
    if c.get("problem"):
        return [f"config: the site file (the cloud's saved config not used: {c['problem']})"]
    return ["config: the site file"] if c else []


def _uplink_lines(h: dict[str, Any]) -> list[str]:
    """The sync client's health, for a technician: is data leaving the box?"""
    s = (h.get("services") or {}).get("SyncClient")
    if s is None:
        return ["uplink: not configured (no [mqtt] in the site file)"]
    if s["connected"]:
        state = f"connected since {s.get('connected_since') or '?'}"
    else:
        since = s.get("disconnected_since")
        state = "NOT connected" + (f" since {since}" if since else "")
    out = [f"uplink: {state} (buffer epoch {s.get('epoch', '?')})"]
    if s.get("enrolment"):
        out.append(f"enrolment: {s['enrolment']}")
    if (s.get("identity") or {}).get("not_after"):
        out.append(f"certificate valid until {s['identity']['not_after']}"
                   + (f" ({s['identity']['problem']})" if s["identity"].get("problem") else ""))
    rows = []
    for stream, backlog in s["backlog"].items():
        ack = s["last_ack"].get(stream) or {}
        rows.append([stream, backlog, s["in_flight"].get(stream, 0), ack.get("upto", 0),
                     ack.get("at") or "-"])
    out.append(table(rows, ["stream", "backlog", "in flight", "acked up to",
                            "last ack (since start)"]))
    version = s.get("applied_config_version")
    rejected = s.get("config_rejected")
    out.append("remote config: " + (f"v{version} applied" if version is not None
                                    else "none applied"))
    if rejected:
        out.append(f"remote config v{rejected.get('version')} REJECTED: {rejected.get('error')}")
    return out


def cmd_buffer_stats(args: argparse.Namespace) -> int:
    from sitegate.gateway.buffer import Buffer

    path = args.db or config_or_exit(args.config).storage.path
    if not Path(path).exists():
        print(f"sitegate: no buffer database at {path}", file=sys.stderr)
        return 1
    buf = Buffer(path, readonly=True)
    try:
        s = buf.stats()
    finally:
        buf.close()
    rows = [[name, v["rows"], v["last_seq"], v["acked_upto"], v["unacknowledged"],
             v["oldest_unacknowledged"] or "-"] for name, v in s["streams"].items()]
    text = (f"{s['path']}: {s['file_bytes'] / 1e6:.1f} MB on disk, epoch {s.get('epoch', '?')}\n"
            + table(rows, ["stream", "rows", "last seq", "acked up to", "unacked",
                           "oldest unacked"]))
    emit(s, args.json, text)
    return 0
