"""From a bus scan to the site file, and re-addressing meters: the installer's side of
``sitegate modbus scan|set-address`` and ``sitegate mbus scan|set-address``.

The M-Bus subcommands are the drivers' (``drivers/mbus/cli.py``, which knows nothing of the
site file); ``register`` adds ``--write-config`` to its ``scan`` here, so the site file is
edited by the gateway side only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from sitegate.common.output import emit
from sitegate.common.sitecheck import ConfigError
from sitegate.drivers.base import LinkSettings
from sitegate.drivers.diagnose import EXIT_FIELD, FIELD_ERRORS, explain, quiet_pymodbus
from sitegate.gateway.cli_core import EXIT_CONFIG
from sitegate.gateway.profiles import driver_quantities


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    mbus = sub.choices.get("mbus")
    if mbus is None:
        return
    commands = next(a for a in mbus._actions if isinstance(a, argparse._SubParsersAction))
    scan = commands.choices["scan"]
    write_config_args(scan, "M-Bus")
    scan.set_defaults(func=cmd_mbus_scan)


# -- writing a scan into the site file -------------------------------------------------------


def write_config_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--write-config", metavar="SITE", help=f"add what answers to this site "
                   f"file: the bus (unless it has one on this line) and a meter per {what} "
                   "device; comments kept, checked like check-config")
    p.add_argument("--bus", metavar="NAME", help="with --write-config: the new bus's name")
    p.add_argument("--interval", type=int, help="with --write-config: poll interval (s)")



def _write(path: str, proposal: Any, source: str) -> tuple[int, dict[str, Any], list[str]]:
    """(exit code, JSON, text lines) of adding ``proposal`` to the site file ``path``."""
    from sitegate.firmware_tools.sitefile_edit import SiteEdit

    lines = [f"  skipped {s}" for s in proposal.skipped]
    written: dict[str, Any] = {"file": path, **proposal.to_dict(), "written": False}
    try:
        site = SiteEdit(path)
        if proposal.bus is not None:
            site.add("buses", [proposal.bus], comment=f"found by {source}")
        site.add("meters", proposal.meters, comment=f"found by {source}")
        if proposal.meters or proposal.bus is not None:
            site.save(driver_quantities)
            written["written"] = True
    except ConfigError as exc:
        written["problems"] = [p.to_dict() for p in exc.problems]
        return EXIT_CONFIG, written, lines + [f"{exc.source}: not written:"] + [
            f"  {p}" for p in exc.problems]
    except OSError as exc:
        written["problems"] = [{"message": str(exc)}]
        return EXIT_CONFIG, written, lines + [f"{path}: cannot write: {exc.strerror}"]
    head = (f"{path}: added {len(proposal.meters)} meter(s) on bus {proposal.bus_name!r}"
            + (" (new bus)" if proposal.bus is not None else "")
            + "; `sitegate check-config` passes")
    return 0, written, [head, *lines]


def write_modbus(args: argparse.Namespace, found: list[dict[str, Any]]
                 ) -> tuple[int, dict[str, Any], list[str]]:
    from sitegate.firmware_tools import scan_config
    from sitegate.firmware_tools.sitefile_edit import SiteEdit

    if args.profile:
        try:
            driver_quantities("modbus", args.profile)
        except Exception as exc:  # noqa: BLE001 - ProfileProblem: one line
            return EXIT_CONFIG, {"problems": [{"message": str(exc)}]}, [str(exc)]
    link = scan_config.Link("modbus", serial_port=args.serial, parity=args.parity,
                            stopbits=args.stopbits, host=args.host,
                            port=args.port if args.host else None,
                            framing=args.framing if args.host else None)
    try:
        raw = SiteEdit(args.write_config).raw()
    except ConfigError as exc:
        return EXIT_CONFIG, {"problems": [p.to_dict() for p in exc.problems]}, [
            str(p) for p in exc.problems]
    proposal = scan_config.modbus(raw, link, found, args.bus, args.profile, args.interval)
    return _write(args.write_config, proposal, "sitegate modbus scan")


def cmd_mbus_scan(args: argparse.Namespace) -> int:
    from sitegate.drivers.mbus.cli import run_scan

    code, found = run_scan(args)
    if found is None:
        return code
    rows = [f.to_dict() for f in found]
    text = f"{len(rows)} meter(s) found" if rows else "no meters found"
    if not (args.write_config and rows):
        emit(rows, args.json, text)  # as `mbus scan` always printed it
        return code
    from sitegate.firmware_tools import scan_config
    from sitegate.firmware_tools.sitefile_edit import SiteEdit

    link = scan_config.Link("mbus", serial_port=args.serial,
                            baudrate=args.baud if args.baud != 2400 else None,
                            host=args.host, port=args.port if args.host else None)
    try:
        raw = SiteEdit(args.write_config).raw()
    except ConfigError as exc:
        emit({"found": rows, "problems": [p.to_dict() for p in exc.problems]}, args.json,
             "\n".join(str(p) for p in exc.problems))
        return EXIT_CONFIG
    proposal = scan_config.mbus(raw, link, rows, args.bus, mbus_profile_for, args.interval)
    code, written, lines = _write(args.write_config, proposal, "sitegate mbus scan")
    emit({"found": rows, "config": written}, args.json, "\n".join([text, *lines]))
    return code


def mbus_profile_for(found: dict[str, Any]) -> str:
    """The M-Bus profile whose [identify] claims the meter's manufacturer and medium; the
    generic profile otherwise (it keeps every record)."""
    from sitegate.drivers.mbus.profile import identify

    return identify(str(found.get("manufacturer") or ""), found.get("medium_code"))


# -- re-addressing ---------------------------------------------------------------------------


def set_modbus_address(args: argparse.Namespace, link: LinkSettings) -> int:
    from sitegate.drivers.modbus.client import ModbusBusClient
    from sitegate.drivers.modbus.identify import identify
    from sitegate.drivers.modbus.profile import ProfileError, load_profile
    from sitegate.drivers.modbus.settings import SettingError, apply_settings

    if args.new is None and args.new_baud is None:
        print("sitegate: give --new UNIT and/or --new-baud BAUD", file=sys.stderr)
        return EXIT_CONFIG
    quiet_pymodbus()

    async def go() -> dict[str, Any]:
        client = ModbusBusClient(link)
        try:
            await client.connect()
            name = args.profile
            if name is None:
                ident = await identify(client, args.unit)
                if ident.profile is None:
                    raise SettingError(f"unit {args.unit}: {ident.note or 'not identified'}; "
                                       "give --profile NAME")
                name = ident.profile
            return await apply_settings(client, args.unit, load_profile(name),
                                        new_unit=args.new, new_baud=args.new_baud)
        finally:
            await client.close()

    try:
        out = asyncio.run(go())
    except (SettingError, ProfileError) as exc:
        print(f"sitegate: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except FIELD_ERRORS as exc:
        print(f"sitegate: {explain(link, exc)}", file=sys.stderr)
        return EXIT_FIELD
    emit(out, args.json, "\n".join(out["lines"]))
    return 0
