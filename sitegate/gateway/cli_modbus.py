"""``sitegate modbus read | scan | set-address | profiles``: Modbus work on a bus without
the daemon; ``scan --write-config`` turns what answers into site-file entries."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from sitegate.common.output import emit, table
from sitegate.common.progress import Progress
from sitegate.drivers.base import BusError, LinkSettings, MeterRef
from sitegate.drivers.diagnose import EXIT_FIELD, FIELD_ERRORS, explain, quiet_pymodbus
from sitegate.drivers.modbus.client import ModbusBusClient
from sitegate.drivers.modbus.profile import ProfileError, load_profile, profile_names
from sitegate.drivers.modbus.scan import found_text, scan_units
from sitegate.gateway.cli_core import _readings_text
from sitegate.gateway.cli_scan_config import write_config_args

SCAN_BAUDS = (9600, 19200, 38400, 2400, 4800, 57600, 115200)


def unit_id(text: str) -> int:
    """A Modbus unit id as argparse checks it: 1-247 (0 is broadcast, 248-255 reserved)."""
    try:
        unit = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= unit <= 247:
        raise argparse.ArgumentTypeError(f"{unit} is not a unit id: 1-247")
    return unit


def _link_args(p: argparse.ArgumentParser) -> None:
    # One vocabulary with `sitegate mbus` and the site file: --serial DEV for a serial
    # device, --host H [--port N] for TCP.
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="Modbus TCP device or RS485-Ethernet converter")
    where.add_argument("--serial", metavar="DEV", help="serial device, e.g. /dev/ttyUSB0")
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
    p.add_argument("--unit", type=unit_id, required=True, help="Modbus unit id (1-247)")
    p.add_argument("--profile", required=True, help="device profile, see 'modbus profiles'")
    p.set_defaults(func=cmd_read)

    p = msub.add_parser("scan", help="find which unit ids answer (serial: at which baud rate)")
    _link_args(p)
    p.add_argument("--units", type=_units, default="1-247", help="range of unit ids, e.g. 1-32")
    p.add_argument("--bauds", default=None,
                   help="comma-separated baud rates to try on serial "
                        f"(default {','.join(map(str, SCAN_BAUDS))}, or --baud if given)")
    p.add_argument("--identify", action="store_true",
                   help="read the model and serial registers the profiles declare and "
                        "propose a profile per unit")
    write_config_args(p, "Modbus")
    p.add_argument("--profile", help="with --write-config: the profile of units the scan "
                   "cannot identify")
    p.set_defaults(func=cmd_scan)

    p = msub.add_parser("set-address", help="give the meter at a unit id a new unit id "
                        "and/or baud rate (profiles that declare their setting registers)")
    _link_args(p)
    p.add_argument("--unit", type=unit_id, required=True, help="the meter's unit id now")
    p.add_argument("--new", type=unit_id, metavar="UNIT", help="its new unit id (1-247)")
    p.add_argument("--new-baud", type=int, metavar="BAUD", help="its new baud rate")
    p.add_argument("--profile", help="the meter's profile (default: identified on the bus)")
    p.set_defaults(func=cmd_set_address)

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

    quiet_pymodbus()

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
    except FIELD_ERRORS as exc:
        print(f"sitegate: {explain(_link(args), exc)}", file=sys.stderr)
        return EXIT_FIELD
    emit(out, args.json, _readings_text(f"unit {args.unit} ({args.profile}, "
                                        f"{out['requests']} requests)", out["readings"]))
    return 0


def _units(spec: str) -> list[int]:
    lo, _, hi = spec.partition("-")
    try:
        units = list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: a range like 1-32") from None
    if not units or units[0] < 1 or units[-1] > 247:
        raise argparse.ArgumentTypeError(f"{spec!r}: unit ids are 1-247")
    return units


def cmd_scan(args: argparse.Namespace) -> int:
    units: list[int] = args.units
    if args.serial:
        bauds = ([int(b) for b in args.bauds.split(",")] if args.bauds
                 else [args.baud] if args.baud else list(SCAN_BAUDS))
    else:
        bauds = [0]
    timeout = min(args.timeout, 0.3)
    identify = args.identify or bool(args.write_config)
    quiet_pymodbus()
    progress = Progress("scanning")
    total = len(units) * len(bauds)

    def show(row: dict[str, Any]) -> None:
        # each device as it is found: on stdout, unless stdout is for the JSON at the end
        progress.say(found_text(row), None if args.json else sys.stdout)

    async def go() -> list[dict[str, Any]]:
        found = []
        for b, baud in enumerate(bauds):
            client = ModbusBusClient(_link(args, baud or None, timeout, retries=0))
            try:
                await client.connect()
                found += await scan_units(
                    client, units, identify=identify, baud=baud or None, found=show,
                    progress=lambda i, n, what, b=b: progress.update(b * len(units) + i,
                                                                     total, what))
            finally:
                await client.close()
        progress.update(total, total)
        return found

    try:
        found = asyncio.run(go())
    except (BusError, OSError, TimeoutError) as exc:
        progress.close()
        print(f"sitegate: {explain(_link(args), exc, 'device')}", file=sys.stderr)
        return EXIT_FIELD
    progress.close()
    out: dict[str, Any] = {"found": found, "units_scanned": len(units), "bauds": bauds}
    text = (f"{len(found)} device(s) answered" if found
            else "no device answered (check wiring, baud rate, parity and the unit range)")
    if args.write_config and found:
        from sitegate.gateway.cli_scan_config import write_modbus

        code, written, lines = write_modbus(args, found)
        out["config"] = written
        text += "\n" + "\n".join(lines)
        emit(out, args.json, text)
        return code
    emit(out, args.json, text)
    return 0 if found else 1


def cmd_set_address(args: argparse.Namespace) -> int:
    from sitegate.gateway.cli_scan_config import set_modbus_address

    return set_modbus_address(args, _link(args))


def cmd_profiles(args: argparse.Namespace) -> int:
    rows = []
    for name in profile_names():
        p = load_profile(name)
        rows.append({"name": name, "vendor": p.vendor, "model": p.model,
                     "quantities": len(p.registers)})
    emit(rows, args.json, table([[r["name"], r["vendor"], r["model"], r["quantities"]]
                                 for r in rows], ["profile", "vendor", "model", "quantities"]))
    return 0
