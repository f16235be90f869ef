"""``sitegate provision bundle | write | take-up``: from a site file and a claim token to a
card that makes a gateway of a freshly flashed Raspberry Pi OS (see
sitegate.firmware_tools.provision)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sitegate.common.output import emit
from sitegate.gateway.cli_core import DEFAULT_CONFIG

EXIT_PROBLEM = 2


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    top = sub.add_parser("provision", help="provisioning bundles for a gateway's SD card")
    psub = top.add_subparsers(dest="provision_command", metavar="COMMAND")
    psub.required = True

    p = psub.add_parser("bundle", help="write the boot-partition files and the door label")
    p.add_argument("--site-config", required=True, metavar="FILE", type=Path)
    p.add_argument("--claim", required=True, metavar="TOKEN",
                   help="from sitegate-cloud gateways claim-token ('-' reads standard input)")
    p.add_argument("--ca", required=True, metavar="FILE", type=Path,
                   help="the cloud's CA certificate (ca.crt of its key directory)")
    p.add_argument("--out", required=True, metavar="DIR", type=Path)
    p.add_argument("--static", metavar="ADDR/PREFIX", help="eth0 address (default: DHCP)")
    p.add_argument("--router", metavar="IP", help="default route with --static")
    p.add_argument("--dns", metavar="IP", action="append", default=[])
    p.add_argument("--wifi-ssid", metavar="SSID", help="a 4G router's Wi-Fi")
    p.add_argument("--wifi-psk-file", metavar="FILE", type=Path)
    p.add_argument("--ssh-key", metavar="FILE", type=Path,
                   help="public key of the 'technician' login (none: no login user)")
    p.add_argument("--deb", metavar="FILE", type=Path,
                   help="a sitegate_*.deb to install at first boot")
    p.add_argument("--release-key", metavar="FILE", type=Path,
                   help="release.pub of the cloud's key directory: the gateway trusts "
                   "update bundles signed with it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bundle)

    p = psub.add_parser("write", help="copy a bundle onto a card's boot partition")
    p.add_argument("--boot-partition", required=True, metavar="PATH",
                   help="the mounted partition, or a FAT image file (written with mtools)")
    p.add_argument("--bundle", default=".", metavar="DIR", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_write)

    p = psub.add_parser("take-up", help="take a bundle from the boot partition into this "
                        "gateway (the unit runs it before each start)")
    p.add_argument("--boot-partition", metavar="PATH",
                   help="default: /boot/firmware or /boot, whichever holds a bundle")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG, type=Path,
                   help="where the site file goes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_take_up)


def _fail(what: str) -> int:
    print(what, file=sys.stderr)
    return EXIT_PROBLEM


def cmd_bundle(args: argparse.Namespace) -> int:
    from sitegate.firmware_tools import provision as prov
    from sitegate.firmware_tools.provision_label import LabelError, make_label
    from sitegate.gateway.profiles import driver_quantities

    token = sys.stdin.readline() if args.claim == "-" else args.claim
    try:
        psk = (prov.read_limited(args.wifi_psk_file, 1024).decode().strip()
               if args.wifi_psk_file else None)
        key = prov.read_limited(args.ssh_key, 16 * 1024).decode().strip() if args.ssh_key else None
        net = prov.Network(static=args.static, router=args.router, dns=tuple(args.dns),
                           wifi_ssid=args.wifi_ssid, wifi_psk=psk)
        manifest = prov.make_bundle(args.site_config, token, args.ca, args.out, net,
                                    ssh_key=key, deb=args.deb,
                                    release_key=args.release_key, profiles=driver_quantities)
    except (prov.BundleError, UnicodeDecodeError) as exc:
        return _fail(f"provision bundle: {exc}")
    except OSError as exc:
        return _fail(f"provision bundle: {args.out}: {exc.strerror or exc}")
    try:
        label = [str(p) for p in make_label(manifest["gateway_id"], token.strip(),
                                            manifest["broker"], args.out)]
        note = f"label: {', '.join(label)}"
    except LabelError as exc:
        label, note = [], f"label: not made ({exc})"
    data = {"gateway_id": manifest["gateway_id"], "broker": manifest["broker"],
            "out": str(args.out), "card_files": [p.as_posix() for p in
                                                 prov.card_files(args.out)],
            "label": label}
    emit(data, args.json, f"bundle for {manifest['gateway_id']} in {args.out}\n{note}\n"
         f"next: sitegate provision write --bundle {args.out} --boot-partition PATH")
    return 0


def cmd_write(args: argparse.Namespace) -> int:
    from sitegate.firmware_tools.bootpart import BootPartitionError, open_partition
    from sitegate.firmware_tools.provision import BundleError, write_card

    try:
        card = open_partition(args.boot_partition)
        written = write_card(args.bundle, card)
    except (BundleError, BootPartitionError) as exc:
        return _fail(f"provision write: {exc}")
    emit({"boot_partition": str(card), "written": written}, args.json,
         f"{len(written)} files written to {card}: put the card in the gateway and power it")
    return 0


def cmd_take_up(args: argparse.Namespace) -> int:
    from sitegate.firmware_tools.bootpart import BootPartitionError, open_partition
    from sitegate.firmware_tools.provision import BundleError, find_boot_partition, take_up

    where = args.boot_partition or find_boot_partition()
    if where is None:
        emit({"taken": False, "why": "no bundle on the boot partition"}, args.json,
             "no provisioning bundle on /boot/firmware or /boot")
        return 0
    try:
        result = take_up(open_partition(where), args.config)
    except (BundleError, BootPartitionError) as exc:
        return _fail(f"provisioning bundle not taken: {exc}")
    except OSError as exc:
        return _fail(f"provisioning bundle not taken: {exc.filename}: {exc.strerror or exc}")
    if result is None:
        emit({"taken": False, "why": f"no bundle on {where}"}, args.json,
             f"no provisioning bundle on {where}")
        return 0
    emit({"taken": True, **result}, args.json,
         f"bundle for {result['gateway_id']} taken up: site file {result['site_file']}, "
         f"claim token {result['claim_token'] or '(already enrolled: not needed)'}; "
         f"deleted from {where}")
    return 0
