"""``sitegate modbus read | scan | profiles``: ad-hoc Modbus work on a bus, no config needed."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from sitegate.common.output import emit, table
from sitegate.drivers.base import DeviceError, LinkSettings, MeterRef, NoResponse
from sitegate.drivers.modbus.client import ModbusBusClient
from sitegate.drivers.modbus.planner import Block
from sitegate.drivers.modbus.profile import ProfileError, load_profile, profile_names
from sitegate.gateway.cli_core import _readings_text

SCAN_BAUDS = (9600, 19200, 38400, 2400, 4800, 57600, 115200)


def _link_args(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="Modbus TCP device or RS485-Ethernet converter")
    where.add_argument("--serial", metavar="DEV", help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--port", type=int, default=502, help="TCP port (default 502)")
    p.add_argument("--framing", choices=["tcp", "rtu-over-tcp"], default="tcp",
                   help="on TCP: Modbus TCP (default) or RTU frames through a converter")
    p.add_argument("--baud", type=int, default=None, help="serial baud rate (default 9600)")
    p.add_argument("--parity", choices=["N", "E", "O"], default="N")
    p.add_argument("--stopbits", type=int, choices=[1, 2], default=1)
    p.add_argument("--timeout", type=float, default=1.0, help="seconds per request")
    p.add_argument("--json", action="store_true")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    m = sub.add_parser("modbus", help="ad-hoc Modbus reads and bus scans")
    msub = m.add_subparsers(dest="modbus_command", metavar="COMMAND")
    msub.required = True

    p = msub.add_parser("read", help="read every quantity of a profile from one device")
    _link_args(p)
    p.add_argument("--unit", type=int, required=True, help="Modbus unit id (1-247)")
    p.add_argument("--profile", required=True, help="device profile, see 'modbus profiles'")
    p.set_defaults(func=cmd_read)

    p = msub.add_parser("scan", help="find which unit ids answer (serial: at which baud rate)")
    _link_args(p)
    p.add_argument("--units", default="1-247", help="range of unit ids, e.g. 1-32")
    p.add_argument("--bauds", default=None,
                   help="comma-separated baud rates to try on serial "
                        f"(default {','.join(map(str, SCAN_BAUDS))}, or --baud if given)")
    p.set_defaults(func=cmd_scan)

    p = msub.add_parser("profiles", help="list the device profiles")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profiles)


def _link(args: argparse.Namespace, baud: int | None = None, timeout: float | None = None,
          retries: int = 1) -> LinkSettings:
    if args.serial:
        return LinkSettings(serial_port=args.serial, baudrate=baud or args.baud or 9600,
                            parity=args.parity, stopbits=args.stopbits,
                            timeout=timeout or args.timeout, retries=retries)
    return LinkSettings(host=args.host, port=args.port, framing=args.framing,
                        timeout=timeout or args.timeout, retries=retries)


def cmd_read(args: argparse.Namespace) -> int:
    try:
        load_profile(args.profile)
    except ProfileError as exc:
        print(f"sitegate: {exc}", file=sys.stderr)
        return 2

    async def go() -> dict[str, Any]:
        client = ModbusBusClient(_link(args))
        try:
            res = await client.read(MeterRef("adhoc", args.profile, unit=args.unit),
                                    datetime.now(UTC))
        finally:
            await client.close()
        return {"unit": args.unit, "profile": args.profile, "requests": res.requests,
                "readings": [r.to_dict() for r in res.readings], "events": res.events}

    try:
        out = asyncio.run(go())
    except (NoResponse, DeviceError, OSError) as exc:
        print(f"sitegate: {exc}", file=sys.stderr)
        return 1
    emit(out, args.json, _readings_text(f"unit {args.unit} ({args.profile}, "
                                        f"{out['requests']} requests)", out["readings"]))
    return 0


def _units(spec: str) -> list[int]:
    lo, _, hi = spec.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


async def _probe(client: ModbusBusClient, unit: int) -> str | None:
    """Any reply, even a Modbus exception, proves a device listens at ``unit``."""
    for function in ("holding", "input"):
        try:
            await client.read_block(unit, Block(function, 0, 1))
            return "answers"
        except DeviceError as exc:
            if exc.kind == "modbus_exception":
                return "answers (exception for register 0)"
            return f"garbled reply ({exc.kind})"
        except NoResponse:
            return None
    return None


def cmd_scan(args: argparse.Namespace) -> int:
    units = _units(args.units)
    if args.serial:
        bauds = ([int(b) for b in args.bauds.split(",")] if args.bauds
                 else [args.baud] if args.baud else list(SCAN_BAUDS))
    else:
        bauds = [0]
    timeout = min(args.timeout, 0.3)

    async def go() -> list[dict[str, Any]]:
        found = []
        for baud in bauds:
            client = ModbusBusClient(_link(args, baud or None, timeout, retries=0))
            try:
                for unit in units:
                    verdict = await _probe(client, unit)
                    if verdict:
                        found.append({"unit": unit, "baud": baud or None, "result": verdict})
                        if not args.json:
                            print(f"  unit {unit}" + (f" @ {baud}" if baud else "")
                                  + f": {verdict}", file=sys.stderr)
            finally:
                await client.close()
        return found

    found = asyncio.run(go())
    text = (table([[f["unit"], f["baud"] or "-", f["result"]] for f in found],
                  ["unit", "baud", "result"]) if found else "no device answered")
    emit({"found": found, "units_scanned": len(units), "bauds": bauds}, args.json, text)
    return 0 if found else 1


def cmd_profiles(args: argparse.Namespace) -> int:
    rows = []
    for name in profile_names():
        p = load_profile(name)
        rows.append({"name": name, "vendor": p.vendor, "model": p.model,
                     "quantities": len(p.registers)})
    emit(rows, args.json, table([[r["name"], r["vendor"], r["model"], r["quantities"]]
                                 for r in rows], ["profile", "vendor", "model", "quantities"]))
    return 0
