"""``sitegate mbus decode | scan | read | set-address | profiles``: M-Bus work without a
site configuration. Readable text by default, ``--json`` for scripts. (Drivers do not
import gateway code, so this module prints for itself.)

The link options are those of ``sitegate modbus`` and the site file: ``--serial DEV``, or
``--host H [--port N]``. The earlier spellings still work, unlisted: ``--port DEV`` for the
serial device and ``--tcp-port N``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sitegate.common.progress import Progress
from sitegate.drivers.base import LinkSettings, MeterRef
from sitegate.drivers.diagnose import EXIT_FIELD, FIELD_ERRORS, explain
from sitegate.drivers.mbus.client import MbusBusClient
from sitegate.drivers.mbus.decode import DecodeError, Telegram, decode_telegram
from sitegate.drivers.mbus.frames import normalize_secondary
from sitegate.drivers.mbus.link import Timing
from sitegate.drivers.mbus.profile import ProfileError, load_profile, profile_names
from sitegate.drivers.mbus.scan import Found, primary_scan, secondary_search


def _print(data: Any, as_json: bool, text: str) -> None:
    if as_json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False,
                  default=lambda o: str(o) if isinstance(o, Decimal) else o.isoformat())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def _fail(message: str, code: int = 1) -> int:
    print(f"sitegate mbus: {message}", file=sys.stderr)
    return code


def _link_args(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--serial", metavar="DEV", help="serial device of the M-Bus level "
                                                        "converter, e.g. /dev/ttyUSB1")
    where.add_argument("--host", help="M-Bus-to-Ethernet converter (transparent TCP)")
    p.add_argument("--port", help="converter TCP port (10001)")
    p.add_argument("--tcp-port", dest="port", help=argparse.SUPPRESS)  # the old spelling
    p.add_argument("--baud", type=int, default=2400, choices=[300, 600, 1200, 2400, 4800, 9600,
                                                              19200, 38400], help="(2400)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for a reply (serial: the standard's for the baud "
                        "rate; TCP: 1.0)")
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--json", action="store_true")


def check_link(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--serial DEV or --host H [--port N]; ``--port DEV`` (the old spelling) is --serial."""
    port = args.port
    if port is not None and not port.isdigit():
        if args.serial or args.host:
            parser.error(f"--port {port}: a TCP port is a number (the device is --serial)")
        args.serial, args.port = port, None
    if not (args.serial or args.host):
        parser.error("one of --serial DEV or --host H is required")
    if args.serial and port is not None and port.isdigit():
        parser.error("--port is the TCP port of a converter (--host); not for --serial")
    args.port = int(args.port) if args.port else 10001
    if not 1 <= args.port <= 65535:
        parser.error(f"--port {args.port}: 1-65535")


def _link(args: argparse.Namespace) -> LinkSettings:
    if args.serial:
        return LinkSettings(serial_port=args.serial, baudrate=args.baud, parity="E",
                            timeout=args.timeout or 0.0, retries=args.retries)
    return LinkSettings(host=args.host, port=args.port, timeout=args.timeout or 1.0,
                        retries=args.retries)


def _client(args: argparse.Namespace) -> MbusBusClient:
    link = _link(args)
    if args.serial:
        return MbusBusClient(link, Timing.standard(args.baud, args.timeout))
    return MbusBusClient(link)


def _field(args: argparse.Namespace, exc: BaseException) -> int:
    """A field condition (port, adapter, silent meter): one line and what to check."""
    return _fail(explain(_link(args), exc), EXIT_FIELD)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    m = sub.add_parser("mbus", help="wired M-Bus: decode telegrams, scan a bus, read meters")
    msub = m.add_subparsers(dest="mbus_command", metavar="COMMAND")
    msub.required = True

    p = msub.add_parser("decode", help="decode a telegram given in hex ('-': read stdin)")
    p.add_argument("hex", help="the frame in hex (spaces allowed), or - for stdin")
    p.add_argument("--json", action="store_true", help="the normalized records as JSON")
    p.set_defaults(func=cmd_decode)

    p = msub.add_parser("scan", help="find the meters on a bus (primary or secondary)")
    _link_args(p)
    p.set_defaults(check=lambda a, p=p: check_link(p, a))
    p.add_argument("--secondary", action="store_true", help="wildcard search by secondary "
                                                           "address instead of primary scan")
    p.add_argument("--addresses", default="0-250", help="primary range, e.g. 1-20")
    p.set_defaults(func=cmd_scan)

    p = msub.add_parser("read", help="read one meter and show its readings")
    _link_args(p)
    p.set_defaults(check=lambda a, p=p: check_link(p, a))
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--address", type=int, help="primary address 0-250")
    who.add_argument("--secondary", help="secondary address (8 or 16 hex digits)")
    p.add_argument("--profile", default="mbus_generic", help="M-Bus profile (mbus_generic)")
    p.add_argument("--raw", action="store_true", help="show the decoded telegrams instead")
    p.set_defaults(func=cmd_read)

    p = msub.add_parser("set-address", help="give a meter (by secondary or primary "
                                            "address) a new primary address")
    _link_args(p)
    p.set_defaults(check=lambda a, p=p: check_link(p, a))
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--secondary", help="the meter's secondary address (8 or 16 hex digits)")
    who.add_argument("--address", type=int, help="the meter's primary address now (0-250)")
    p.add_argument("--new", type=int, required=True, metavar="ADDR", help="1-250")
    p.set_defaults(func=cmd_set_address)

    p = msub.add_parser("profiles", help="list the M-Bus profiles")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profiles)


def telegram_text(t: Telegram) -> str:
    lines = []
    if t.identity:
        i = t.identity
        lines.append(f"meter {i.id}  {i.manufacturer} v{i.version}  {i.medium}  "
                     f"access {i.access_number}  status 0x{i.status:02X}  "
                     f"(secondary {i.secondary}, primary {t.address})")
    else:
        lines.append(f"primary {t.address}, CI 0x{t.ci:02X} (no identity header)")
    if t.flags:
        lines.append("status: " + ", ".join(t.flags))
    for p in t.problems:
        lines.append(f"PARTIAL: {p}")
    for r in t.records:
        where = f"s{r.storage}" + (f" t{r.tariff}" if r.tariff else "") + (
            f" u{r.subunit}" if r.subunit else "")
        extra = (" [" + ", ".join(r.qualifiers + r.flags) + "]") if (
            r.qualifiers or r.flags) else ""
        lines.append(f"  {r.index:3d}  {r.quantity or '-':32s} {str(r.value):>22s} "
                     f"{r.unit:6s} {r.function:14s} {where}{extra}")
    if t.more_follow:
        lines.append("  (more records follow in the next telegram)")
    return "\n".join(lines)


def cmd_decode(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.hex == "-" else args.hex
    try:
        t = decode_telegram(text)
    except DecodeError as exc:
        return _fail(f"cannot decode ({exc.kind}): {exc}", 2)
    _print(t.to_dict(), args.json, telegram_text(t))
    return 0


def _range(spec: str) -> range:
    lo, _, hi = spec.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def _found_text(f: Found) -> str:
    return (f"primary {f.primary if f.primary is not None else '-':>3}  secondary "
            f"{f.secondary or '-':16s}  {f.manufacturer:3s}  {f.medium}  {f.note}").rstrip()


def _mask_share(mask: str) -> float:
    """How far the secondary search is: it walks the id digits in order, 0-9 each."""
    share, scale = 0.0, 1.0
    for ch in mask[:8]:
        if ch == "F":
            break
        scale /= 10
        share += int(ch) * scale if ch.isdigit() else 0
    return share


def run_scan(args: argparse.Namespace) -> tuple[int, list[Found] | None]:
    """The scan, each meter shown as it is found; (exit code, meters) or (code, None) after
    a field condition (said in one line)."""
    progress = Progress("secondary search" if args.secondary else "primary scan")
    addresses = _range(args.addresses)

    def found(f: Found) -> None:
        # each meter as it is found: on stdout, unless stdout is for the JSON at the end
        progress.say(_found_text(f), None if args.json else sys.stdout)

    async def go() -> list[Found]:
        client = _client(args)
        try:
            await client.connect()  # a closed port is one line, before any progress
            if args.secondary:
                return await secondary_search(
                    client, progress=lambda m: progress.update(_mask_share(m), 1, m[:8]),
                    found=found)
            return await primary_scan(
                client, addresses, found=found,
                progress=lambda a: progress.update(a - addresses.start, len(addresses),
                                                   f"address {a}"))
        finally:
            await client.close()

    try:
        result = asyncio.run(go())
    except FIELD_ERRORS as exc:
        progress.close()
        return _field(args, exc), None
    progress.update(1, 1)
    progress.close()
    return 0, result


def cmd_scan(args: argparse.Namespace) -> int:
    code, result = run_scan(args)
    if result is None:
        return code
    _print([f.to_dict() for f in result], args.json,
           f"{len(result)} meter(s) found" if result else "no meters found")
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    try:
        load_profile(args.profile)
        secondary = normalize_secondary(args.secondary) if args.secondary else None
    except (ProfileError, ValueError) as exc:
        return _fail(str(exc), 2)
    meter = MeterRef("adhoc", args.profile, address=args.address, secondary=secondary)

    async def go() -> Any:
        client = _client(args)
        try:
            if args.raw:
                return [decode_telegram(raw) for raw in await client.read_telegrams(meter)]
            return await client.read(meter, datetime.now(UTC))
        finally:
            await client.close()

    try:
        result = asyncio.run(go())
    except DecodeError as exc:
        return _fail(str(exc))
    except FIELD_ERRORS as exc:
        return _field(args, exc)
    if args.raw:
        _print([t.to_dict() for t in result], args.json,
               "\n\n".join(telegram_text(t) for t in result))
        return 0
    lines = [f"{r.quantity:28s} {str(r.value):>18s} {r.unit:5s} {r.quality}"
             + (f" ({', '.join(r.flags)})" if r.flags else "") for r in result.readings]
    lines += [f"event {e['kind']}: {e['message']}" for e in result.events]
    _print({"readings": [r.to_dict() for r in result.readings], "events": result.events},
           args.json, "\n".join(lines) or "no readings")
    return 0


def cmd_set_address(args: argparse.Namespace) -> int:
    async def go() -> None:
        client = _client(args)
        try:
            await client.set_address(args.secondary, args.new, address=args.address)
        finally:
            await client.close()

    try:
        asyncio.run(go())
    except ValueError as exc:
        return _fail(str(exc), 2)
    except FIELD_ERRORS as exc:
        return _field(args, exc)
    who = (f"meter {args.secondary}" if args.secondary
           else f"the meter at primary address {args.address}")
    _print({"secondary": args.secondary, "address": args.address, "primary": args.new},
           args.json, f"{who} now answers at primary address {args.new}")
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    rows = []
    for name in profile_names():
        p = load_profile(name)
        rows.append({"name": name, "vendor": p.vendor, "model": p.model,
                     "quantities": sorted({m.name for m in p.maps})})
    _print(rows, args.json, "\n".join(f"{r['name']:28s} {r['vendor']} {r['model']}"
                                      for r in rows))
    return 0
