"""``sitegate meters import CSV``: meters in bulk into the site file (comments kept)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sitegate.common.output import emit
from sitegate.common.sitecheck import ConfigError
from sitegate.gateway.cli_core import DEFAULT_CONFIG, EXIT_CONFIG
from sitegate.gateway.profiles import driver_quantities


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    m = sub.add_parser("meters", help="meters of the site file in bulk")
    msub = m.add_subparsers(dest="meters_command", metavar="COMMAND")
    msub.required = True
    p = msub.add_parser("import", help="add the meters of a CSV file to the site file "
                        "(columns: serial,bus,unit|address|secondary,profile,billing_point"
                        "[,id,interval,role]); nothing is written when a row is wrong")
    p.add_argument("csv", metavar="CSV")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the site file to add to")
    p.add_argument("--out", help="write the result here instead of over the site file")
    p.add_argument("--dry-run", action="store_true", help="check only, write nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_import)


def _refuse(args: argparse.Namespace, source: str, problems: list[dict[str, object]],
            lines: list[str]) -> int:
    emit({"ok": False, "file": source, "problems": problems}, args.json,
         "\n".join([f"{source}: {len(problems)} problem(s), nothing written"]
                   + [f"  {ln}" for ln in lines]))
    return EXIT_CONFIG


def cmd_import(args: argparse.Namespace) -> int:
    from sitegate.firmware_tools.meters_import import MAX_CSV_BYTES, csv_text, plan
    from sitegate.firmware_tools.sitefile_edit import SiteEdit

    path = Path(args.csv)
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            print(f"sitegate: {path}: larger than {MAX_CSV_BYTES // 2**20} MiB", file=sys.stderr)
            return EXIT_CONFIG
        text = csv_text(path.read_bytes())
    except OSError as exc:
        print(f"sitegate: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        site = SiteEdit(args.config)
    except ConfigError as exc:
        return _refuse(args, exc.source, [p.to_dict() for p in exc.problems],
                       [str(p) for p in exc.problems])
    result = plan(text, site.raw(), driver_quantities)
    if result.problems:
        return _refuse(args, str(path), [p.to_dict() for p in result.problems],
                       [str(p) for p in result.problems])
    site.add("meters", result.meters, comment=f"imported from {path.name}")
    try:
        cfg = site.check(driver_quantities) if args.dry_run else site.save(
            driver_quantities, args.out)
    except ConfigError as exc:  # the file as a whole (e.g. load management) says no
        return _refuse(args, exc.source, [p.to_dict() for p in exc.problems],
                       [str(p) for p in exc.problems])
    except OSError as exc:
        print(f"sitegate: cannot write {args.out or args.config}: {exc.strerror}",
              file=sys.stderr)
        return EXIT_CONFIG
    target = args.out or args.config
    verb = "would add" if args.dry_run else "added"
    emit({"ok": True, "file": target, "added": [m["id"] for m in result.meters],
          "meters": len(cfg.meters), "written": not args.dry_run}, args.json,
         f"{target}: {verb} {len(result.meters)} meter(s); {len(cfg.meters)} in all"
         + ("" if args.dry_run else "; `sitegate check-config` passes"))
    return 0
