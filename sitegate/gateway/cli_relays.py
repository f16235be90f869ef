"""``sitegate relay list | on POINT | off POINT`` (the running daemon's RFID relay points,
through its control socket) and ``sitegate rfid listen`` (UIDs as a reader presents them,
for the installer; the reader is opened here, so the daemon must not hold it)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from sitegate.common.output import emit
from sitegate.gateway.points_view import point_rows

EXIT_FAIL, EXIT_FIELD = 1, 3


def _where(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("-c", "--config", metavar="FILE", help="site configuration")
    where.add_argument("--socket", metavar="PATH", help="the daemon's control socket")
    p.add_argument("--json", action="store_true", help="print JSON")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    r = sub.add_parser("relay", help="RFID relay points (laundry, eBike) of the running daemon")
    rsub = r.add_subparsers(dest="relay_command", metavar="COMMAND")
    rsub.required = True
    p = rsub.add_parser("list", help="points, relay state, power, running sessions")
    _where(p)
    p.set_defaults(func=cmd_list)
    for name, text in (("on", "switch a point's relay on (wiring test; no session)"),
                       ("off", "switch a point's relay off (ends its running session)")):
        p = rsub.add_parser(name, help=text)
        _where(p)
        p.add_argument("point", help="point id")
        p.set_defaults(func=cmd_switch, relay_action=name)

    f = sub.add_parser("rfid", help="RFID readers")
    fsub = f.add_subparsers(dest="rfid_command", metavar="COMMAND")
    fsub.required = True
    p = fsub.add_parser("listen", help="print UIDs as presented (stop the daemon first: "
                                       "it holds the readers)")
    p.add_argument("-c", "--config", metavar="FILE", help="use this site file's readers")
    p.add_argument("--reader", help="only this reader of the site file")
    p.add_argument("--type", choices=["keyboard", "serial"], help="a reader not in a file")
    p.add_argument("--device", help="its device: /dev/input/by-id/... or /dev/ttyUSB0")
    p.add_argument("--baudrate", type=int, default=9600)
    p.add_argument("--encoding", choices=["text", "decimal"], default="text")
    p.add_argument("--badge-format", choices=["as-is", "hex", "hex-reversed"], default="hex")
    p.add_argument("--count", type=int, help="stop after this many presentations")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_listen)


def _call(args: argparse.Namespace, name: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    from sitegate.gateway.control import cli_call

    return cli_call(args.socket, args.config, f"sitegate relay {name}", "relay." + name, payload)


def cmd_list(args: argparse.Namespace) -> int:
    result = _call(args, "list", {})
    if result is None:
        return EXIT_FAIL
    text = point_rows(result["points"]) if result["points"] else "no relay points configured"
    emit(result, args.json, text)
    return 0


def cmd_switch(args: argparse.Namespace) -> int:
    result = _call(args, args.relay_action, {"point": args.point})
    if result is None:
        return EXIT_FAIL
    confirmed = result.get("confirmed", True)
    emit(result, args.json, f"{args.point}: relay {result['relay']}"
         + ("" if confirmed else " (NOT confirmed by the device)")
         + (f", session {result['session']} ended" if result.get("session") else ""))
    return 0 if confirmed else 2


def cmd_listen(args: argparse.Namespace) -> int:
    from sitegate.common.sitefile_relays import ReaderConfig

    readers: list[ReaderConfig] = []
    if args.config:
        from sitegate.gateway.cli_core import config_or_exit

        cfg = config_or_exit(args.config)
        if _daemon_running(cfg.health.socket):
            print(f"sitegate rfid listen: the daemon is running ({cfg.health.socket}) and "
                  "holds the readers: stop it first (systemctl stop sitegate), or watch "
                  "'sitegate relay list'", file=sys.stderr)
            return EXIT_FIELD
        readers = [r for r in (cfg.relays.readers if cfg.relays else [])
                   if args.reader in (None, r.id)]
        if not readers:
            print(f"sitegate rfid listen: no reader{' ' + args.reader if args.reader else ''} "
                  f"in {args.config}", file=sys.stderr)
            return EXIT_FAIL
    elif args.type and args.device:
        readers = [ReaderConfig(id="cli", type=args.type, device=args.device,
                                baudrate=args.baudrate, encoding=args.encoding,
                                badge_format=args.badge_format, debounce=0)]
    else:
        print("sitegate rfid listen: give -c FILE, or --type and --device", file=sys.stderr)
        return EXIT_FAIL
    try:
        return asyncio.run(_listen(readers, args))
    except KeyboardInterrupt:
        return 0


def _daemon_running(socket_path: str) -> bool:
    from sitegate.gateway.control import ControlError, call

    try:
        call(socket_path, "status", timeout=3)
    except (ControlError, OSError):
        return False
    return True


async def _listen(readers: list[Any], args: argparse.Namespace) -> int:
    from sitegate.drivers.rfid.keyboard import ReaderUnavailable
    from sitegate.gateway.points_service import make_reader

    seen = asyncio.Queue[dict[str, Any]]()
    tasks = [asyncio.create_task(_one(r, make_reader(r), seen)) for r in readers]
    count = 0
    try:
        while args.count is None or count < args.count:
            getter = asyncio.ensure_future(seen.get())
            done, _ = await asyncio.wait([getter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                exc = next(t.exception() for t in done if t is not getter)
                msg = str(exc) if isinstance(exc, ReaderUnavailable) else repr(exc)
                print(f"sitegate rfid listen: {msg}", file=sys.stderr)
                return EXIT_FIELD
            item = getter.result()
            count += 1
            if args.json:
                print(json.dumps(item), flush=True)
            else:
                print(f"{item['reader']}: {item['raw']!r} -> {item['uid'] or item['error']}",
                      flush=True)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return 0


async def _one(cfg: Any, reader: Any, out: asyncio.Queue[dict[str, Any]]) -> None:
    from sitegate.drivers.rfid.uid import BadRead, reader_text
    from sitegate.ocpp_server.badges import normalize

    def opened() -> None:  # on stderr: stdout is the UIDs (JSON lines with --json)
        print(f"listening on {cfg.id} ({cfg.device}); present a card (Ctrl-C ends)",
              file=sys.stderr, flush=True)

    async for line in reader.lines(opened):
        try:
            uid, error = normalize(reader_text(line, cfg.encoding), cfg.badge_format), None
        except BadRead as exc:
            uid, error = None, str(exc)
        await out.put({"reader": cfg.id, "raw": line, "uid": uid, "error": error})
