"""``sitegate ocpp list | remote-start | remote-stop | unlock | reset | set-limit | trigger |
get-config | change-config``: the running daemon's charge points, through its control socket.
"""

from __future__ import annotations

import argparse
from typing import Any

from sitegate.common.output import emit, table


def _common(p: argparse.ArgumentParser, cp: bool = True) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", "-c", metavar="FILE",
                       help="site configuration (for its socket)")
    where.add_argument("--socket", metavar="PATH", help="the daemon's control socket")
    p.add_argument("--json", action="store_true", help="print JSON")
    if cp:
        p.add_argument("charge_point", help="charge point id")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    o = sub.add_parser("ocpp", help="charge points connected to the running daemon")
    osub = o.add_subparsers(dest="ocpp_command", metavar="COMMAND")
    osub.required = True

    p = osub.add_parser("list", help="connected charge points, connectors, sessions, limits")
    _common(p, cp=False)
    p.set_defaults(func=cmd_list)

    p = osub.add_parser("remote-start", help="start a session for a badge")
    _common(p)
    p.add_argument("--badge", required=True, help="badge id the session is billed to")
    p.add_argument("--connector", type=int, help="connector (EVSE) number")
    p.set_defaults(func=cmd_simple, ocpp_action="remote-start",
                   keys=("badge", "connector"))

    p = osub.add_parser("remote-stop", help="stop the running session")
    _common(p)
    p.add_argument("--connector", type=int, help="needed when several sessions run")
    p.add_argument("--session", help="session id, see 'ocpp list'")
    p.set_defaults(func=cmd_simple, ocpp_action="remote-stop", keys=("connector", "session"))

    p = osub.add_parser("unlock", help="unlock a connector (stuck cable)")
    _common(p)
    p.add_argument("--connector", type=int, default=1)
    p.set_defaults(func=cmd_simple, ocpp_action="unlock", keys=("connector",))

    p = osub.add_parser("reset", help="reboot the charge point")
    _common(p)
    p.add_argument("--hard", action="store_true", help="hard reset (ends sessions at once)")
    p.set_defaults(func=cmd_simple, ocpp_action="reset", keys=("hard",))

    p = osub.add_parser("set-limit", help="cap a connector's current (A per phase)")
    _common(p)
    p.add_argument("--connector", type=int, default=1)
    p.add_argument("--amps", required=True, help="current limit, A per phase (0 pauses)")
    p.set_defaults(func=cmd_simple, ocpp_action="set-limit", keys=("connector", "amps"))

    p = osub.add_parser("trigger", help="ask the charge point to send a message now")
    _common(p)
    p.add_argument("message", help="e.g. MeterValues, StatusNotification, Heartbeat")
    p.add_argument("--connector", type=int)
    p.set_defaults(func=cmd_simple, ocpp_action="trigger", keys=("message", "connector"))

    p = osub.add_parser("get-config", help="read configuration keys (all when none given)")
    _common(p)
    p.add_argument("keys", nargs="*", help="1.6 keys, or Component.Variable on 2.0.1")
    p.set_defaults(func=cmd_get_config)

    p = osub.add_parser("change-config", help="change one configuration key")
    _common(p)
    p.add_argument("key")
    p.add_argument("value")
    p.set_defaults(func=cmd_simple, ocpp_action="change-config", keys=("key", "value"))


def _call(args: argparse.Namespace, name: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    from sitegate.gateway.control import cli_call

    return cli_call(args.socket, args.config, f"sitegate ocpp {name}", "ocpp." + name, payload)


def cmd_list(args: argparse.Namespace) -> int:
    result = _call(args, "list", {})
    if result is None:
        return 2
    rows = []
    for cp in result["charge_points"]:
        sessions = {s["connector"]: s for s in cp["sessions"]}
        connectors = sorted({int(k) for k in cp["connectors"]} | set(sessions)) or [0]
        for n in connectors:
            s = sessions.get(n)
            rows.append([cp["id"], cp["version"], cp["kind"], n,
                         cp["connectors"].get(str(n), "?"),
                         f"{s['badge']} {s['energy_wh']} Wh" if s else "",
                         cp["limits_a"].get(str(n), "")])
    text = table(rows, ["charge point", "ocpp", "kind", "conn", "status", "session", "limit A"])
    emit(result, args.json, text if rows else "no charge point connected")
    return 0


def cmd_simple(args: argparse.Namespace) -> int:
    payload: dict[str, Any] = {"charge_point": args.charge_point}
    for k in args.keys:
        if getattr(args, k) is not None:
            payload[k] = getattr(args, k)
    result = _call(args, args.ocpp_action, payload)
    if result is None:
        return 2
    emit(result, args.json, f"{args.charge_point}: {args.ocpp_action} {result['status']}")
    return 0 if result["status"] in ("Accepted", "Unlocked", "Scheduled") else 2


def cmd_get_config(args: argparse.Namespace) -> int:
    result = _call(args, "get-config", {"charge_point": args.charge_point,
                                        "keys": args.keys or None})
    if result is None:
        return 2
    rows: list[list[Any]] = [[k, v] for k, v in sorted(result["configuration"].items())]
    rows += [[k, "(unknown key)"] for k in result["unknown"]]
    emit(result, args.json, table(rows, ["key", "value"]))
    return 0
